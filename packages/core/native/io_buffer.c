// Buffers for the pools that carry a layer's bytes (read chunks, decompressed output, the pack's staging):
// mapped by us rather than taken from malloc, for two reasons measured on these VMs.
//
// - Populated when mapped: one call faults in all of a buffer's pages, where first touches fault them one
//   4 KiB page at a time (256 faults a MiB, each a trip through the hypervisor).
// - Not inherited across fork (MADV_DONTFORK): Node starts every child process by forking, and a fork
//   write-protects every private page of the parent, so the next apply rewriting its pooled buffers took a
//   copy-on-write fault on each page (about 2,000 an apply of minbase after one `spawnSync`: 40 ms). A child
//   never uses these pages: it only runs exec.
// - Page-aligned, as any mapping: the kernel copies a read into a destination that is not 32-byte aligned
//   about five times slower on these VMs (AMD's `rep movsb`): 480 ms against 90 for the 727 MB /usr/share
//   layer read 1 MiB at a time into a buffer 16 bytes into a page, where malloc puts its large blocks.
#include "common.h"
#include <sys/mman.h>

static void unmap_buffer(napi_env env, void *data, void *hint) {
  size_t length = (size_t)(uintptr_t)hint;
  munmap(data, length);
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)length, &ignored);
}

// io_buffer(size) -> ArrayBuffer of `size` bytes (mapped in whole pages), its pages present and left out of
// forked children.
napi_value js_io_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double requested = argc < 1 ? -1 : get_number(env, argv[0]);
  if (!(requested >= 1 && requested <= 9007199254740991.0) || requested != (double)(size_t)requested) {
    napi_throw_range_error(env, "EINVAL", "io_buffer(size): size must be a whole number of bytes, at least 1");
    return NULL;
  }
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t length = ((size_t)requested + page - 1) / page * page;
  void *data = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (data == MAP_FAILED) return throw_errno(env, errno, "mmap", NULL);
  // Refused only by kernels before 2.6.16: the buffer then works as any other, forks fault it again.
  madvise(data, length, MADV_DONTFORK);
  napi_value result;
  if (napi_create_external_arraybuffer(env, data, (size_t)requested, unmap_buffer, (void *)(uintptr_t)length, &result) != napi_ok) {
    munmap(data, length);
    napi_throw_error(env, "ENOMEM", "io_buffer: the runtime refused an external buffer");
    return NULL;
  }
  // Told to the collector on top of the buffer's own length: the pages go back only when the finalizer runs,
  // on a later turn of the loop, so lost buffers are better collected early (3,000 dropped one after
  // another, a turn every ten: a peak RSS of 92-101 MiB, against 131 without).
  int64_t ignored;
  napi_adjust_external_memory(env, (int64_t)length, &ignored);
  return result;
}
