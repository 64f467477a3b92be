// The few syscalls Node does not expose and layers need: mknod (devices, fifos, overlay whiteouts),
// utimensat with nanoseconds on the link itself, and the l*xattr family (never following a symlink). Synchronous on purpose: each is one cheap syscall,
// and a thread-pool round trip would cost more than the call.
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

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

static double get_number(napi_env env, napi_value value) {
  double d = 0;
  napi_get_value_double(env, value, &d);
  return d;
}

// mknod(path, mode, major, minor): mode carries the file type bits (S_IFCHR, S_IFBLK, S_IFIFO).
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_MAX_BYTES];
  if (argc < 4 || get_path(env, argv[0], path) != 0) {
    napi_throw_type_error(env, "EINVAL", "mknod(path, mode, major, minor)");
    return NULL;
  }
  mode_t mode = (mode_t)get_number(env, argv[1]);
  dev_t dev = makedev((unsigned)get_number(env, argv[2]), (unsigned)get_number(env, argv[3]));
  if (mknod(path, mode, dev) != 0) return throw_errno(env, errno, "mknod", path);
  return NULL;
}

// lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec): never follows a final symlink.
static napi_value js_lutimens(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_MAX_BYTES];
  if (argc < 5 || get_path(env, argv[0], path) != 0) {
    napi_throw_type_error(env, "EINVAL", "lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec)");
    return NULL;
  }
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
  size_t argc = want;
  size_t name_len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want || get_path(env, argv[0], path) != 0 ||
      napi_get_value_string_utf8(env, argv[1], name, XATTR_NAME_MAX_BYTES + 1, &name_len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  return 0;
}

// llistxattr(path) -> string[]: names in the order the filesystem gives them.
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_MAX_BYTES];
  if (argc < 1 || get_path(env, argv[0], path) != 0) {
    napi_throw_type_error(env, "EINVAL", "llistxattr(path)");
    return NULL;
  }
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
  napi_typedarray_type type;
  napi_value arraybuffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, argv[2], &type, &length, &data, &arraybuffer, &offset) != napi_ok) {
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL},
    {"lutimens", NULL, js_lutimens, NULL, NULL, NULL, napi_default, NULL},
    {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lremovexattr", NULL, js_lremovexattr, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
