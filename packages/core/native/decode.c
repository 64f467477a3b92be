// Runs a decoder's steps on the thread pool, one call at a time, each settling a promise (see decode.h).
#include "decode.h"

static void decoder_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  decoder *d = data;
  if (d->busy) d->released = true;
  else d->destroy(d);
}

napi_value wrap_decoder(napi_env env, decoder *d) {
  napi_value result;
  if (napi_create_external(env, d, decoder_finalize, NULL, &result) != napi_ok) {
    d->destroy(d);
    return NULL;
  }
  return result;
}

napi_value no_decoder(napi_env env) {
  napi_value none;
  napi_get_null(env, &none);
  return none;
}

static void decoder_execute(napi_env env, void *data) {
  (void)env;
  decoder *d = data;
  d->step(d);
}

static void decoder_complete(napi_env env, napi_status status, void *data) {
  decoder *d = data;
  d->busy = false;
  napi_delete_reference(env, d->input_ref);
  napi_delete_reference(env, d->output_ref);
  napi_delete_async_work(env, d->work);
  if (status != napi_ok || d->error != NULL) {
    napi_value message, error;
    napi_create_string_utf8(env, status != napi_ok ? "decoding was cancelled" : d->error, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, d->deferred, error);
  } else {
    napi_value result, consumed, produced, ended;
    napi_create_array_with_length(env, 3, &result);
    napi_create_double(env, (double)d->consumed, &consumed);
    napi_create_double(env, (double)d->produced, &produced);
    napi_get_boolean(env, d->ended, &ended);
    napi_set_element(env, result, 0, consumed);
    napi_set_element(env, result, 1, produced);
    napi_set_element(env, result, 2, ended);
    napi_resolve_deferred(env, d->deferred, result);
  }
  if (d->released) d->destroy(d);
}

// decoder_run(decoder, input, output) -> Promise<[consumed, produced, ended]>: decodes what it can of
// `input` into `output` on the thread pool. Neither buffer may change until the promise settles; a decoder
// runs one call at a time.
napi_value js_decoder_run(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  decoder *d = NULL;
  void *in = NULL, *out = NULL;
  size_t in_length = 0, out_length = 0;
  if (argc < 3 || napi_get_value_external(env, argv[0], (void **)&d) != napi_ok || !d || get_bytes(env, argv[1], &in, &in_length) != 0 ||
      get_bytes(env, argv[2], &out, &out_length) != 0 || in_length > UINT32_MAX || out_length > UINT32_MAX) {
    napi_throw_type_error(env, "EINVAL", "decoder_run(decoder, input, output)");
    return NULL;
  }
  if (d->busy) {
    napi_throw_error(env, "EBUSY", "decoder_run: a call is already in flight");
    return NULL;
  }
  d->in = in;
  d->in_length = in_length;
  d->out = out;
  d->out_length = out_length;
  d->consumed = d->produced = 0;
  d->error = NULL;
  napi_value promise, name;
  napi_create_promise(env, &d->deferred, &promise);
  napi_create_reference(env, argv[1], 1, &d->input_ref);
  napi_create_reference(env, argv[2], 1, &d->output_ref);
  napi_create_string_utf8(env, "strata:decode", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, decoder_execute, decoder_complete, d, &d->work);
  d->busy = true;
  napi_queue_async_work(env, d->work);
  return promise;
}
