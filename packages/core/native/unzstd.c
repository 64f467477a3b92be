// zstd decompression with the system's libzstd, a decoder of decode.h: on the thread pool, beside the
// apply, where zstd-napi's would run on the main thread. libzstd.so.1 comes with every Debian (dpkg needs
// it); its streaming API and buffer structs are stable since 1.0, so they are declared here rather than
// needing its header.
#include "decode.h"
#include <dlfcn.h>

typedef struct {
  const void *src;
  size_t size;
  size_t pos;
} zstd_in;

typedef struct {
  void *dst;
  size_t size;
  size_t pos;
} zstd_out;

static void *(*p_create)(void);
static size_t (*p_free)(void *);
static size_t (*p_decompress)(void *, zstd_out *, zstd_in *);
static unsigned (*p_is_error)(size_t);
static const char *(*p_error_name)(size_t);
static int zstd_loaded; // 0: not tried, 1: loaded, -1: absent

// Loads libzstd once (from the JS thread only, so no lock is needed).
static bool load_zstd(void) {
  if (zstd_loaded == 0) {
    void *lib = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      p_create = (void *(*)(void))dlsym(lib, "ZSTD_createDCtx");
      p_free = (size_t(*)(void *))dlsym(lib, "ZSTD_freeDCtx");
      p_decompress = (size_t(*)(void *, zstd_out *, zstd_in *))dlsym(lib, "ZSTD_decompressStream");
      p_is_error = (unsigned (*)(size_t))dlsym(lib, "ZSTD_isError");
      p_error_name = (const char *(*)(size_t))dlsym(lib, "ZSTD_getErrorName");
    }
    zstd_loaded = lib && p_create && p_free && p_decompress && p_is_error && p_error_name ? 1 : -1;
  }
  return zstd_loaded == 1;
}

typedef struct {
  decoder base;
  void *context; // a ZSTD_DCtx, with libzstd's default window limit (128 MiB), as zstd-napi's
} unzstd;

// Decompresses from `in` into `out` until one is used up, frame after frame. The stream has ended when the
// last call finished a frame and flushed it.
static void unzstd_step(decoder *d) {
  unzstd *z = (unzstd *)d;
  zstd_in in = {d->in, d->in_length, 0};
  zstd_out out = {d->out, d->out_length, 0};
  for (;;) {
    size_t in_before = in.pos, out_before = out.pos;
    size_t ret = p_decompress(z->context, &out, &in);
    if (p_is_error(ret)) {
      d->error = p_error_name(ret);
      break;
    }
    d->ended = ret == 0;
    if (out.pos == out.size || in.pos == in.size) break;
    if (in.pos == in_before && out.pos == out_before) break; // no progress: the caller reports it
  }
  d->consumed = in.pos;
  d->produced = out.pos;
}

static void unzstd_destroy(decoder *d) {
  p_free(((unzstd *)d)->context);
  free(d);
}

// zstd_decoder_create() -> a decoder, or null where libzstd is not installed.
napi_value js_zstd_decoder_create(napi_env env, napi_callback_info info) {
  (void)info;
  if (!load_zstd()) return no_decoder(env);
  unzstd *z = calloc(1, sizeof *z);
  void *context = z ? p_create() : NULL;
  if (!context) {
    free(z);
    return throw_errno(env, ENOMEM, "zstd_decoder_create", "zstd stream");
  }
  z->context = context;
  z->base.step = unzstd_step;
  z->base.destroy = unzstd_destroy;
  return wrap_decoder(env, &z->base);
}
