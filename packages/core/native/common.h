// Helpers shared by the addon's source files: Node-shaped errno errors and argument reading.
#ifndef STRATA_COMMON_H
#define STRATA_COMMON_H
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_MAX_BYTES 4096

// Throws an Error shaped as Node's errno errors (`code`, `errno`, `syscall`, `path`); returns NULL.
napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path);
// Copies a string argument into `out` (PATH_MAX_BYTES) as bytes, surrogate escapes as the bytes they stand
// for (see name_string): 0, -1 when it is not a string, -ENAMETOOLONG, or -EINVAL when it holds a NUL (which
// would cut it short in every call below) or a lone surrogate that is no escape.
int get_path(napi_env env, napi_value value, char *out);
// A name or link target of `len` bytes as a JavaScript string: UTF-8, each byte of an ill-formed sequence
// as the surrogate escape U+DC80..U+DCFF, which get_path writes back as that byte (see name-bytes.ts).
napi_status name_string(napi_env env, const char *bytes, size_t len, napi_value *out);
// The bytes of a Uint8Array argument; -1 when it is not one.
int get_bytes(napi_env env, napi_value value, void **data, size_t *length);
// Reads up to `max` arguments, at least `need`, the first a path into `path`; how many were given, or -1
// with an error thrown.
int get_path_args(napi_env env, napi_callback_info info, size_t need, size_t max, napi_value *argv, char *path, const char *usage);
double get_number(napi_env env, napi_value value);
// The function name at the start of a usage string ("mknod(path, …)" -> "mknod"), for error messages.
const char *usage_syscall(const char *usage);
// Writes all of `length` bytes to `fd`; 0, or an errno.
int write_all(int fd, const void *bytes, size_t length);
// Collects the names in open directory `fd` (taking ownership of it), not "." or "..": 0 or an errno;
// *names is a NUL-separated list of *count names, freed by the caller.
int list_names(int fd, char **names, size_t *count);

// Fields of one entry in the stats arrays lstat_batch and stat_at fill (keep in step with native.ts STAT).
enum { F_MODE, F_UID, F_GID, F_NLINK, F_SIZE, F_MTIME_SEC, F_MTIME_NSEC, F_DEV, F_INO_HIGH, F_INO_LOW, F_RDEV_MAJOR, F_RDEV_MINOR, F_CTIME_SEC, F_CTIME_NSEC, FIELDS };
// Fills FIELDS numbers at `f` from `st`.
void fill_stat(double *f, const struct stat *st);


#include "methods.h"

#endif
