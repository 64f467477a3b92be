// Decoders of compressed streams that work on the thread pool (decode.c): gzip with ISA-L (gunzip.c) and
// zstd with the system's libzstd (unzstd.c), each loaded with dlopen on first use so that the addon loads,
// and strata falls back to node:zlib and zstd-napi on the main thread, where the library is missing.
#ifndef STRATA_DECODE_H
#define STRATA_DECODE_H
#include "common.h"

typedef struct decoder decoder;
struct decoder {
  // On the thread pool: decodes from `in` into `out` until one is used up, setting `consumed`, `produced`,
  // `ended` (the input so far is a whole stream) and, for corrupt data, `error` (a static message).
  void (*step)(decoder *);
  void (*destroy)(decoder *);
  uint8_t *in;
  size_t in_length, consumed;
  uint8_t *out;
  size_t out_length, produced;
  bool ended;
  const char *error;
  // The call in flight.
  bool busy;     // on the thread pool
  bool released; // the JS object was collected while busy: destroy on completion
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input_ref, output_ref;
};

// The JS handle of a new decoder, which it owns from then on.
napi_value wrap_decoder(napi_env env, decoder *d);
// What a decoder's factory returns where its library is not installed (null).
napi_value no_decoder(napi_env env);

#endif
