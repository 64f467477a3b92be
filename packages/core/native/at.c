// Operations relative to directory descriptors, for writing into a target that a hostile layer may try to
// redirect: every call names one entry (a single path component) of a directory held open by descriptor,
// and none follows a symlink at that entry. A directory is opened from the target's root without following
// any symlink on the way (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or O_NOFOLLOW per component on
// kernels without it), so a path decided earlier can never lead somewhere else later: a component that has
// become a symlink fails the open (ELOOP) instead of being followed. This is the defence moby's os.Root and
// umoci's securejoin give Go (CVE-2018-15664).
#include "common.h"
#include <dirent.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#define XATTR_VALUE_MAX_BYTES 65536

// A descriptor argument; -1 (with a TypeError thrown) when it is not a non-negative integer.
static int get_fd(napi_env env, napi_value value) {
  int32_t fd = -1;
  if (napi_get_value_int32(env, value, &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "expected a file descriptor");
    return -1;
  }
  return fd;
}

// A name argument: one path component, or "" where the call allows the directory itself. 0, or -1 with an
// error thrown (EINVAL for a slash, ".", ".." or a NUL: callers never pass those, so one is a bug).
static int get_name(napi_env env, napi_value value, char *out, bool allow_self) {
  int err = get_path(env, value, out);
  if (err == -1) {
    napi_throw_type_error(env, "EINVAL", "expected a name");
    return -1;
  }
  if (err == 0 && out[0] == 0 && allow_self) return 0;
  if (err == 0 && (out[0] == 0 || strchr(out, '/') || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)) err = -EINVAL;
  if (err == 0 && strlen(out) > 255) err = -ENAMETOOLONG;
  if (err < 0) {
    throw_errno(env, -err, "name", out);
    return -1;
  }
  return 0;
}

// Reads `count` arguments into argv; false (with a TypeError thrown) when fewer were given.
static bool get_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const char *usage) {
  size_t argc = count;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < count) {
    napi_throw_type_error(env, "EINVAL", usage);
    return false;
  }
  return true;
}

// Reads `count` arguments, the first two a directory descriptor and an entry name of it (see get_name);
// false with an error thrown.
static bool entry_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const char *usage, int *dirfd, char *name, bool allow_self) {
  if (!get_args(env, info, count, argv, usage)) return false;
  *dirfd = get_fd(env, argv[0]);
  return *dirfd >= 0 && get_name(env, argv[1], name, allow_self) == 0;
}

static napi_value number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

// Opens the directory `path` below `dirfd`, no component a symlink and none leaving it: an fd, or -errno.
static int open_beneath(int dirfd, const char *path) {
  struct open_how how = {
    .flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  if (fd >= 0) return (int)fd;
  if (errno != ENOSYS && errno != EPERM) return -errno; // EPERM: a seccomp filter that does not know openat2
  // Older kernels: one component at a time, none followed, ".." refused.
  char copy[PATH_MAX_BYTES];
  snprintf(copy, sizeof copy, "%s", path);
  int current = dup(dirfd);
  if (current < 0) return -errno;
  char *save = NULL;
  for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
    if (strcmp(part, ".") == 0) continue;
    if (strcmp(part, "..") == 0) {
      close(current);
      return -EXDEV; // what openat2 says for a climb out of the directory
    }
    int next = openat(current, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close(current);
    if (next < 0) return -err;
    current = next;
  }
  return current;
}

// open_root(path) -> fd: the target's root directory (the caller named it: symlinks in it are followed).
napi_value js_open_root(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[PATH_MAX_BYTES];
  if (get_path_args(env, info, 1, 1, argv, path, "open_root(path)") < 0) return NULL;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  return number(env, fd);
}

// open_dir_at(dirfd, path) -> fd: the directory `path` (relative, "." for `dirfd` itself) below `dirfd`,
// reached without following any symlink. ELOOP when a component is a symlink, EXDEV when the path leaves.
napi_value js_open_dir_at(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX_BYTES];
  if (!get_args(env, info, 2, argv, "open_dir_at(dirfd, path)")) return NULL;
  int dirfd = get_fd(env, argv[0]);
  if (dirfd < 0) return NULL;
  int err = get_path(env, argv[1], path);
  if (err < 0) return err == -1 ? (napi_throw_type_error(env, "EINVAL", "open_dir_at(dirfd, path)"), NULL) : throw_errno(env, -err, "openat2", path);
  if (path[0] == '/') return throw_errno(env, EXDEV, "openat2", path);
  int fd = open_beneath(dirfd, path);
  if (fd < 0) return throw_errno(env, -fd, "openat2", path);
  return number(env, fd);
}

// stat_at(dirfd, name, out: Float64Array) -> boolean: lstat of entry `name` ("" for the directory itself)
// into `out`; false when nothing is there.
napi_value js_stat_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[PATH_MAX_BYTES];
  int dirfd;
  if (!entry_args(env, info, 3, argv, "stat_at(dirfd, name, out)", &dirfd, name, true)) return NULL;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  napi_value buffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, argv[2], &type, &length, &data, &buffer, &offset) != napi_ok || type != napi_float64_array || length < FIELDS) {
    napi_throw_type_error(env, "EINVAL", "stat_at: out must be a Float64Array of 12");
    return NULL;
  }
  struct stat st;
  bool found = true;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW | (name[0] == 0 ? AT_EMPTY_PATH : 0)) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) return throw_errno(env, errno, "lstat", name);
    found = false;
  }
  if (found) fill_stat(data, &st);
  napi_value result;
  napi_get_boolean(env, found, &result);
  return result;
}

// readlink_at(dirfd, name) -> string.
napi_value js_readlink_at(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[PATH_MAX_BYTES], target[PATH_MAX_BYTES];
  int dirfd;
  if (!entry_args(env, info, 2, argv, "readlink_at(dirfd, name)", &dirfd, name, false)) return NULL;
  ssize_t n = readlinkat(dirfd, name, target, sizeof target);
  if (n < 0) return throw_errno(env, errno, "readlink", name);
  napi_value result;
  name_string(env, target, (size_t)n, &result);
  return result;
}

// make_at(dirfd, name, mode, major, minor): a directory, device node or fifo, by the type bits of `mode`
// (S_IFDIR, S_IFCHR, S_IFBLK, S_IFIFO); the device numbers matter only for devices.
napi_value js_make_at(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char name[PATH_MAX_BYTES];
  int dirfd;
  if (!entry_args(env, info, 5, argv, "make_at(dirfd, name, mode, major, minor)", &dirfd, name, false)) return NULL;
  mode_t mode = (mode_t)get_number(env, argv[2]);
  if (S_ISDIR(mode)) {
    if (mkdirat(dirfd, name, mode & 07777) != 0) return throw_errno(env, errno, "mkdir", name);
    return NULL;
  }
  dev_t dev = makedev((unsigned)get_number(env, argv[3]), (unsigned)get_number(env, argv[4]));
  if (mknodat(dirfd, name, mode, dev) != 0) return throw_errno(env, errno, "mknod", name);
  return NULL;
}

// symlink_at(target, dirfd, name).
napi_value js_symlink_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char target[PATH_MAX_BYTES], name[PATH_MAX_BYTES];
  if (!get_args(env, info, 3, argv, "symlink_at(target, dirfd, name)")) return NULL;
  int err = get_path(env, argv[0], target);
  if (err < 0) return err == -1 ? (napi_throw_type_error(env, "EINVAL", "symlink_at: target"), NULL) : throw_errno(env, -err, "symlink", target);
  int dirfd = get_fd(env, argv[1]);
  if (dirfd < 0 || get_name(env, argv[2], name, false) < 0) return NULL;
  if (symlinkat(target, dirfd, name) != 0) return throw_errno(env, errno, "symlink", name);
  return NULL;
}

// link_at(fromDirfd, fromName, toDirfd, toName): a new name for an existing entry, which is not followed
// even when it is a symlink (linkat without AT_SYMLINK_FOLLOW).
napi_value js_link_at(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char from[PATH_MAX_BYTES], to[PATH_MAX_BYTES];
  if (!get_args(env, info, 4, argv, "link_at(fromDirfd, fromName, toDirfd, toName)")) return NULL;
  int from_fd = get_fd(env, argv[0]);
  if (from_fd < 0 || get_name(env, argv[1], from, false) < 0) return NULL;
  int to_fd = get_fd(env, argv[2]);
  if (to_fd < 0 || get_name(env, argv[3], to, false) < 0) return NULL;
  if (linkat(from_fd, from, to_fd, to, 0) != 0) return throw_errno(env, errno, "link", to);
  return NULL;
}

// See common.h: the one listing of a directory the addon has (apply's removals, listDirAt, lstatBatch,
// listDirSorted).
int list_names(int fd, char **names, size_t *count) {
  DIR *d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    return err;
  }
  size_t used = 0, capacity = 4096;
  char *buffer = malloc(capacity);
  *count = 0;
  struct dirent *ent;
  int err = 0;
  errno = 0;
  while (buffer && (ent = readdir(d)) != NULL) {
    const char *n = ent->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    size_t len = strlen(n) + 1;
    if (used + len > capacity) {
      char *grown = realloc(buffer, capacity * 2 + len);
      if (!grown) {
        free(buffer);
        buffer = NULL;
        break;
      }
      buffer = grown;
      capacity = capacity * 2 + len;
    }
    memcpy(buffer + used, n, len);
    used += len;
    (*count)++;
    errno = 0;
  }
  err = buffer ? errno : ENOMEM;
  closedir(d);
  if (err) {
    free(buffer);
    return err;
  }
  *names = buffer;
  return 0;
}

// Removes entry `name` of `dirfd` and, for a directory, everything below it, by descriptors: no symlink is
// ever followed, whatever is swapped in meanwhile. Absent is not an error. 0, or an errno (`*failed` names
// what failed, in a thread-local buffer).
static int remove_at(int dirfd, const char *name, const char **failed) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : (*failed = name, errno);
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
    return *failed = name, errno;
  }
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : (*failed = name, errno);
  int child_fd = dup(fd);
  if (child_fd < 0) {
    int err = errno;
    close(fd);
    return *failed = name, err;
  }
  char *names = NULL;
  size_t count = 0;
  int err = list_names(child_fd, &names, &count);
  const char *n = names;
  for (size_t i = 0; !err && i < count; i++, n += strlen(n) + 1) err = remove_at(fd, n, failed);
  if (err) {
    // Keep the name of what failed beyond this frame: the list is freed below.
    static __thread char kept[256];
    snprintf(kept, sizeof kept, "%s", *failed ? *failed : name);
    *failed = kept;
  }
  free(names);
  close(fd);
  if (err) return err;
  if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return 0;
  return *failed = name, errno;
}

// remove_at(dirfd, name): removes what stands at `name`, a directory with everything below it; absent is
// fine. Symlinks are removed, never followed.
napi_value js_remove_at(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[PATH_MAX_BYTES];
  int dirfd;
  if (!entry_args(env, info, 2, argv, "remove_at(dirfd, name)", &dirfd, name, false)) return NULL;
  const char *failed = name;
  int err = remove_at(dirfd, name, &failed);
  if (err) return throw_errno(env, err, "remove", failed);
  return NULL;
}

// unlink_at(dirfd, name, directory): unlink, or rmdir of an empty directory.
napi_value js_unlink_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[PATH_MAX_BYTES];
  int dirfd;
  if (!entry_args(env, info, 3, argv, "unlink_at(dirfd, name, directory)", &dirfd, name, false)) return NULL;
  bool directory = false;
  napi_get_value_bool(env, argv[2], &directory);
  if (unlinkat(dirfd, name, directory ? AT_REMOVEDIR : 0) != 0) return throw_errno(env, errno, directory ? "rmdir" : "unlink", name);
  return NULL;
}

// Sets owner (uid < 0: leave), mode (< 0: leave) and atime = mtime (nsec < 0: leave) of open file `fd`,
// in that order: chown clears setuid bits and capabilities, so mode comes after it. 0, or an errno with
// `*syscall` set.
static int finish_fd(int fd, double uid, double gid, double mode, double sec, double nsec, const char **syscall) {
  if (uid >= 0 && fchown(fd, (uid_t)uid, (gid_t)gid) != 0) return *syscall = "fchown", errno;
  if (mode >= 0 && fchmod(fd, (mode_t)mode) != 0) return *syscall = "fchmod", errno;
  if (nsec >= 0) {
    struct timespec times[2] = {{(time_t)sec, (long)nsec}, {(time_t)sec, (long)nsec}};
    if (futimens(fd, times) != 0) return *syscall = "futimens", errno;
  }
  return 0;
}

// The permission bits a new file is created with (the umask applies): `create_mode` when the caller gives
// one (>= 0; special bits never), else 0600 until its mode is set.
static mode_t creation_mode(double create_mode) {
  return create_mode >= 0 ? (mode_t)create_mode & 0777 : 0600;
}

// write_file_at(dirfd, name, data, mode, uid, gid, mtimeSec, mtimeNsec, createMode): creates entry `name`,
// which must not exist (O_EXCL, never through a symlink), with permission bits `createMode` (< 0: 0600),
// all of `data`, owner (uid < 0: the caller's), mode (< 0: leave as created) and times, and closes it: one
// call for what an apply does per small file.
napi_value js_write_file_at(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  char name[PATH_MAX_BYTES];
  const char *usage = "write_file_at(dirfd, name, data, mode, uid, gid, mtimeSec, mtimeNsec, createMode)";
  if (!get_args(env, info, 9, argv, usage)) return NULL;
  int dirfd = get_fd(env, argv[0]);
  if (dirfd < 0 || get_name(env, argv[1], name, false) < 0) return NULL;
  void *data = NULL;
  size_t length = 0;
  if (get_bytes(env, argv[2], &data, &length) != 0) {
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, creation_mode(get_number(env, argv[8])));
  if (fd < 0) return throw_errno(env, errno, "open", name);
  const char *syscall = NULL;
  int err = write_all(fd, data, length);
  if (err) syscall = "write";
  else err = finish_fd(fd, get_number(env, argv[4]), get_number(env, argv[5]), get_number(env, argv[3]), get_number(env, argv[6]), get_number(env, argv[7]), &syscall);
  if (close(fd) != 0 && !err) {
    err = errno;
    syscall = "close";
  }
  if (err) return throw_errno(env, err, syscall, name);
  return NULL;
}

// create_file_at(dirfd, name, createMode) -> fd: a new file (O_EXCL, never through a symlink) open for
// writing, with permission bits `createMode` (< 0: 0600).
napi_value js_create_file_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[PATH_MAX_BYTES];
  int dirfd;
  if (!entry_args(env, info, 3, argv, "create_file_at(dirfd, name, createMode)", &dirfd, name, false)) return NULL;
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, creation_mode(get_number(env, argv[2])));
  if (fd < 0) return throw_errno(env, errno, "open", name);
  return number(env, fd);
}

// close_fd(fd): closes a descriptor one of these calls opened. Not through fs.closeSync: in a worker thread
// Node warns on stderr about every descriptor fs closes that fs did not open.
napi_value js_close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "close_fd(fd)")) return NULL;
  int fd = get_fd(env, argv[0]);
  if (fd < 0) return NULL;
  // Linux releases the descriptor even when close fails (EINTR included): never retry.
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, errno, "close", "directory or file");
  return NULL;
}

// finish_file(fd, mode, uid, gid, mtimeSec, mtimeNsec): owner, mode and times of an open file (see finish_fd).
napi_value js_finish_file(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, "finish_file(fd, mode, uid, gid, mtimeSec, mtimeNsec)")) return NULL;
  int fd = get_fd(env, argv[0]);
  if (fd < 0) return NULL;
  const char *syscall = NULL;
  int err = finish_fd(fd, get_number(env, argv[2]), get_number(env, argv[3]), get_number(env, argv[1]), get_number(env, argv[4]), get_number(env, argv[5]), &syscall);
  if (err) return throw_errno(env, err, syscall, "file");
  return NULL;
}

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 // Linux 6.6, the same number on every architecture
#endif
// Cleared once the kernel (or a seccomp filter that does not know it) refuses fchmodat2.
static atomic_bool have_fchmodat2 = true;

// chmod of entry `name` of `dirfd`, never through a symlink (EOPNOTSUPP for one). glibc before 2.39 does
// that as openat(O_PATH | O_NOFOLLOW), fstatat, chmod of /proc/self/fd/N and close: four calls and a /proc
// lookup, for each of an apply's directories. The kernel's fchmodat2 takes the flag itself.
static int chmod_at_nofollow(int dirfd, const char *name, mode_t mode) {
  if (atomic_load_explicit(&have_fchmodat2, memory_order_relaxed)) {
    if (syscall(SYS_fchmodat2, dirfd, name, mode, AT_SYMLINK_NOFOLLOW) == 0) return 0;
    if (errno != ENOSYS && errno != EPERM) return -1;
    if (errno == ENOSYS) atomic_store_explicit(&have_fchmodat2, false, memory_order_relaxed);
    // An EPERM is the entry's own (not the caller's to change), which the old way reports again, or a
    // seccomp filter's refusal of a call it does not know, after which the old way succeeds.
    if (fchmodat(dirfd, name, mode, AT_SYMLINK_NOFOLLOW) != 0) return -1;
    atomic_store_explicit(&have_fchmodat2, false, memory_order_relaxed);
    return 0;
  }
  return fchmodat(dirfd, name, mode, AT_SYMLINK_NOFOLLOW);
}

// set_attrs_at(dirfd, name, uid, gid, mode, mtimeSec, mtimeNsec): owner (uid < 0: leave), mode (< 0: leave;
// never on a symlink) and atime = mtime (nsec < 0: leave) of entry `name` ("" for the directory itself),
// never following a symlink there.
napi_value js_set_attrs_at(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  char name[PATH_MAX_BYTES];
  int dirfd;
  if (!entry_args(env, info, 7, argv, "set_attrs_at(dirfd, name, uid, gid, mode, mtimeSec, mtimeNsec)", &dirfd, name, true)) return NULL;
  double uid = get_number(env, argv[2]), gid = get_number(env, argv[3]), mode = get_number(env, argv[4]);
  double sec = get_number(env, argv[5]), nsec = get_number(env, argv[6]);
  if (name[0] == 0) {
    const char *syscall = NULL;
    int err = finish_fd(dirfd, uid, gid, mode, sec, nsec, &syscall);
    if (err) return throw_errno(env, err, syscall, ".");
    return NULL;
  }
  if (uid >= 0 && fchownat(dirfd, name, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) != 0) return throw_errno(env, errno, "lchown", name);
  if (mode >= 0 && chmod_at_nofollow(dirfd, name, (mode_t)mode) != 0) return throw_errno(env, errno, "chmod", name);
  if (nsec >= 0) {
    struct timespec times[2] = {{(time_t)sec, (long)nsec}, {(time_t)sec, (long)nsec}};
    if (utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW) != 0) return throw_errno(env, errno, "utimensat", name);
  }
  return NULL;
}

// The path by which l*xattr calls reach entry `name` of `dirfd` without following it: the kernel resolves
// /proc/self/fd/N to the directory itself (our descriptor), then looks `name` up in it.
static void xattr_path(char *out, size_t size, int dirfd, const char *name) {
  snprintf(out, size, "/proc/self/fd/%d/%s", dirfd, name);
}

// Reads (dirfd, name, key) into the outputs; false with an error thrown.
static bool xattr_args(napi_env env, napi_value *argv, int *dirfd, char *name, char *key) {
  *dirfd = get_fd(env, argv[0]);
  if (*dirfd < 0 || get_name(env, argv[1], name, true) < 0) return false;
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[2], key, 256, &len) != napi_ok || len == 0 || len >= 255 || strlen(key) != len) {
    throw_errno(env, len >= 255 ? ERANGE : EINVAL, "setxattr", name);
    return false;
  }
  return true;
}

// set_xattr_at(dirfd, name, key, value): on entry `name` ("" for the directory itself), never through a symlink.
napi_value js_set_xattr_at(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char name[PATH_MAX_BYTES], key[256], path[PATH_MAX_BYTES + 32];
  int dirfd;
  if (!get_args(env, info, 4, argv, "set_xattr_at(dirfd, name, key, value)") || !xattr_args(env, argv, &dirfd, name, key)) return NULL;
  void *data = NULL;
  size_t length = 0;
  if (get_bytes(env, argv[3], &data, &length) != 0) {
    napi_throw_type_error(env, "EINVAL", "set_xattr_at: value must be a Uint8Array");
    return NULL;
  }
  int rc;
  if (name[0] == 0) rc = fsetxattr(dirfd, key, data, length, 0);
  else {
    xattr_path(path, sizeof path, dirfd, name);
    rc = lsetxattr(path, key, data, length, 0);
  }
  if (rc != 0) return throw_errno(env, errno, "setxattr", name[0] ? name : ".");
  return NULL;
}

// get_xattr_at(dirfd, name, key) -> Buffer | undefined (absent, or no xattr support).
napi_value js_get_xattr_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[PATH_MAX_BYTES], key[256], path[PATH_MAX_BYTES + 32];
  int dirfd;
  if (!get_args(env, info, 3, argv, "get_xattr_at(dirfd, name, key)") || !xattr_args(env, argv, &dirfd, name, key)) return NULL;
  static __thread char value[XATTR_VALUE_MAX_BYTES];
  ssize_t len;
  if (name[0] == 0) len = fgetxattr(dirfd, key, value, sizeof value);
  else {
    xattr_path(path, sizeof path, dirfd, name);
    len = lgetxattr(path, key, value, sizeof value);
  }
  if (len < 0) {
    if (errno == ENODATA || errno == ENOTSUP) {
      napi_value undefined;
      napi_get_undefined(env, &undefined);
      return undefined;
    }
    return throw_errno(env, errno, "getxattr", name[0] ? name : ".");
  }
  napi_value buffer;
  napi_create_buffer_copy(env, (size_t)len, value, NULL, &buffer);
  return buffer;
}

// remove_xattr_at(dirfd, name, key); absent is not an error.
napi_value js_remove_xattr_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[PATH_MAX_BYTES], key[256], path[PATH_MAX_BYTES + 32];
  int dirfd;
  if (!get_args(env, info, 3, argv, "remove_xattr_at(dirfd, name, key)") || !xattr_args(env, argv, &dirfd, name, key)) return NULL;
  int rc;
  if (name[0] == 0) rc = fremovexattr(dirfd, key);
  else {
    xattr_path(path, sizeof path, dirfd, name);
    rc = lremovexattr(path, key);
  }
  if (rc != 0 && errno != ENODATA) return throw_errno(env, errno, "removexattr", name[0] ? name : ".");
  return NULL;
}

// list_dir_at(dirfd) -> string[]: the names in the open directory (not "." or ".."), in directory order.
napi_value js_list_dir_at(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "list_dir_at(dirfd)")) return NULL;
  int dirfd = get_fd(env, argv[0]);
  if (dirfd < 0) return NULL;
  // A fresh open description of the same directory: the caller's offset and its fd stay untouched.
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", ".");
  char *names = NULL;
  size_t count = 0;
  int err = list_names(fd, &names, &count);
  if (err) return throw_errno(env, err, "readdir", ".");
  napi_value array;
  napi_create_array_with_length(env, count, &array);
  const char *n = names;
  for (size_t i = 0; i < count; i++, n += strlen(n) + 1) {
    napi_value s;
    name_string(env, n, strlen(n), &s);
    napi_set_element(env, array, (uint32_t)i, s);
  }
  free(names);
  return array;
}
