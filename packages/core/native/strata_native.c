// The few syscalls Node does not expose and layers need: mknod (devices, fifos, overlay whiteouts),
// utimensat with nanoseconds on the link itself, and the l*xattr family (never following a symlink); and
// batched calls for the hot paths (lstat of a whole directory, a whole small file read or written, a file
// range copied or hashed in the kernel's pages). Synchronous on purpose: each is a few cheap syscalls, and
// a thread-pool round trip would cost more than the call.
#define _GNU_SOURCE
#include <node_api.h>
#include <openssl/evp.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

#define PATH_MAX_BYTES 4096

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  const char *name = strerrorname_np(err);
  char message[PATH_MAX_BYTES + 128];
  snprintf(message, sizeof message, "%s: %s, %s '%s'", name ? name : "EUNKNOWN", strerror(err), syscall, path);
  napi_value msg, error, code, sys, p, errnum;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &p);
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "code", code);
  napi_set_named_property(env, error, "syscall", sys);
  napi_set_named_property(env, error, "path", p);
  napi_set_named_property(env, error, "errno", errnum);
  napi_throw(env, error);
  return NULL;
}

static int get_path(napi_env env, napi_value value, char *out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, out, PATH_MAX_BYTES, &len) != napi_ok) return -1;
  return len >= PATH_MAX_BYTES - 1 ? -1 : 0;
}

// The bytes of a Uint8Array argument; -1 when it is not one.
static int get_bytes(napi_env env, napi_value value, void **data, size_t *length) {
  napi_typedarray_type type;
  napi_value arraybuffer;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(env, value, &type, length, data, &arraybuffer, &byte_offset) != napi_ok) return -1;
  return type == napi_uint8_array ? 0 : -1;
}

// Reads up to `max` arguments into `argv`, at least `need` of them, the first a path into `path`; returns how
// many were given, or -1 (with a TypeError thrown) when too few were or the first is not a path string.
static int get_path_args(napi_env env, napi_callback_info info, size_t need, size_t max, napi_value *argv, char *path, const char *usage) {
  size_t argc = max;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < need || get_path(env, argv[0], path) != 0) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  return (int)argc;
}

// Reads (path, bytes) from the first two of `want` arguments; -1 (with a TypeError thrown) when they are not a
// string and a Uint8Array.
static int get_path_and_bytes(napi_env env, napi_callback_info info, size_t want, napi_value *argv, char *path, void **data, size_t *length, const char *usage) {
  if (get_path_args(env, info, want, want, argv, path, usage) < 0) return -1;
  if (get_bytes(env, argv[1], data, length) != 0) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  return 0;
}

static double get_number(napi_env env, napi_value value) {
  double d = 0;
  napi_get_value_double(env, value, &d);
  return d;
}

// mknod(path, mode, major, minor): mode carries the file type bits (S_IFCHR, S_IFBLK, S_IFIFO).
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char path[PATH_MAX_BYTES];
  if (get_path_args(env, info, 4, 4, argv, path, "mknod(path, mode, major, minor)") < 0) return NULL;
  mode_t mode = (mode_t)get_number(env, argv[1]);
  dev_t dev = makedev((unsigned)get_number(env, argv[2]), (unsigned)get_number(env, argv[3]));
  if (mknod(path, mode, dev) != 0) return throw_errno(env, errno, "mknod", path);
  return NULL;
}

// lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec): never follows a final symlink.
static napi_value js_lutimens(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char path[PATH_MAX_BYTES];
  if (get_path_args(env, info, 5, 5, argv, path, "lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec)") < 0) return NULL;
  struct timespec times[2];
  times[0].tv_sec = (time_t)get_number(env, argv[1]);
  times[0].tv_nsec = (long)get_number(env, argv[2]);
  times[1].tv_sec = (time_t)get_number(env, argv[3]);
  times[1].tv_nsec = (long)get_number(env, argv[4]);
  if (utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) != 0) return throw_errno(env, errno, "utimensat", path);
  return NULL;
}

#define XATTR_NAME_MAX_BYTES 256
#define XATTR_LIST_MAX_BYTES 65536
#define XATTR_VALUE_MAX_BYTES 65536

// Reads (path, name) from the first two arguments; returns -1 (with a TypeError thrown) when they are not strings.
static int get_path_and_name(napi_env env, napi_callback_info info, size_t want, napi_value *argv, char *path, char *name, const char *usage) {
  size_t name_len = 0;
  if (get_path_args(env, info, want, want, argv, path, usage) < 0) return -1;
  if (napi_get_value_string_utf8(env, argv[1], name, XATTR_NAME_MAX_BYTES + 1, &name_len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  return 0;
}

// llistxattr(path) -> string[]: names in the order the filesystem gives them.
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[PATH_MAX_BYTES];
  if (get_path_args(env, info, 1, 1, argv, path, "llistxattr(path)") < 0) return NULL;
  static __thread char list[XATTR_LIST_MAX_BYTES];
  ssize_t len = llistxattr(path, list, sizeof list);
  if (len < 0) {
    if (errno == ENOTSUP) len = 0;
    else return throw_errno(env, errno, "llistxattr", path);
  }
  napi_value result;
  napi_create_array(env, &result);
  uint32_t index = 0;
  for (ssize_t i = 0; i < len;) {
    size_t n = strnlen(list + i, (size_t)(len - i));
    napi_value name;
    napi_create_string_utf8(env, list + i, n, &name);
    napi_set_element(env, result, index++, name);
    i += (ssize_t)n + 1;
  }
  return result;
}

// lgetxattr(path, name) -> Buffer | undefined (absent).
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX_BYTES], name[XATTR_NAME_MAX_BYTES + 1];
  if (get_path_and_name(env, info, 2, argv, path, name, "lgetxattr(path, name)") != 0) return NULL;
  static __thread char value[XATTR_VALUE_MAX_BYTES];
  ssize_t len = lgetxattr(path, name, value, sizeof value);
  if (len < 0) {
    if (errno == ENODATA || errno == ENOTSUP) {
      napi_value undefined;
      napi_get_undefined(env, &undefined);
      return undefined;
    }
    return throw_errno(env, errno, "lgetxattr", path);
  }
  napi_value buffer;
  napi_create_buffer_copy(env, (size_t)len, value, NULL, &buffer);
  return buffer;
}

// lsetxattr(path, name, value: Uint8Array).
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[PATH_MAX_BYTES], name[XATTR_NAME_MAX_BYTES + 1];
  if (get_path_and_name(env, info, 3, argv, path, name, "lsetxattr(path, name, value)") != 0) return NULL;
  void *data = NULL;
  size_t length = 0;
  if (get_bytes(env, argv[2], &data, &length) != 0) {
    napi_throw_type_error(env, "EINVAL", "lsetxattr(path, name, value): value must be a Uint8Array");
    return NULL;
  }
  if (lsetxattr(path, name, data, length, 0) != 0) return throw_errno(env, errno, "lsetxattr", path);
  return NULL;
}

// lremovexattr(path, name); absent is not an error.
static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX_BYTES], name[XATTR_NAME_MAX_BYTES + 1];
  if (get_path_and_name(env, info, 2, argv, path, name, "lremovexattr(path, name)") != 0) return NULL;
  if (lremovexattr(path, name) != 0 && errno != ENODATA) return throw_errno(env, errno, "lremovexattr", path);
  return NULL;
}

// Fields of one entry in lstat_batch's stats array (keep in step with native.ts).
enum { F_MODE, F_UID, F_GID, F_NLINK, F_SIZE, F_MTIME_SEC, F_MTIME_NSEC, F_DEV, F_INO_HIGH, F_INO_LOW, F_RDEV_MAJOR, F_RDEV_MINOR, FIELDS };

typedef struct {
  char **names;
  size_t count, capacity;
} name_list;

static void free_names(name_list *list) {
  for (size_t i = 0; i < list->count; i++) free(list->names[i]);
  free(list->names);
}

static int push_name(name_list *list, const char *name, size_t len) {
  if (list->count == list->capacity) {
    size_t capacity = list->capacity ? list->capacity * 2 : 64;
    char **grown = realloc(list->names, capacity * sizeof *grown);
    if (!grown) return -1;
    list->names = grown;
    list->capacity = capacity;
  }
  char *copy = malloc(len + 1);
  if (!copy) return -1;
  memcpy(copy, name, len);
  copy[len] = 0;
  list->names[list->count++] = copy;
  return 0;
}

static napi_value string_array(napi_env env, char *const *items, const size_t *lengths, size_t count) {
  napi_value array;
  napi_create_array_with_length(env, count, &array);
  for (size_t i = 0; i < count; i++) {
    napi_value s;
    napi_create_string_utf8(env, items[i], lengths ? lengths[i] : NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, array, (uint32_t)i, s);
  }
  return array;
}

// lstat_batch(dir, names?) -> { names, stats: Float64Array, links, xattrs }: lstat of each name in `dir`
// (all of its entries when `names` is omitted), with each symlink's target and each entry's xattr names,
// in one call. This replaces four Node calls per entry on the walks that pack layers and diff uppers.
// An entry that vanished since it was listed gets mode 0. links[i] / xattrs[i] are undefined when empty.
static napi_value js_lstat_batch(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char dir[PATH_MAX_BYTES];
  int argc = get_path_args(env, info, 1, 2, argv, dir, "lstat_batch(dir, names?)");
  if (argc < 0) return NULL;
  napi_valuetype names_type = napi_undefined;
  if (argc > 1) napi_typeof(env, argv[1], &names_type);

  // Named entries need only search permission on `dir` (as lstat does): an O_PATH descriptor.
  int dfd = open(dir, (names_type == napi_object ? O_PATH : O_RDONLY) | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return throw_errno(env, errno, "open", dir);
  name_list list = {0};
  napi_value names_value;
  if (names_type == napi_object) {
    names_value = argv[1];
    uint32_t n = 0;
    napi_get_array_length(env, names_value, &n);
    for (uint32_t i = 0; i < n; i++) {
      napi_value item;
      char name[PATH_MAX_BYTES];
      size_t len = 0;
      napi_get_element(env, names_value, i, &item);
      if (napi_get_value_string_utf8(env, item, name, sizeof name, &len) != napi_ok || push_name(&list, name, len) != 0) {
        close(dfd);
        free_names(&list);
        napi_throw_type_error(env, "EINVAL", "lstat_batch: names must be strings");
        return NULL;
      }
    }
  } else {
    int listing_fd = dup(dfd);
    DIR *d = listing_fd < 0 ? NULL : fdopendir(listing_fd);
    if (!d) {
      int err = errno;
      if (listing_fd >= 0) close(listing_fd);
      close(dfd);
      return throw_errno(env, err, "opendir", dir);
    }
    struct dirent *ent;
    int err = 0;
    errno = 0;
    while ((ent = readdir(d)) != NULL) {
      const char *n = ent->d_name;
      if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
      if (push_name(&list, n, strlen(n)) != 0) {
        errno = ENOMEM;
        break;
      }
      errno = 0;
    }
    err = errno;
    closedir(d);
    if (err != 0) {
      close(dfd);
      free_names(&list);
      return throw_errno(env, err, "readdir", dir);
    }
    names_value = string_array(env, list.names, NULL, list.count);
  }

  size_t count = list.count;
  napi_value buffer, stats, links, xattrs;
  double *fields = NULL;
  napi_create_arraybuffer(env, count * FIELDS * sizeof(double), (void **)&fields, &buffer);
  napi_create_typedarray(env, napi_float64_array, count * FIELDS, buffer, 0, &stats);
  napi_create_array_with_length(env, count, &links);
  napi_create_array_with_length(env, count, &xattrs);

  size_t dir_len = strlen(dir);
  static __thread char full[PATH_MAX_BYTES * 2];
  static __thread char list_buf[XATTR_LIST_MAX_BYTES];
  static __thread char target[PATH_MAX_BYTES];
  memcpy(full, dir, dir_len);
  full[dir_len] = '/';
  for (size_t i = 0; i < count; i++) {
    const char *name = list.names[i];
    double *f = fields + i * FIELDS;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      int err = errno;
      if (err == ENOENT) {
        memset(f, 0, FIELDS * sizeof(double));
        continue;
      }
      snprintf(full + dir_len + 1, PATH_MAX_BYTES, "%s", name);
      close(dfd);
      free_names(&list);
      return throw_errno(env, err, "lstat", full);
    }
    f[F_MODE] = st.st_mode;
    f[F_UID] = st.st_uid;
    f[F_GID] = st.st_gid;
    f[F_NLINK] = (double)st.st_nlink;
    f[F_SIZE] = (double)st.st_size;
    f[F_MTIME_SEC] = (double)st.st_mtim.tv_sec;
    f[F_MTIME_NSEC] = (double)st.st_mtim.tv_nsec;
    f[F_DEV] = (double)st.st_dev;
    f[F_INO_HIGH] = (double)(st.st_ino >> 32);
    f[F_INO_LOW] = (double)(st.st_ino & 0xffffffffu);
    f[F_RDEV_MAJOR] = major(st.st_rdev);
    f[F_RDEV_MINOR] = minor(st.st_rdev);
    if (S_ISLNK(st.st_mode)) {
      ssize_t n = readlinkat(dfd, name, target, sizeof target);
      if (n >= 0) {
        napi_value link;
        napi_create_string_utf8(env, target, (size_t)n, &link);
        napi_set_element(env, links, (uint32_t)i, link);
      }
    }
    size_t name_len = strlen(name);
    if (dir_len + 1 + name_len >= sizeof full) {
      close(dfd);
      free_names(&list);
      return throw_errno(env, ENAMETOOLONG, "llistxattr", dir);
    }
    memcpy(full + dir_len + 1, name, name_len + 1);
    ssize_t len = llistxattr(full, list_buf, sizeof list_buf);
    if (len > 0) {
      size_t n_items = 0;
      for (ssize_t j = 0; j < len; j += (ssize_t)strnlen(list_buf + j, (size_t)(len - j)) + 1) n_items++;
      char **items = malloc(n_items * sizeof *items);
      size_t *lengths = malloc(n_items * sizeof *lengths);
      if (!items || !lengths) {
        free(items);
        free(lengths);
        close(dfd);
        free_names(&list);
        return throw_errno(env, ENOMEM, "llistxattr", full);
      }
      size_t k = 0;
      for (ssize_t j = 0; j < len && k < n_items; k++) {
        size_t n = strnlen(list_buf + j, (size_t)(len - j));
        items[k] = list_buf + j;
        lengths[k] = n;
        j += (ssize_t)n + 1;
      }
      napi_set_element(env, xattrs, (uint32_t)i, string_array(env, items, lengths, n_items));
      free(items);
      free(lengths);
    } else if (len < 0 && errno != ENOTSUP && errno != ENOENT) {
      int err = errno;
      close(dfd);
      free_names(&list);
      return throw_errno(env, err, "llistxattr", full);
    }
  }
  close(dfd);
  free_names(&list);

  napi_value result;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "names", names_value);
  napi_set_named_property(env, result, "stats", stats);
  napi_set_named_property(env, result, "links", links);
  napi_set_named_property(env, result, "xattrs", xattrs);
  return result;
}

// read_file_into(path, buffer, offset, length, position) -> bytes read: open (never following a final
// symlink), one pread loop, close. One native call per file instead of three Node ones.
static napi_value js_read_file_into(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char path[PATH_MAX_BYTES];
  void *data = NULL;
  size_t length = 0;
  if (get_path_and_bytes(env, info, 5, argv, path, &data, &length, "read_file_into(path, buffer, offset, length, position)") != 0) return NULL;
  double offset = get_number(env, argv[2]), want = get_number(env, argv[3]), position = get_number(env, argv[4]);
  if (offset < 0 || want < 0 || offset + want > (double)length) {
    napi_throw_range_error(env, "ERANGE", "read_file_into: offset and length must lie within the buffer");
    return NULL;
  }
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  char *out = (char *)data + (size_t)offset;
  size_t total = 0, goal = (size_t)want;
  off_t at = (off_t)position;
  while (total < goal) {
    ssize_t n = pread(fd, out + total, goal - total, at + (off_t)total);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return throw_errno(env, err, "read", path);
    }
    if (n == 0) break;
    total += (size_t)n;
  }
  close(fd);
  napi_value result;
  napi_create_double(env, (double)total, &result);
  return result;
}

// write_new_file(path, data, mode, uid, gid, mtimeSec, mtimeNsec) -> undefined: creates a file that must not
// exist yet (never through a symlink), writes all of `data`, sets owner (uid < 0: leave it), mode (after
// the owner: chown clears setuid bits) and atime = mtime, and closes it: what an apply does for each small
// file, in one call instead of six.
static napi_value js_write_new_file(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  char path[PATH_MAX_BYTES];
  void *data = NULL;
  size_t length = 0;
  if (get_path_and_bytes(env, info, 7, argv, path, &data, &length, "write_new_file(path, data, mode, uid, gid, mtimeSec, mtimeNsec)") != 0) return NULL;
  mode_t mode = (mode_t)get_number(env, argv[2]);
  double uid = get_number(env, argv[3]), gid = get_number(env, argv[4]);
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = (time_t)get_number(env, argv[5]);
  times[0].tv_nsec = times[1].tv_nsec = (long)get_number(env, argv[6]);

  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  const char *bytes = data;
  const char *syscall = NULL;
  for (size_t done = 0; done < length && !syscall;) {
    ssize_t n = write(fd, bytes + done, length - done);
    if (n < 0) {
      if (errno != EINTR) syscall = "write";
    } else {
      done += (size_t)n;
    }
  }
  if (!syscall && uid >= 0 && fchown(fd, (uid_t)uid, (gid_t)gid) != 0) syscall = "fchown";
  if (!syscall && fchmod(fd, mode) != 0) syscall = "fchmod";
  if (!syscall && futimens(fd, times) != 0) syscall = "futimens";
  int err = errno;
  if (close(fd) != 0 && !syscall) {
    err = errno;
    syscall = "close";
  }
  if (syscall) return throw_errno(env, err, syscall, path);
  return NULL;
}

// copy_file_to(path, fd, length, position) -> bytes copied: appends `length` bytes of the file at `path`
// (never following a final symlink) from `position` to `fd` at its file offset, inside the kernel
// (copy_file_range: no trip through a user buffer, a reflink where the filesystem shares extents). Falls
// back to a read/write loop where the kernel cannot copy between the two files. Short only at end of file.
static napi_value js_copy_file_to(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char path[PATH_MAX_BYTES];
  if (get_path_args(env, info, 4, 4, argv, path, "copy_file_to(path, fd, length, position)") < 0) return NULL;
  int out = (int)get_number(env, argv[1]);
  size_t goal = (size_t)get_number(env, argv[2]);
  off_t at = (off_t)get_number(env, argv[3]);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  size_t total = 0;
  int in_kernel = 1;
  const char *syscall = NULL;
  int err = 0;
  while (total < goal && !syscall) {
    ssize_t n;
    if (in_kernel) {
      n = copy_file_range(fd, &at, out, NULL, goal - total, 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        in_kernel = 0;
        continue;
      }
    } else {
      char buffer[65536];
      size_t want = goal - total < sizeof buffer ? goal - total : sizeof buffer;
      n = pread(fd, buffer, want, at);
      if (n > 0) {
        for (ssize_t done = 0; done < n;) {
          ssize_t w = write(out, buffer + done, (size_t)(n - done));
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) {
            syscall = "write";
            err = errno;
            break;
          }
          done += w;
        }
        at += n;
      }
    }
    if (syscall) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      syscall = in_kernel ? "copy_file_range" : "read";
      err = errno;
      break;
    }
    if (n == 0) break;
    total += (size_t)n;
  }
  close(fd);
  if (syscall) return throw_errno(env, err, syscall, path);
  napi_value result;
  napi_create_double(env, (double)total, &result);
  return result;
}

// A file hasher: sha256 of a file being written, fed from its pages in the page cache (mapped, not
// copied), shared by the thread that writes the file and the one that produces it. The writer publishes how
// many bytes the file holds; either thread may then hash the next stretch, whichever is free (a try-lock:
// a busy thread never waits on the other). OpenSSL comes from the Node binary, which exports it for
// addons. The hasher is a plain heap object named by its address, so that both threads' addon instances can
// reach it; its owner frees it, once the writing thread is done with it.
typedef struct {
  pthread_mutex_t lock;
  EVP_MD_CTX *ctx;
  int fd;
  _Atomic int64_t written;
  int64_t hashed; // under lock
} file_hasher;

#define HASH_WINDOW (4 << 20)

// Reads `want` arguments, the first a hasher handle; NULL (with a TypeError thrown) when it is not one.
static file_hasher *hasher_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint64_t address = 0;
  bool lossless = false;
  if (argc < want || napi_get_value_bigint_uint64(env, argv[0], &address, &lossless) != napi_ok || !lossless || address == 0) {
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  return (file_hasher *)(uintptr_t)address;
}

// file_hasher_create(path) -> handle (bigint): opens `path` for reading.
static napi_value js_file_hasher_create(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[PATH_MAX_BYTES];
  if (get_path_args(env, info, 1, 1, argv, path, "file_hasher_create(path)") < 0) return NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  file_hasher *h = calloc(1, sizeof *h);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!h || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    free(h);
    EVP_MD_CTX_free(ctx);
    close(fd);
    return throw_errno(env, ENOMEM, "file_hasher_create", path);
  }
  pthread_mutex_init(&h->lock, NULL);
  h->ctx = ctx;
  h->fd = fd;
  napi_value handle;
  napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)h, &handle);
  return handle;
}

// file_hasher_written(handle, bytes): the file now holds `bytes` bytes (called by the writer).
static napi_value js_file_hasher_written(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  file_hasher *h = hasher_args(env, info, 2, argv, "file_hasher_written(handle, bytes)");
  if (!h) return NULL;
  atomic_store(&h->written, (int64_t)get_number(env, argv[1]));
  return NULL;
}

// Hashes up to `limit` more of what is written; the lock is held. 0, or an errno.
static int hash_written(file_hasher *h, int64_t limit) {
  int64_t goal = atomic_load(&h->written);
  if (goal > h->hashed + limit) goal = h->hashed + limit;
  long page = sysconf(_SC_PAGESIZE);
  while (h->hashed < goal) {
    int64_t length = goal - h->hashed < HASH_WINDOW ? goal - h->hashed : HASH_WINDOW;
    off_t start = (off_t)h->hashed & ~((off_t)page - 1);
    size_t skip = (size_t)((off_t)h->hashed - start), span = skip + (size_t)length;
    void *map = mmap(NULL, span, PROT_READ, MAP_SHARED | MAP_POPULATE, h->fd, start);
    if (map == MAP_FAILED) return errno;
    int ok = EVP_DigestUpdate(h->ctx, (const char *)map + skip, (size_t)length);
    munmap(map, span);
    if (ok != 1) return EIO;
    h->hashed += length;
  }
  return 0;
}

// file_hasher_hash(handle, limit) -> bytes written but not hashed, or -1 when the other thread is hashing.
static napi_value js_file_hasher_hash(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  file_hasher *h = hasher_args(env, info, 2, argv, "file_hasher_hash(handle, limit)");
  if (!h) return NULL;
  double limit = get_number(env, argv[1]);
  napi_value result;
  if (pthread_mutex_trylock(&h->lock) != 0) {
    napi_create_double(env, -1, &result);
    return result;
  }
  int err = hash_written(h, limit > 9e15 ? INT64_MAX / 2 : (int64_t)limit);
  int64_t left = atomic_load(&h->written) - h->hashed;
  pthread_mutex_unlock(&h->lock);
  if (err) return throw_errno(env, err, "mmap", "layer file");
  napi_create_double(env, (double)left, &result);
  return result;
}

// file_hasher_digest(handle) -> hex: hashes the rest of what is written, then finishes (once).
static napi_value js_file_hasher_digest(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  file_hasher *h = hasher_args(env, info, 1, argv, "file_hasher_digest(handle)");
  if (!h) return NULL;
  if (!h->ctx) {
    napi_throw_error(env, "EINVAL", "file_hasher_digest: digested already");
    return NULL;
  }
  pthread_mutex_lock(&h->lock);
  int err = hash_written(h, INT64_MAX / 2);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (!err && EVP_DigestFinal_ex(h->ctx, md, &size) != 1) err = EIO;
  EVP_MD_CTX_free(h->ctx);
  h->ctx = NULL;
  pthread_mutex_unlock(&h->lock);
  if (err) return throw_errno(env, err, "digest", "layer file");
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned int i = 0; i < size; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  napi_value result;
  napi_create_string_utf8(env, hex, 2 * size, &result);
  return result;
}

// file_hasher_free(handle): closes and frees; nothing may use the handle after.
static napi_value js_file_hasher_free(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  file_hasher *h = hasher_args(env, info, 1, argv, "file_hasher_free(handle)");
  if (!h) return NULL;
  EVP_MD_CTX_free(h->ctx);
  close(h->fd);
  pthread_mutex_destroy(&h->lock);
  free(h);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL},
    {"lutimens", NULL, js_lutimens, NULL, NULL, NULL, napi_default, NULL},
    {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lremovexattr", NULL, js_lremovexattr, NULL, NULL, NULL, napi_default, NULL},
    {"lstatBatch", NULL, js_lstat_batch, NULL, NULL, NULL, napi_default, NULL},
    {"readFileInto", NULL, js_read_file_into, NULL, NULL, NULL, napi_default, NULL},
    {"writeNewFile", NULL, js_write_new_file, NULL, NULL, NULL, napi_default, NULL},
    {"copyFileTo", NULL, js_copy_file_to, NULL, NULL, NULL, napi_default, NULL},
    {"fileHasherCreate", NULL, js_file_hasher_create, NULL, NULL, NULL, napi_default, NULL},
    {"fileHasherWritten", NULL, js_file_hasher_written, NULL, NULL, NULL, napi_default, NULL},
    {"fileHasherHash", NULL, js_file_hasher_hash, NULL, NULL, NULL, napi_default, NULL},
    {"fileHasherDigest", NULL, js_file_hasher_digest, NULL, NULL, NULL, napi_default, NULL},
    {"fileHasherFree", NULL, js_file_hasher_free, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
