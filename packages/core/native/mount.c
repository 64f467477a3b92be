// Kernel mounts and disk usage, for snapshotters and builders: an overlay mount made with the new mount API
// (fsopen/fsconfig/fsmount/move_mount), which takes each lower directory as its own parameter ("lowerdir+",
// Linux 6.8), so a chain of hundreds of layers never meets the one-page limit of mount(2)'s option string;
// bind mounts (read-only where asked); unmount; and the disk usage of a tree (`du -s`: blocks of every
// inode counted once), walked by descriptors in one call.
#include "common.h"
#include <dirent.h>
#include <sys/mount.h>
#include <sys/syscall.h>

// Reads a JS array of strings into `out` (each strdup'ed); count, or -1 with an error thrown.
static int string_list(napi_env env, napi_value array, char ***out) {
  bool is_array = false;
  napi_is_array(env, array, &is_array);
  if (!is_array) {
    napi_throw_type_error(env, "EINVAL", "expected an array of strings");
    return -1;
  }
  uint32_t n = 0;
  napi_get_array_length(env, array, &n);
  char **items = calloc(n + 1, sizeof *items);
  if (!items) return throw_errno(env, ENOMEM, "mount", "options"), -1;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    char buffer[PATH_MAX_BYTES];
    napi_get_element(env, array, i, &item);
    int err = get_path(env, item, buffer);
    if (err != 0 || !(items[i] = strdup(buffer))) {
      for (uint32_t j = 0; j < i; j++) free(items[j]);
      free(items);
      if (err == -1) napi_throw_type_error(env, "EINVAL", "expected an array of strings");
      else throw_errno(env, err < 0 ? -err : ENOMEM, "mount", buffer);
      return -1;
    }
  }
  *out = items;
  return (int)n;
}

static void free_list(char **items, int n) {
  for (int i = 0; i < n; i++) free(items[i]);
  free(items);
}

// Sets one string parameter (or a flag, when `value` is NULL) on a filesystem context.
static int set_param(int fs, const char *key, const char *value) {
  return value ? fsconfig(fs, FSCONFIG_SET_STRING, key, value, 0) : fsconfig(fs, FSCONFIG_SET_FLAG, key, NULL, 0);
}

// An overlay mount on `target` through the new mount API: 0, or an errno with `*what` naming the step.
static int overlay_new_api(const char *target, char **lowers, int nlowers, const char *upper, const char *work, char **options, int noptions, const char **what) {
  int fs = fsopen("overlay", FSOPEN_CLOEXEC);
  if (fs < 0) return *what = "fsopen", errno;
  int err = 0;
  for (int i = 0; !err && i < nlowers; i++) {
    if (set_param(fs, "lowerdir+", lowers[i]) != 0) err = errno, *what = "lowerdir+";
  }
  if (!err && upper && set_param(fs, "upperdir", upper) != 0) err = errno, *what = "upperdir";
  if (!err && work && set_param(fs, "workdir", work) != 0) err = errno, *what = "workdir";
  for (int i = 0; !err && i < noptions; i++) {
    char *eq = strchr(options[i], '=');
    if (eq) *eq = 0;
    if (set_param(fs, options[i], eq ? eq + 1 : NULL) != 0) err = errno, *what = options[i];
    if (eq) *eq = '=';
  }
  if (!err && fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) err = errno, *what = "fsconfig create";
  int mnt = -1;
  if (!err && (mnt = fsmount(fs, FSMOUNT_CLOEXEC, upper ? 0 : MOUNT_ATTR_RDONLY)) < 0) err = errno, *what = "fsmount";
  if (!err && move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0) err = errno, *what = "move_mount";
  if (mnt >= 0) close(mnt);
  close(fs);
  return err;
}

// The same with mount(2) and one option string, for kernels before 6.8: E2BIG past a page.
static int overlay_old_api(const char *target, char **lowers, int nlowers, const char *upper, const char *work, char **options, int noptions, const char **what) {
  size_t size = 4096;
  char *data = malloc(size);
  if (!data) return *what = "mount", ENOMEM;
  size_t used = (size_t)snprintf(data, size, "lowerdir=");
  for (int i = 0; i < nlowers && used < size; i++) used += (size_t)snprintf(data + used, size - used, "%s%s", i ? ":" : "", lowers[i]);
  if (upper && used < size) used += (size_t)snprintf(data + used, size - used, ",upperdir=%s,workdir=%s", upper, work);
  for (int i = 0; i < noptions && used < size; i++) used += (size_t)snprintf(data + used, size - used, ",%s", options[i]);
  int err = 0;
  if (used >= size) err = E2BIG, *what = "mount options (one page)";
  else if (mount("overlay", target, "overlay", upper ? 0 : MS_RDONLY, data) != 0) err = errno, *what = "mount";
  free(data);
  return err;
}

// mount_overlay(target, lowers: string[] (top first), upper: string | null, work: string | null, options: string[]).
// Without an upper directory the mount is read-only.
napi_value js_mount_overlay(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc = 5;
  char target[PATH_MAX_BYTES], upper[PATH_MAX_BYTES], work[PATH_MAX_BYTES];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5 || get_path(env, argv[0], target) != 0) {
    napi_throw_type_error(env, "EINVAL", "mount_overlay(target, lowers, upper, work, options)");
    return NULL;
  }
  napi_valuetype type;
  napi_typeof(env, argv[2], &type);
  bool has_upper = type == napi_string;
  if (has_upper && (get_path(env, argv[2], upper) != 0 || get_path(env, argv[3], work) != 0)) {
    napi_throw_type_error(env, "EINVAL", "mount_overlay: upper and work must be paths");
    return NULL;
  }
  char **lowers = NULL, **options = NULL;
  int nlowers = string_list(env, argv[1], &lowers);
  if (nlowers < 0) return NULL;
  int noptions = string_list(env, argv[4], &options);
  if (noptions < 0) {
    free_list(lowers, nlowers);
    return NULL;
  }
  const char *what = "mount";
  int err = overlay_new_api(target, lowers, nlowers, has_upper ? upper : NULL, has_upper ? work : NULL, options, noptions, &what);
  if (err == ENOSYS || (err == EINVAL && strcmp(what, "lowerdir+") == 0)) {
    err = overlay_old_api(target, lowers, nlowers, has_upper ? upper : NULL, has_upper ? work : NULL, options, noptions, &what);
  }
  free_list(lowers, nlowers);
  free_list(options, noptions);
  if (err) return throw_errno(env, err, what, target);
  return NULL;
}

// mount_bind(source, target, readonly): a recursive bind mount, made read-only by a remount when asked.
napi_value js_mount_bind(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char source[PATH_MAX_BYTES], target[PATH_MAX_BYTES];
  if (get_path_args(env, info, 3, 3, argv, source, "mount_bind(source, target, readonly)") < 0) return NULL;
  if (get_path(env, argv[1], target) != 0) {
    napi_throw_type_error(env, "EINVAL", "mount_bind(source, target, readonly)");
    return NULL;
  }
  bool readonly = false;
  napi_get_value_bool(env, argv[2], &readonly);
  if (mount(source, target, NULL, MS_BIND | MS_REC, NULL) != 0) return throw_errno(env, errno, "mount", target);
  if (readonly && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) != 0) {
    int err = errno;
    umount2(target, MNT_DETACH);
    return throw_errno(env, err, "mount", target);
  }
  return NULL;
}

// unmount(target, detach): umount2, lazily with `detach`.
napi_value js_unmount(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char target[PATH_MAX_BYTES];
  if (get_path_args(env, info, 2, 2, argv, target, "unmount(target, detach)") < 0) return NULL;
  bool detach = false;
  napi_get_value_bool(env, argv[1], &detach);
  if (umount2(target, detach ? MNT_DETACH : 0) != 0) return throw_errno(env, errno, "umount", target);
  return NULL;
}

// A set of (device, inode) pairs, open addressing: hardlinked files are counted once, as du counts them.
typedef struct {
  uint64_t *keys; // two words per slot; a slot of (0, 0) is empty
  size_t capacity, count;
} inode_set;

static uint64_t mix(uint64_t dev, uint64_t ino) {
  uint64_t h = dev * 0x9e3779b97f4a7c15ull ^ ino;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}

// Adds (dev, ino); 1 when it was new, 0 when seen, -1 when out of memory.
static int inode_add(inode_set *set, uint64_t dev, uint64_t ino) {
  if ((set->count + 1) * 2 > set->capacity) {
    size_t capacity = set->capacity ? set->capacity * 2 : 1024;
    uint64_t *keys = calloc(capacity * 2, sizeof *keys);
    if (!keys) return -1;
    for (size_t i = 0; i < set->capacity; i++) {
      uint64_t d = set->keys[2 * i], n = set->keys[2 * i + 1];
      if (d == 0 && n == 0) continue;
      size_t j = mix(d, n) & (capacity - 1);
      while (keys[2 * j] || keys[2 * j + 1]) j = (j + 1) & (capacity - 1);
      keys[2 * j] = d, keys[2 * j + 1] = n;
    }
    free(set->keys);
    set->keys = keys;
    set->capacity = capacity;
  }
  uint64_t d = dev + 1; // never (0, 0)
  size_t j = mix(d, ino) & (set->capacity - 1);
  while (set->keys[2 * j] || set->keys[2 * j + 1]) {
    if (set->keys[2 * j] == d && set->keys[2 * j + 1] == ino) return 0;
    j = (j + 1) & (set->capacity - 1);
  }
  set->keys[2 * j] = d, set->keys[2 * j + 1] = ino;
  set->count++;
  return 1;
}

// Adds the usage of directory `fd` (taken over) and everything below it. 0, or an errno.
static int usage_walk(int fd, inode_set *set, double *bytes) {
  DIR *d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    return err;
  }
  int err = 0;
  struct dirent *ent;
  errno = 0;
  while (!err && (ent = readdir(d)) != NULL) {
    const char *n = ent->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    struct stat st;
    if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) err = errno;
      continue;
    }
    int added = inode_add(set, st.st_dev, st.st_ino);
    if (added < 0) err = ENOMEM;
    else if (added) *bytes += (double)st.st_blocks * 512;
    if (!err && S_ISDIR(st.st_mode)) {
      int child = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0) err = usage_walk(child, set, bytes);
      else if (errno != ENOENT) err = errno;
    }
    errno = 0;
  }
  if (!err && errno) err = errno;
  closedir(d);
  return err;
}

// disk_usage(path) -> [bytes, inodes]: what `du -s` counts (blocks of every inode, hardlinks once, the
// root included), never following a symlink.
napi_value js_disk_usage(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[PATH_MAX_BYTES];
  if (get_path_args(env, info, 1, 1, argv, path, "disk_usage(path)") < 0) return NULL;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "stat", path);
  }
  inode_set set = {0};
  double bytes = 0;
  int err = inode_add(&set, st.st_dev, st.st_ino) < 0 ? ENOMEM : 0;
  bytes += (double)st.st_blocks * 512;
  if (!err) err = usage_walk(fd, &set, &bytes);
  else close(fd);
  size_t inodes = set.count;
  free(set.keys);
  if (err) return throw_errno(env, err, "du", path);
  napi_value result, b, n;
  napi_create_array_with_length(env, 2, &result);
  napi_create_double(env, bytes, &b);
  napi_create_double(env, (double)inodes, &n);
  napi_set_element(env, result, 0, b);
  napi_set_element(env, result, 1, n);
  return result;
}
