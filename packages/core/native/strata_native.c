// The few syscalls Node does not expose and layers need: mknod (devices, fifos, overlay whiteouts),
// utimensat with nanoseconds on the link itself, and the l*xattr family (never following a symlink); and
// batched calls for the hot paths (lstat of a whole directory, a whole small file read or written, a file
// range copied or hashed in the kernel's pages). Synchronous on purpose: each is a few cheap syscalls, and
// a thread-pool round trip would cost more than the call. Operations relative to directory descriptors,
// which apply uses so that nothing it decided can be redirected later, are in at.c.
#include "common.h"
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <dirent.h>

napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
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

// The length of the well-formed UTF-8 sequence at `s` (of `left` bytes), its code point in *cp; 0 when
// ill-formed (overlong, a surrogate, past U+10FFFF, cut short).
static size_t utf8_sequence(const unsigned char *s, size_t left, unsigned *cp) {
  unsigned c = s[0];
  if (c < 0x80) return *cp = c, 1;
  size_t n;
  unsigned min;
  if (c >= 0xc2 && c <= 0xdf) n = 1, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef) n = 2, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4) n = 3, min = 0x10000;
  else return 0;
  if (n >= left) return 0;
  unsigned v = c & (0x3f >> n);
  for (size_t i = 1; i <= n; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n + 1;
}

// How many of the `len` bytes at `s` are well-formed UTF-8 before the first ill-formed sequence.
static size_t utf8_prefix(const unsigned char *s, size_t len) {
  unsigned cp;
  size_t i = 0;
  for (size_t n; i < len && (n = utf8_sequence(s + i, len - i, &cp)) != 0;) i += n;
  return i;
}

napi_status name_string(napi_env env, const char *bytes, size_t len, napi_value *out) {
  const unsigned char *s = (const unsigned char *)bytes;
  unsigned cp;
  size_t i;
  if (utf8_prefix(s, len) == len) return napi_create_string_utf8(env, bytes, len, out);
  // Ill-formed: each byte of a bad sequence as the surrogate escape U+DC80..U+DCFF (what name-bytes.ts does).
  char16_t *units = malloc(len * sizeof *units + 1);
  if (!units) return napi_generic_failure;
  size_t count = 0;
  for (i = 0; i < len;) {
    size_t n = utf8_sequence(s + i, len - i, &cp);
    if (n == 0) {
      units[count++] = (char16_t)(0xdc00 + s[i]);
      i++;
    } else if (cp >= 0x10000) {
      units[count++] = (char16_t)(0xd800 + ((cp - 0x10000) >> 10));
      units[count++] = (char16_t)(0xdc00 + ((cp - 0x10000) & 0x3ff));
      i += n;
    } else {
      units[count++] = (char16_t)cp;
      i += n;
    }
  }
  napi_status status = napi_create_string_utf16(env, units, count, out);
  free(units);
  return status;
}

// A string holding surrogate escapes (or a U+FFFD, or too long for the UTF-8 read) written as its bytes:
// UTF-8, but U+DC80..U+DCFF alone as the byte it stands for. 0, -ENAMETOOLONG, or -EINVAL for a NUL or
// another lone surrogate.
static int escaped_path(napi_env env, napi_value value, char *out) {
  static __thread char16_t units[PATH_MAX_BYTES];
  size_t count = 0;
  if (napi_get_value_string_utf16(env, value, units, PATH_MAX_BYTES, &count) != napi_ok) return -1;
  if (count >= PATH_MAX_BYTES - 1) return -ENAMETOOLONG;
  size_t len = 0;
  for (size_t i = 0; i < count; i++) {
    unsigned c = units[i];
    unsigned char bytes[4];
    size_t n;
    if (c == 0) return -EINVAL;
    if (c < 0x80) bytes[0] = (unsigned char)c, n = 1;
    else if (c < 0x800) bytes[0] = 0xc0 | (c >> 6), bytes[1] = 0x80 | (c & 0x3f), n = 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < count && units[i + 1] >= 0xdc00 && units[i + 1] <= 0xdfff) {
      unsigned cp = 0x10000 + ((c - 0xd800) << 10) + (units[++i] - 0xdc00);
      bytes[0] = 0xf0 | (cp >> 18), bytes[1] = 0x80 | ((cp >> 12) & 0x3f), bytes[2] = 0x80 | ((cp >> 6) & 0x3f), bytes[3] = 0x80 | (cp & 0x3f), n = 4;
    } else if (c >= 0xdc80 && c <= 0xdcff) bytes[0] = (unsigned char)(c - 0xdc00), n = 1;
    else if (c >= 0xd800 && c <= 0xdfff) return -EINVAL;
    else bytes[0] = 0xe0 | (c >> 12), bytes[1] = 0x80 | ((c >> 6) & 0x3f), bytes[2] = 0x80 | (c & 0x3f), n = 3;
    if (len + n >= PATH_MAX_BYTES - 1) return -ENAMETOOLONG;
    memcpy(out + len, bytes, n);
    len += n;
  }
  out[len] = 0;
  return 0;
}

int get_path(napi_env env, napi_value value, char *out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, out, PATH_MAX_BYTES, &len) != napi_ok) return -1;
  // Node writes a lone surrogate as U+FFFD: a name carrying bytes that are not UTF-8 is read again.
  if (len >= PATH_MAX_BYTES - 1 || memmem(out, len, "\xef\xbf\xbd", 3) != NULL) return escaped_path(env, value, out);
  return strlen(out) == len ? 0 : -EINVAL; // a NUL inside would cut the path short: refuse it
}

// The bytes of a Uint8Array argument; -1 when it is not one.
int get_bytes(napi_env env, napi_value value, void **data, size_t *length) {
  napi_typedarray_type type;
  napi_value arraybuffer;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(env, value, &type, length, data, &arraybuffer, &byte_offset) != napi_ok) return -1;
  return type == napi_uint8_array ? 0 : -1;
}

// Reads up to `max` arguments into `argv`, at least `need` of them, the first a path into `path`; returns how
// many were given, or -1 (with a TypeError thrown) when too few were or the first is not a path string.
int get_path_args(napi_env env, napi_callback_info info, size_t need, size_t max, napi_value *argv, char *path, const char *usage) {
  size_t argc = max;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < need) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  int err = get_path(env, argv[0], path);
  if (err == -1) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  if (err < 0) {
    // Name the path (its start, when it is too long), not the argument list.
    throw_errno(env, -err, usage_syscall(usage), path);
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

const char *usage_syscall(const char *usage) {
  static __thread char name[64];
  size_t n = strcspn(usage, "(");
  if (n >= sizeof name) n = sizeof name - 1;
  memcpy(name, usage, n);
  name[n] = 0;
  return name;
}

double get_number(napi_env env, napi_value value) {
  double d = 0;
  napi_get_value_double(env, value, &d);
  return d;
}

// mknod(path, mode, major, minor): mode carries the file type bits (S_IFCHR, S_IFBLK, S_IFIFO).
napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char path[PATH_MAX_BYTES];
  if (get_path_args(env, info, 4, 4, argv, path, "mknod(path, mode, major, minor)") < 0) return NULL;
  mode_t mode = (mode_t)get_number(env, argv[1]);
  dev_t dev = makedev((unsigned)get_number(env, argv[2]), (unsigned)get_number(env, argv[3]));
  if (mknod(path, mode, dev) != 0) return throw_errno(env, errno, "mknod", path);
  return NULL;
}

// lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec): never follows a final symlink.
napi_value js_lutimens(napi_env env, napi_callback_info info) {
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
napi_value js_llistxattr(napi_env env, napi_callback_info info) {
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
napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
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
napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
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
napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX_BYTES], name[XATTR_NAME_MAX_BYTES + 1];
  if (get_path_and_name(env, info, 2, argv, path, name, "lremovexattr(path, name)") != 0) return NULL;
  if (lremovexattr(path, name) != 0 && errno != ENODATA) return throw_errno(env, errno, "lremovexattr", path);
  return NULL;
}

void fill_stat(double *f, const struct stat *st) {
  f[F_MODE] = st->st_mode;
  f[F_UID] = st->st_uid;
  f[F_GID] = st->st_gid;
  f[F_NLINK] = (double)st->st_nlink;
  f[F_SIZE] = (double)st->st_size;
  f[F_MTIME_SEC] = (double)st->st_mtim.tv_sec;
  f[F_MTIME_NSEC] = (double)st->st_mtim.tv_nsec;
  f[F_DEV] = (double)st->st_dev;
  f[F_INO_HIGH] = (double)(st->st_ino >> 32);
  f[F_INO_LOW] = (double)(st->st_ino & 0xffffffffu);
  f[F_RDEV_MAJOR] = major(st->st_rdev);
  f[F_RDEV_MINOR] = minor(st->st_rdev);
  f[F_CTIME_SEC] = (double)st->st_ctim.tv_sec;
  f[F_CTIME_NSEC] = (double)st->st_ctim.tv_nsec;
}

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

// Strings of `count` names (NUL-terminated when `lengths` is NULL), each as name_string reads it: bytes that
// are not UTF-8 as surrogate escapes, so every name of a directory comes back and get_path finds it again.
static napi_value name_array(napi_env env, char *const *items, const size_t *lengths, size_t count) {
  napi_value array;
  napi_create_array_with_length(env, count, &array);
  for (size_t i = 0; i < count; i++) {
    napi_value s;
    name_string(env, items[i], lengths ? lengths[i] : strlen(items[i]), &s);
    napi_set_element(env, array, (uint32_t)i, s);
  }
  return array;
}

// The names in directory `dfd` (not "." or ".."), appended to `list`: 0, or an errno. `dfd` stays open
// (the listing reads a duplicate).
static int read_names(int dfd, name_list *list) {
  int fd = dup(dfd);
  if (fd < 0) return errno;
  char *names = NULL;
  size_t count = 0;
  int err = list_names(fd, &names, &count);
  const char *n = names;
  for (size_t i = 0; !err && i < count; i++, n += strlen(n) + 1) {
    if (push_name(list, n, strlen(n)) != 0) err = ENOMEM;
  }
  free(names);
  return err;
}


static int compare_bytes(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

// list_dir_sorted(dir) -> string[]: the names in `dir` (not "." or "..") in byte order, the order of a tar
// walk (names that are not UTF-8 as name_string reads them). Sorted here: a JavaScript comparator took 15-27 ms for the 18,000
// names of /usr/share/man/man1.
napi_value js_list_dir_sorted(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char dir[PATH_MAX_BYTES];
  if (get_path_args(env, info, 1, 1, argv, dir, "list_dir_sorted(dir)") < 0) return NULL;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", dir);
  char *names = NULL;
  size_t count = 0;
  int err = list_names(fd, &names, &count);
  if (err) return throw_errno(env, err, "readdir", dir);
  char **sorted = malloc((count ? count : 1) * sizeof *sorted);
  if (!sorted) {
    free(names);
    return throw_errno(env, ENOMEM, "readdir", dir);
  }
  char *n = names;
  for (size_t i = 0; i < count; i++, n += strlen(n) + 1) sorted[i] = n;
  if (count > 1) qsort(sorted, count, sizeof *sorted, compare_bytes);
  napi_value result = name_array(env, sorted, NULL, count);
  free(sorted);
  free(names);
  return result;
}

#ifndef SYS_listxattrat
#define SYS_listxattrat 465 // Linux 6.13, the same number on every architecture
#endif
// Cleared when the kernel (or a seccomp filter that does not know it) refuses listxattrat.
static atomic_bool have_listxattrat = true;

// The xattr names of entry `name` of directory `dfd` (`path` names the same entry), the entry itself where
// it is a symlink: listxattrat looks up the one name below the directory, where llistxattr walks the whole
// path again (a C walk of /usr/share's 54,000 entries here: 226 ms with fstatat alone, 360 ms with
// llistxattr besides, 325 ms with listxattrat). Bytes, or -1 with errno.
static ssize_t list_xattrs_at(int dfd, const char *name, const char *path, char *list, size_t size) {
  if (atomic_load_explicit(&have_listxattrat, memory_order_relaxed)) {
    long n = syscall(SYS_listxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, list, size);
    if (n >= 0 || (errno != ENOSYS && errno != EPERM)) return (ssize_t)n;
    atomic_store_explicit(&have_listxattrat, false, memory_order_relaxed);
  }
  return llistxattr(path, list, size);
}

// lstat_batch(dir, names?) -> { names, stats: Float64Array, links, xattrs }: lstat of each name in `dir`
// (all of its entries when `names` is omitted), with each symlink's target and each entry's xattr names,
// in one call. This replaces four Node calls per entry on the walks that pack layers and diff uppers.
// An entry that vanished since it was listed gets mode 0. links[i] / xattrs[i] are undefined when empty.
napi_value js_lstat_batch(napi_env env, napi_callback_info info) {
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
      napi_get_element(env, names_value, i, &item);
      int err = get_path(env, item, name);
      if (err != 0 || push_name(&list, name, strlen(name)) != 0) {
        close(dfd);
        free_names(&list);
        if (err < -1) return throw_errno(env, -err, "lstat", dir);
        napi_throw_type_error(env, "EINVAL", "lstat_batch: names must be strings");
        return NULL;
      }
    }
  } else {
    int err = read_names(dfd, &list);
    if (err != 0) {
      close(dfd);
      free_names(&list);
      return throw_errno(env, err, "readdir", dir);
    }
    names_value = name_array(env, list.names, NULL, list.count);
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
    fill_stat(f, &st);
    if (S_ISLNK(st.st_mode)) {
      ssize_t n = readlinkat(dfd, name, target, sizeof target);
      if (n >= 0) {
        napi_value link;
        name_string(env, target, (size_t)n, &link);
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
    ssize_t len = list_xattrs_at(dfd, name, full, list_buf, sizeof list_buf);
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
      napi_set_element(env, xattrs, (uint32_t)i, name_array(env, items, lengths, n_items));
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

// Reads up to `goal` bytes of open file `fd` from `at` into `out`: bytes read (short only at end of file),
// or -errno with `*syscall` set.
static ssize_t read_fd_at(int fd, char *out, size_t goal, off_t at, const char **syscall) {
  size_t total = 0;
  while (total < goal) {
    ssize_t n = pread(fd, out + total, goal - total, at + (off_t)total);
    if (n < 0) {
      if (errno == EINTR) continue;
      *syscall = "read";
      return -errno;
    }
    if (n == 0) break;
    total += (size_t)n;
  }
  return (ssize_t)total;
}

// Opens `path` for reading, never following a final symlink: the fd, or -errno with `*syscall` set.
static int open_source(const char *path, const char **syscall) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) *syscall = "open";
  return fd < 0 ? -errno : fd;
}

// `read_fd_at` of the file at `path`: open, read, close.
static ssize_t read_file_at(const char *path, char *out, size_t goal, off_t at, const char **syscall) {
  int fd = open_source(path, syscall);
  if (fd < 0) return fd;
  ssize_t total = read_fd_at(fd, out, goal, at, syscall);
  close(fd);
  return total;
}

// read_file_into(path, buffer, offset, length, position) -> bytes read: `read_file_at` into the buffer.
// One native call per file instead of three Node ones.
napi_value js_read_file_into(napi_env env, napi_callback_info info) {
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
  const char *syscall = NULL;
  ssize_t total = read_file_at(path, (char *)data + (size_t)offset, (size_t)want, (off_t)position, &syscall);
  if (total < 0) return throw_errno(env, (int)-total, syscall, path);
  napi_value result;
  napi_create_double(env, (double)total, &result);
  return result;
}

// start_writeback(fd, offset, length) -> undefined: starts writing the range's dirty pages to disk and
// returns without waiting (sync_file_range), so that a later fsync waits for little. Best effort: a failure
// here shows again in that fsync.
napi_value js_start_writeback(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    napi_throw_type_error(env, "EINVAL", "start_writeback(fd, offset, length)");
    return NULL;
  }
  sync_file_range((int)get_number(env, argv[0]), (off_t)get_number(env, argv[1]), (off_t)get_number(env, argv[2]), SYNC_FILE_RANGE_WRITE);
  return NULL;
}

// write_new_file(path, data, mode, uid, gid, mtimeSec, mtimeNsec) -> undefined: creates a file that must not
// exist yet (never through a symlink), writes all of `data`, sets owner (uid < 0: leave it), mode (after
// the owner: chown clears setuid bits) and atime = mtime, and closes it: what an apply does for each small
// file, in one call instead of six.
napi_value js_write_new_file(napi_env env, napi_callback_info info) {
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

// Writes all of `length` bytes to `fd`; 0, or an errno.
int write_all(int fd, const void *bytes, size_t length) {
  for (size_t done = 0; done < length;) {
    ssize_t n = write(fd, (const char *)bytes + done, length - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += (size_t)n;
  }
  return 0;
}

// How the kernel copies between a source and the layer file: copy_file_range (a reflink where the file
// system shares extents), sendfile (page cache to page cache, across file systems, where copy_file_range
// refuses with EXDEV), or neither: a read/write loop through a user buffer, a second copy of every byte.
typedef enum { COPY_RANGE, COPY_SENDFILE, COPY_USER } copy_mode;

// Appends `goal` bytes of open file `fd` from `at` to `out` at its file offset (for the layer writer below),
// inside the kernel where it can: `*mode` starts at COPY_RANGE and steps down for good when a way is refused
// (a writer's sources and layer file stay on the same file systems). Bytes copied (short only at end of
// file), or -errno with `*syscall` set.
static ssize_t copy_fd_at(int fd, int out, size_t goal, off_t at, copy_mode *mode, const char **syscall) {
  size_t total = 0;
  while (total < goal) {
    ssize_t n;
    if (*mode == COPY_RANGE) {
      n = copy_file_range(fd, &at, out, NULL, goal - total, 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        *mode = COPY_SENDFILE;
        continue;
      }
    } else if (*mode == COPY_SENDFILE) {
      n = sendfile(out, fd, &at, goal - total);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        *mode = COPY_USER;
        continue;
      }
    } else {
      _Alignas(64) char buffer[65536]; // the kernel's copy into it is slow unaligned (see `file_hasher`)
      size_t want = goal - total < sizeof buffer ? goal - total : sizeof buffer;
      n = pread(fd, buffer, want, at);
      if (n > 0) {
        int err = write_all(out, buffer, (size_t)n);
        if (err) return *syscall = "write", -err;
        at += n;
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      *syscall = *mode == COPY_RANGE ? "copy_file_range" : *mode == COPY_SENDFILE ? "sendfile" : "read";
      return -errno;
    }
    if (n == 0) break;
    total += (size_t)n;
  }
  return (ssize_t)total;
}

// A file hasher: sha256 of a file being written, read back from the page cache as it is written, shared by
// the layer writer's hashing thread (below) and the JavaScript thread, which produces the file. The writer
// publishes how many bytes the file holds; either thread may then hash the next stretch, whichever is free
// (a try-lock: a busy thread never waits on the other). OpenSSL comes from the Node binary, which exports
// it for addons. JavaScript holds the hasher by its address and frees it, once the writing thread is done
// with it.
//
// Read with pread into one small buffer, not mapped: hashing the 205 MB minbase layer from tmpfs took 230 ms
// of CPU mapped (MAP_POPULATE, 1-4 MiB windows) against 143 ms read into a 256 KiB buffer (128 against 210-230
// on ext4), where the hash alone is about 116 ms. A mapping touches every page through a new translation, which
// in a VM costs more than the copy; the buffer stays in the cache and its translations stay warm.
//
// Page-aligned (see io_buffer.c): malloc's large blocks start 16 bytes into a page, and the kernel's copy into
// such a buffer took five times as long on these VMs (AMD's `rep movsb` with a destination not 32-byte
// aligned). A digest's hashing thread, racing the parse on the other core, took 0.9 s for the 727 MB
// /usr/share layer, and slowed the parse beside it; 0.6 s aligned.
typedef struct {
  pthread_mutex_t lock;
  EVP_MD_CTX *ctx;
  int fd;
  _Atomic int64_t written;
  int64_t hashed;  // under lock
  uint8_t *buffer; // under lock; HASH_BUFFER bytes, allocated on first use
} file_hasher;

#define HASH_BUFFER (256 * 1024)

// Reads `want` arguments, the first a handle (a hasher's or a writer's address, as a bigint); NULL (with a
// TypeError thrown) when it is not one.
static void *handle_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint64_t address = 0;
  bool lossless = false;
  if (argc < want || napi_get_value_bigint_uint64(env, argv[0], &address, &lossless) != napi_ok || !lossless || address == 0) {
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  return (void *)(uintptr_t)address;
}

// file_hasher_create(path?) -> handle (bigint): opens `path` for reading. Without a path, a hasher of bytes
// fed to it from memory (a layer writer with no file: a stream only hashed, on the writer's thread).
napi_value js_file_hasher_create(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype type = napi_undefined;
  if (argc > 0) napi_typeof(env, argv[0], &type);
  char path[PATH_MAX_BYTES] = "hashed stream";
  int fd = -1;
  if (type != napi_null && type != napi_undefined) {
    if (get_path_args(env, info, 1, 1, argv, path, "file_hasher_create(path?)") < 0) return NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return throw_errno(env, errno, "open", path);
  }
  file_hasher *h = calloc(1, sizeof *h);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!h || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    free(h);
    EVP_MD_CTX_free(ctx);
    if (fd >= 0) close(fd);
    return throw_errno(env, ENOMEM, "file_hasher_create", path);
  }
  pthread_mutex_init(&h->lock, NULL);
  h->ctx = ctx;
  h->fd = fd;
  napi_value handle;
  napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)h, &handle);
  return handle;
}

// Hashes up to `limit` more of what is written; the lock is held. 0, or an errno (EIO when the file holds less
// than was written to it: something else truncated it).
static int hash_written(file_hasher *h, int64_t limit) {
  int64_t goal = atomic_load(&h->written);
  if (goal > h->hashed + limit) goal = h->hashed + limit;
  if (h->hashed < goal && !h->buffer && !(h->buffer = aligned_alloc(4096, HASH_BUFFER))) return ENOMEM;
  while (h->hashed < goal) {
    size_t want = goal - h->hashed < HASH_BUFFER ? (size_t)(goal - h->hashed) : HASH_BUFFER;
    ssize_t n = pread(h->fd, h->buffer, want, (off_t)h->hashed);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    if (EVP_DigestUpdate(h->ctx, h->buffer, (size_t)n) != 1) return EIO;
    h->hashed += n;
  }
  return 0;
}

// Hashes up to `limit` more of what is written, unless the other thread is at it: the bytes written but not
// hashed, -1 when the other thread holds the hasher, or -errno.
static int64_t hash_some(file_hasher *h, int64_t limit) {
  if (pthread_mutex_trylock(&h->lock) != 0) return -1;
  int err = hash_written(h, limit);
  int64_t left = atomic_load(&h->written) - h->hashed;
  pthread_mutex_unlock(&h->lock);
  return err ? -err : left;
}

// file_hasher_hash(handle, limit) -> bytes written but not hashed, or -1 when the other thread is hashing.
napi_value js_file_hasher_hash(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  file_hasher *h = handle_args(env, info, 2, argv, "file_hasher_hash(handle, limit)");
  if (!h) return NULL;
  double limit = get_number(env, argv[1]);
  int64_t left = hash_some(h, limit > 9e15 ? INT64_MAX / 2 : (int64_t)limit);
  if (left < -1) return throw_errno(env, (int)-left, "pread", "layer file");
  napi_value result;
  napi_create_double(env, (double)left, &result);
  return result;
}

// file_hasher_digest(handle) -> hex: hashes the rest of what is written, then finishes (once).
napi_value js_file_hasher_digest(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  file_hasher *h = handle_args(env, info, 1, argv, "file_hasher_digest(handle)");
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
napi_value js_file_hasher_free(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  file_hasher *h = handle_args(env, info, 1, argv, "file_hasher_free(handle)");
  if (!h) return NULL;
  EVP_MD_CTX_free(h->ctx);
  if (h->fd >= 0) close(h->fd);
  pthread_mutex_destroy(&h->lock);
  free(h->buffer);
  free(h);
  return NULL;
}

// A layer writer: a native thread that writes a layer file from chunks this thread produces, splicing in
// the content of host files that chunks name (small ones read into its own buffer, large ones copied by the
// kernel), while a hashing thread beside it hashes the file as written through a `file_hasher`. With no
// file (fd -1), the thread only hashes: each chunk goes to the hasher from memory. A thread of ours starts
// in microseconds, where a worker thread costs 50–80 ms of start-up (and of a core).
// Chunks stay owned by JavaScript: each is held by a reference until a poll reports it written, and nothing
// here calls into JavaScript from the writing thread.
#define WRITER_BUFFER (256 * 1024)
#define KERNEL_COPY_THRESHOLD (64 * 1024)
#define WRITER_HASH_TURN (1 << 20)
// A durable writer starts writeback of every WRITEBACK_STEP bytes as it writes them, so that the fdatasync
// it ends with waits for the last few MiB instead of the whole file.
#define WRITEBACK_STEP (8 << 20)

typedef struct {
  size_t at;
  char *path;
  int64_t size;
  int64_t offset;
} writer_file;

typedef struct writer_job {
  struct writer_job *next;
  const uint8_t *bytes;
  size_t length;
  napi_ref keep;
  writer_file *files;
  size_t file_count;
} writer_job;

typedef struct {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  // Under lock:
  writer_job *pending, *pending_tail, *done, *done_tail;
  bool closing, stop, finished;
  int err;             // the first failure: an errno, or -1 for a file that shrank
  const char *syscall;
  char *err_path;
  // The writing thread's own:
  int fd;
  file_hasher *hasher;
  int source_fd; // the file the last splice read, still open (-1: none), and its path
  char *source_path;
  copy_mode copy; // how large files are copied in (see copy_fd_at)
  size_t used;
  int64_t total;
  bool durable;   // fdatasync before finishing, writeback started behind the writing
  int64_t synced; // where writeback was last started up to
  // The hashing thread (with a file only), which follows the writing: under `hash_lock`, how many times
  // the writer wrote (its wake-up call) and whether to stop.
  pthread_t hash_thread;
  bool hashing;
  pthread_mutex_t hash_lock;
  pthread_cond_t hash_wake;
  uint64_t writes;
  bool hash_stop;
  // Page-aligned, as the hasher's buffer, for the small files read into it (see `file_hasher`).
  _Alignas(4096) uint8_t out[WRITER_BUFFER];
} layer_writer;

// `length` more bytes are in the file: the hasher may take them.
static void writer_wrote(layer_writer *w, size_t length) {
  w->total += (int64_t)length;
  atomic_store(&w->hasher->written, w->total);
  if (w->durable && w->total - w->synced >= WRITEBACK_STEP) {
    // Only starts the writeback (never waits for it); a failure shows again in the final fdatasync.
    sync_file_range(w->fd, w->synced, w->total - w->synced, SYNC_FILE_RANGE_WRITE);
    w->synced = w->total;
  }
  if (!w->hashing) return;
  pthread_mutex_lock(&w->hash_lock);
  w->writes++;
  pthread_cond_signal(&w->hash_wake);
  pthread_mutex_unlock(&w->hash_lock);
}

// Hashes `length` bytes straight from memory: how a writer without a file (fd -1) takes its stream.
static int hasher_feed(file_hasher *h, const uint8_t *bytes, size_t length) {
  pthread_mutex_lock(&h->lock);
  int ok = EVP_DigestUpdate(h->ctx, bytes, length);
  h->hashed += (int64_t)length;
  atomic_store(&h->written, h->hashed); // nothing is left for a pass over the file to take
  pthread_mutex_unlock(&h->lock);
  return ok == 1 ? 0 : EIO;
}

static int writer_emit(layer_writer *w, const uint8_t *bytes, size_t length) {
  if (w->fd < 0) {
    w->total += (int64_t)length;
    return hasher_feed(w->hasher, bytes, length);
  }
  int err = write_all(w->fd, bytes, length);
  if (!err) writer_wrote(w, length);
  return err;
}

static int writer_flush(layer_writer *w) {
  int err = w->used > 0 ? writer_emit(w, w->out, w->used) : 0;
  w->used = 0;
  return err;
}

// Makes room for `length` more bytes in the buffer, writing out what it holds when they would not fit.
static int writer_reserve(layer_writer *w, size_t length) {
  return w->used + length > WRITER_BUFFER ? writer_flush(w) : 0;
}

static int writer_append(layer_writer *w, const uint8_t *bytes, size_t length) {
  if (length > WRITER_BUFFER / 4) {
    int err = writer_flush(w);
    return err ? err : writer_emit(w, bytes, length);
  }
  int err = writer_reserve(w, length);
  if (err) return err;
  memcpy(w->out + w->used, bytes, length);
  w->used += length;
  return 0;
}

static void writer_drop_source(layer_writer *w) {
  if (w->source_fd >= 0) close(w->source_fd);
  free(w->source_path);
  w->source_fd = -1;
  w->source_path = NULL;
}

// An open descriptor for `path`: the last splice's when it named the same file (a flatten splices thousands
// of ranges of one layer file, one open each otherwise), else newly opened and kept in its place. The fd, or
// -errno with `*syscall` set.
static int writer_source(layer_writer *w, const char *path, const char **syscall) {
  if (w->source_fd >= 0 && strcmp(w->source_path, path) == 0) return w->source_fd;
  writer_drop_source(w);
  int fd = open_source(path, syscall);
  if (fd < 0) return fd;
  if (!(w->source_path = strdup(path))) {
    close(fd);
    return *syscall = "open", -ENOMEM;
  }
  return w->source_fd = fd;
}

// One host file's content and its padding to a tar block: 0, an errno (with `*syscall`), or -1 when the
// file is shorter than it was.
static int writer_splice(layer_writer *w, const writer_file *f, const char **syscall) {
  size_t size = (size_t)f->size;
  // A small file is read into the buffer; a large one goes from file to file in the kernel, after the buffer.
  bool small = size < KERNEL_COPY_THRESHOLD;
  int err = small ? writer_reserve(w, size) : writer_flush(w);
  if (err) return *syscall = "write", err;
  int source = writer_source(w, f->path, syscall);
  if (source < 0) return -source;
  ssize_t n = small ? read_fd_at(source, (char *)w->out + w->used, size, (off_t)f->offset, syscall)
                    : copy_fd_at(source, w->fd, size, (off_t)f->offset, &w->copy, syscall);
  if (n < 0) return (int)-n;
  if ((size_t)n != size) return -1;
  if (small) w->used += size;
  else writer_wrote(w, size);
  size_t padding = (512 - size % 512) % 512;
  if ((err = writer_reserve(w, padding)) != 0) return *syscall = "write", err;
  memset(w->out + w->used, 0, padding);
  w->used += padding;
  return 0;
}

// Writes one chunk with its files spliced in. 0, or the failure (see `writer_splice`), `*path` naming the
// file it concerns (left NULL for the layer file itself).
static int writer_run(layer_writer *w, const writer_job *job, const char **syscall, const char **path) {
  size_t at = 0;
  for (size_t i = 0; i < job->file_count; i++) {
    const writer_file *f = &job->files[i];
    int err = writer_append(w, job->bytes + at, f->at - at);
    if (err) return *syscall = "write", err;
    if ((err = writer_splice(w, f, syscall)) != 0) return *path = f->path, err;
    at = f->at;
  }
  int err = writer_append(w, job->bytes + at, job->length - at);
  if (err) return *syscall = "write", err;
  return 0;
}

// Records the first failure (`path` NULL: the layer file); the lock is held.
static void writer_fail(layer_writer *w, int err, const char *syscall, const char *path) {
  if (w->err) return;
  w->err = err;
  w->syscall = syscall;
  w->err_path = strdup(path ? path : "layer file");
}

// The writing thread's name, as `ps -T` and /proc/<pid>/task/*/comm show it (at most 15 bytes).
#define WRITER_THREAD_NAME "strata-writer"
#define HASH_THREAD_NAME "strata-hasher"

static void *writer_main(void *arg) {
  layer_writer *w = arg;
  pthread_setname_np(pthread_self(), WRITER_THREAD_NAME);
  pthread_mutex_lock(&w->lock);
  while (!w->stop) {
    writer_job *job = w->pending;
    if (job) {
      w->pending = job->next;
      if (!w->pending) w->pending_tail = NULL;
      bool failed = w->err != 0;
      pthread_mutex_unlock(&w->lock);
      const char *syscall = NULL, *path = NULL;
      int err = failed ? 0 : writer_run(w, job, &syscall, &path);
      pthread_mutex_lock(&w->lock);
      if (err) writer_fail(w, err, syscall, path);
      job->next = NULL;
      if (w->done_tail) w->done_tail->next = job;
      else w->done = job;
      w->done_tail = job;
      continue;
    }
    if (w->closing) {
      pthread_mutex_unlock(&w->lock);
      const char *syscall = "write";
      int err = w->err ? 0 : writer_flush(w);
      if (!err && !w->err && w->durable && fdatasync(w->fd) != 0) err = errno, syscall = "fdatasync";
      pthread_mutex_lock(&w->lock);
      if (err) writer_fail(w, err, syscall, NULL);
      w->finished = true;
      break;
    }
    // Nothing to write: wait for a chunk. The hashing thread hashes what is written meanwhile.
    pthread_cond_wait(&w->wake, &w->lock);
  }
  pthread_mutex_unlock(&w->lock);
  writer_drop_source(w);
  return NULL;
}

// The hashing thread: hashes what is written as it is written, so that the digest is not left to do after
// the last write. sha256 is serial, and the two threads that produce and write the layer are busy while it
// is made: a third, which the kernel gives whichever core has time, keeps the hashing just behind the
// writing (the apt change as a layer, in a warm process: 96 → 86 ms, medians of 40 runs). It hashes in
// turns of WRITER_HASH_TURN, so that a stop waits for one turn at most, and leaves the hasher to the
// JavaScript thread while it holds it; a failure to read stops it, and the digest, which hashes the rest,
// reports it.
static void *hash_main(void *arg) {
  layer_writer *w = arg;
  pthread_setname_np(pthread_self(), HASH_THREAD_NAME);
  pthread_mutex_lock(&w->hash_lock);
  while (!w->hash_stop) {
    uint64_t seen = w->writes;
    pthread_mutex_unlock(&w->hash_lock);
    int64_t left = hash_some(w->hasher, WRITER_HASH_TURN);
    pthread_mutex_lock(&w->hash_lock);
    if (left < -1) break;
    if (left > 0) continue;
    if (left == -1) {
      // The JavaScript thread holds the hasher: look again shortly.
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_nsec += 500000;
      if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
      pthread_cond_timedwait(&w->hash_wake, &w->hash_lock, &until);
    } else {
      while (!w->hash_stop && w->writes == seen) pthread_cond_wait(&w->hash_wake, &w->hash_lock);
    }
  }
  pthread_mutex_unlock(&w->hash_lock);
  return NULL;
}

// Stops the hashing thread, if there is one, and waits for it.
static void writer_stop_hashing(layer_writer *w) {
  if (!w->hashing) return;
  pthread_mutex_lock(&w->hash_lock);
  w->hash_stop = true;
  pthread_cond_signal(&w->hash_wake);
  pthread_mutex_unlock(&w->hash_lock);
  pthread_join(w->hash_thread, NULL);
  w->hashing = false;
}

// A whole file hashed on a thread of its own, through a file hasher that holds the file open: for a reader
// that only parses the file (a digest), whose hash then runs at the speed of the hash from the first byte
// instead of waiting for the parser to hand it each chunk. The thread hashes in turns of WRITER_HASH_TURN
// and stops between turns when asked.
typedef struct {
  file_hasher *hasher;
  pthread_t thread;
  atomic_bool stop;
  atomic_bool done;
  atomic_int err; // errno of a failed read (EIO: the file holds less than it did), or 0
} file_hash_run;

static void *file_hash_main(void *arg) {
  file_hash_run *r = arg;
  pthread_setname_np(pthread_self(), HASH_THREAD_NAME);
  while (!atomic_load(&r->stop)) {
    int64_t left = hash_some(r->hasher, WRITER_HASH_TURN);
    if (left < -1) {
      atomic_store(&r->err, (int)-left);
      break;
    }
    if (left == 0) break;
    if (left == -1) {
      // The JavaScript thread holds the hasher: look again shortly.
      struct timespec pause = {0, 200000};
      nanosleep(&pause, NULL);
    }
  }
  atomic_store(&r->done, true);
  return NULL;
}

// file_hasher_run(hasher, size) -> handle (bigint): the hasher's file counts as `size` bytes long, and a
// thread hashes all of it.
napi_value js_file_hasher_run(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  file_hasher *h = handle_args(env, info, 2, argv, "file_hasher_run(hasher, size)");
  if (!h) return NULL;
  double size = get_number(env, argv[1]);
  if (h->fd < 0 || !(size >= 0 && size <= 9e15)) {
    napi_throw_type_error(env, "EINVAL", "file_hasher_run: a hasher of a file and a size");
    return NULL;
  }
  file_hash_run *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, ENOMEM, "file_hasher_run", "layer file");
  r->hasher = h;
  atomic_store(&h->written, (int64_t)size);
  int err = pthread_create(&r->thread, NULL, file_hash_main, r);
  if (err) {
    free(r);
    return throw_errno(env, err, "pthread_create", "layer file");
  }
  napi_value handle;
  napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)r, &handle);
  return handle;
}

// file_hash_run_poll(handle) -> true once the thread has hashed the whole file; throws its read failure.
napi_value js_file_hash_run_poll(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  file_hash_run *r = handle_args(env, info, 1, argv, "file_hash_run_poll(handle)");
  if (!r) return NULL;
  bool done = atomic_load(&r->done);
  int err = atomic_load(&r->err);
  if (err) return throw_errno(env, err, "pread", "layer file");
  napi_value result;
  napi_get_boolean(env, done, &result);
  return result;
}

// file_hash_run_free(handle): stops the thread (after its current turn), waits for it and frees the run;
// the hasher stays the caller's.
napi_value js_file_hash_run_free(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  file_hash_run *r = handle_args(env, info, 1, argv, "file_hash_run_free(handle)");
  if (!r) return NULL;
  atomic_store(&r->stop, true);
  pthread_join(r->thread, NULL);
  free(r);
  return NULL;
}

// layer_writer_create(hasher, fd, durable) -> handle (bigint): starts the writing thread, which writes to
// `fd` (on disk before it finishes, when `durable`) and hashes through the file hasher `hasher` (a handle),
// and with a file the hashing thread beside it.
napi_value js_layer_writer_create(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  file_hasher *hasher = handle_args(env, info, 3, argv, "layer_writer_create(hasher, fd, durable)");
  if (!hasher) return NULL;
  // Aligned as its buffer asks (calloc promises 16 bytes): small files are read into `out`.
  layer_writer *w = aligned_alloc(_Alignof(layer_writer), sizeof *w);
  if (!w) return throw_errno(env, ENOMEM, "layer_writer_create", "layer file");
  memset(w, 0, sizeof *w);
  w->fd = (int)get_number(env, argv[1]);
  napi_get_value_bool(env, argv[2], &w->durable);
  w->durable = w->durable && w->fd >= 0;
  w->hasher = hasher;
  w->source_fd = -1;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->wake, NULL);
  pthread_mutex_init(&w->hash_lock, NULL);
  pthread_cond_init(&w->hash_wake, NULL);
  // Before the writer starts, which reads `hashing`. Should it not start, the JavaScript thread hashes
  // while it waits, and the digest hashes the rest.
  w->hashing = w->fd >= 0 && pthread_create(&w->hash_thread, NULL, hash_main, w) == 0;
  int err = pthread_create(&w->thread, NULL, writer_main, w);
  if (err) {
    writer_stop_hashing(w);
    pthread_cond_destroy(&w->hash_wake);
    pthread_mutex_destroy(&w->hash_lock);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
    return throw_errno(env, err, "pthread_create", "layer file");
  }
  napi_value handle;
  napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)w, &handle);
  return handle;
}

static void writer_free_job(napi_env env, writer_job *job) {
  napi_delete_reference(env, job->keep);
  for (size_t i = 0; i < job->file_count; i++) free(job->files[i].path);
  free(job->files);
  free(job);
}

// layer_writer_push(handle, chunk, files?): queues `chunk` (a Uint8Array, held until a poll reports it
// written) with the host files to splice in, a flat [at, path, size, offset, ...] list.
napi_value js_layer_writer_push(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  const char *usage = "layer_writer_push(handle, chunk, files?)";
  layer_writer *w = handle_args(env, info, 2, argv, usage);
  if (!w) return NULL;
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  size_t length = 0;
  if (get_bytes(env, argv[1], &data, &length) != 0) {
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  writer_job *job = calloc(1, sizeof *job);
  if (!job) return throw_errno(env, ENOMEM, "layer_writer_push", "layer file");
  job->bytes = data;
  job->length = length;
  napi_valuetype type = napi_undefined;
  if (argc > 2) napi_typeof(env, argv[2], &type);
  if (type == napi_object) {
    uint32_t count = 0;
    napi_get_array_length(env, argv[2], &count);
    job->files = calloc(count / 4 + 1, sizeof *job->files);
    if (!job->files) {
      free(job);
      return throw_errno(env, ENOMEM, "layer_writer_push", "layer file");
    }
    for (uint32_t i = 0; i + 3 < count; i += 4) {
      napi_value at, path, size, offset;
      napi_get_element(env, argv[2], i, &at);
      napi_get_element(env, argv[2], i + 1, &path);
      napi_get_element(env, argv[2], i + 2, &size);
      napi_get_element(env, argv[2], i + 3, &offset);
      writer_file *f = &job->files[job->file_count];
      char buffer[PATH_MAX_BYTES];
      if (get_path(env, path, buffer) != 0 || get_number(env, at) > (double)length) {
        writer_free_job(env, job);
        napi_throw_type_error(env, "EINVAL", usage);
        return NULL;
      }
      f->at = (size_t)get_number(env, at);
      f->path = strdup(buffer);
      f->size = (int64_t)get_number(env, size);
      f->offset = (int64_t)get_number(env, offset);
      job->file_count++;
    }
  }
  napi_create_reference(env, argv[1], 1, &job->keep);
  pthread_mutex_lock(&w->lock);
  if (w->pending_tail) w->pending_tail->next = job;
  else w->pending = job;
  w->pending_tail = job;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

// layer_writer_poll(handle) -> [chunks written since the last poll, file size once finished else -1];
// throws the first failure (a file that shrank: code FAILED_PRECONDITION).
napi_value js_layer_writer_poll(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  layer_writer *w = handle_args(env, info, 1, argv, "layer_writer_poll(handle)");
  if (!w) return NULL;
  pthread_mutex_lock(&w->lock);
  writer_job *done = w->done;
  w->done = w->done_tail = NULL;
  int err = w->err;
  const char *syscall = w->syscall;
  bool finished = w->finished;
  pthread_mutex_unlock(&w->lock);
  uint32_t count = 0;
  while (done) {
    writer_job *next = done->next;
    writer_free_job(env, done);
    done = next;
    count++;
  }
  if (err > 0) return throw_errno(env, err, syscall, w->err_path);
  if (err < 0) {
    char message[PATH_MAX_BYTES + 64];
    snprintf(message, sizeof message, "file shrank while being packed: %s", w->err_path);
    napi_value msg, error, code, path;
    napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &error);
    napi_create_string_utf8(env, "FAILED_PRECONDITION", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, w->err_path, NAPI_AUTO_LENGTH, &path);
    napi_set_named_property(env, error, "code", code);
    napi_set_named_property(env, error, "path", path);
    napi_throw(env, error);
    return NULL;
  }
  napi_value result, written, size;
  napi_create_array_with_length(env, 2, &result);
  napi_create_uint32(env, count, &written);
  napi_create_double(env, finished ? (double)w->total : -1, &size);
  napi_set_element(env, result, 0, written);
  napi_set_element(env, result, 1, size);
  return result;
}

// Tells the thread no more chunks come (and, with `stop`, to write none of those it still holds).
static void writer_end(layer_writer *w, bool stop) {
  pthread_mutex_lock(&w->lock);
  w->closing = true;
  if (stop) w->stop = true;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
}

// layer_writer_close(handle): no more chunks; the thread writes what it holds and finishes.
napi_value js_layer_writer_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  layer_writer *w = handle_args(env, info, 1, argv, "layer_writer_close(handle)");
  if (!w) return NULL;
  writer_end(w, false);
  return NULL;
}

// layer_writer_free(handle, stop): stops the thread (at once with `stop`, else once it has finished), waits
// for it, and releases every chunk still held. Nothing is written after this returns.
napi_value js_layer_writer_free(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  layer_writer *w = handle_args(env, info, 2, argv, "layer_writer_free(handle, stop)");
  if (!w) return NULL;
  bool stop = false;
  napi_get_value_bool(env, argv[1], &stop);
  writer_end(w, stop);
  pthread_join(w->thread, NULL);
  writer_stop_hashing(w);
  for (writer_job *lists[2] = {w->pending, w->done}, **list = lists; list < lists + 2; list++) {
    for (writer_job *job = *list; job;) {
      writer_job *next = job->next;
      writer_free_job(env, job);
      job = next;
    }
  }
  pthread_cond_destroy(&w->hash_wake);
  pthread_mutex_destroy(&w->hash_lock);
  pthread_cond_destroy(&w->wake);
  pthread_mutex_destroy(&w->lock);
  free(w->err_path);
  free(w);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
#define STRATA_ENTRY(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL},
  napi_property_descriptor props[] = {STRATA_METHODS(STRATA_ENTRY)};
#undef STRATA_ENTRY
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
