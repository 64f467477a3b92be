// sha256 of bytes handed over from memory on the calling thread: what a small input is hashed with (below
// PARALLEL_HASH_THRESHOLD, where waiting for another thread costs more than hashing inline). OpenSSL comes
// from the Node binary, as for the file hasher; `node:crypto` would do the same hashing, but loading it
// loads some forty of Node's modules (crypto's and every stream module), 5-6 ms of a command's start.
// A hash is an external: one the caller drops unfinished is freed by the collector. Tagged, so that no other
// external (a decoder's) passes for one.
#include "common.h"
#include <openssl/evp.h>

static const napi_type_tag SHA256_TAG = {0x5e2a0c4f9b1d4e37, 0xa6c3f1e8d20b7795};

static void free_context(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  EVP_MD_CTX_free(data);
}

// The context behind the first of `want` arguments (read into argv); NULL (with a TypeError thrown) when an
// argument is missing or the first is not a hash.
static EVP_MD_CTX *context_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *ctx = NULL;
  bool tagged = false;
  if (argc < want || napi_check_object_type_tag(env, argv[0], &SHA256_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, argv[0], &ctx) != napi_ok || ctx == NULL) {
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  return ctx;
}

// sha256_create() -> hash (an external).
napi_value js_sha256_create(napi_env env, napi_callback_info info) {
  (void)info;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(ctx);
    return throw_errno(env, ENOMEM, "sha256_create", NULL);
  }
  napi_value result;
  if (napi_create_external(env, ctx, free_context, NULL, &result) != napi_ok) {
    EVP_MD_CTX_free(ctx);
    return NULL;
  }
  napi_type_tag_object(env, result, &SHA256_TAG);
  return result;
}

// sha256_update(hash, bytes): adds the bytes of a Uint8Array.
napi_value js_sha256_update(napi_env env, napi_callback_info info) {
  const char *usage = "sha256_update(hash, bytes)";
  napi_value argv[2];
  EVP_MD_CTX *ctx = context_args(env, info, 2, argv, usage);
  if (!ctx) return NULL;
  void *data = NULL;
  size_t length = 0;
  if (get_bytes(env, argv[1], &data, &length) != 0) {
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  if (EVP_DigestUpdate(ctx, data, length) != 1) return throw_errno(env, EIO, "sha256_update", NULL);
  return NULL;
}

// sha256_digest(hash) -> hex of everything added. The context starts again (empty) after it.
napi_value js_sha256_digest(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  EVP_MD_CTX *ctx = context_args(env, info, 1, argv, "sha256_digest(hash)");
  if (!ctx) return NULL;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(ctx, md, &size) != 1 || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) return throw_errno(env, EIO, "sha256_digest", NULL);
  static const char digits[] = "0123456789abcdef";
  char hex[2 * EVP_MAX_MD_SIZE];
  for (unsigned int i = 0; i < size; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  napi_value result;
  napi_create_string_utf8(env, hex, 2 * size, &result);
  return result;
}
