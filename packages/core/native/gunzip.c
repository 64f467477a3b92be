// gzip decompression with Intel's ISA-L (igzip), about twice as fast as zlib's inflate on this kind of
// machine: a decoder of decode.h. Debian ships libisal only as a shared library, hence dlopen.
#include "decode.h"
#include <dlfcn.h>

#if !defined(STRATA_NO_ISAL) && __has_include(<isa-l/igzip_lib.h>)
#include <isa-l/igzip_lib.h>
#define HAVE_ISAL 1
#else
#define HAVE_ISAL 0
#endif

#if HAVE_ISAL

static void (*p_inflate_init)(struct inflate_state *);
static void (*p_inflate_reset)(struct inflate_state *);
static int (*p_inflate)(struct inflate_state *);
static int isal_loaded; // 0: not tried, 1: loaded, -1: absent

// Loads libisal once (from the JS thread only, so no lock is needed).
static bool load_isal(void) {
  if (isal_loaded == 0) {
    void *lib = dlopen("libisal.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      p_inflate_init = (void (*)(struct inflate_state *))dlsym(lib, "isal_inflate_init");
      p_inflate_reset = (void (*)(struct inflate_state *))dlsym(lib, "isal_inflate_reset");
      p_inflate = (int (*)(struct inflate_state *))dlsym(lib, "isal_inflate");
    }
    isal_loaded = lib && p_inflate_init && p_inflate_reset && p_inflate ? 1 : -1;
  }
  return isal_loaded == 1;
}

// Where the stream is: in a member's header (parsed here: ISA-L 2.30's own parser gets a header CRC split
// across calls wrong), in its deflate data and trailer (ISA-L, which verifies the CRC-32 and length), or
// after a member: then another member, or (as node:zlib has it) from a zero byte on, padding ignored to the
// end.
enum { IN_HEADER, IN_MEMBER, BETWEEN_MEMBERS, IGNORING_REST };
// The parts of a member's header, in order (RFC 1952, 2.3).
enum { H_FIXED, H_EXTRA_LENGTH, H_EXTRA, H_NAME, H_COMMENT, H_CRC, H_DONE };
enum { FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16, FRESERVED = 0xe0 };
// Errors of the header parser, beside ISA-L's (which are negative and small).
enum { BAD_MAGIC = -100, BAD_METHOD, BAD_FLAGS, BAD_HEADER_CRC };

typedef struct {
  decoder base;
  struct inflate_state state;
  int phase;
  // The header being parsed.
  int part;
  uint8_t fixed[10];
  uint32_t have;    // bytes of the current part read
  uint32_t extra;   // FEXTRA's length
  uint32_t crc;     // CRC-32 of the header so far (its complement, while running)
  uint8_t stored[2];
} inflater;

static void start_header(inflater *z) {
  z->phase = IN_HEADER;
  z->part = H_FIXED;
  z->have = 0;
  z->crc = 0xffffffffu;
}

// The part of the header after `part`, skipping those the flags leave out.
static int next_part(const inflater *z, int part) {
  uint8_t flags = z->fixed[3];
  for (;;) {
    part++;
    if (part == H_EXTRA_LENGTH && !(flags & FEXTRA)) continue;
    if (part == H_EXTRA && (!(flags & FEXTRA) || z->extra == 0)) continue;
    if (part == H_NAME && !(flags & FNAME)) continue;
    if (part == H_COMMENT && !(flags & FCOMMENT)) continue;
    if (part == H_CRC && !(flags & FHCRC)) continue;
    return part;
  }
}

// Reads header bytes from the input: 1 when the header is complete, 0 when the input ran out first, or a
// BAD_* error.
static int parse_header(inflater *z, struct inflate_state *s) {
  while (s->avail_in > 0) {
    uint8_t byte = *s->next_in;
    s->next_in++;
    s->avail_in--;
    if (z->part != H_CRC) {
      z->crc ^= byte;
      for (int k = 0; k < 8; k++) z->crc = (z->crc >> 1) ^ (0xedb88320u & -(z->crc & 1));
    }
    bool part_done = false;
    switch (z->part) {
    case H_FIXED:
      z->fixed[z->have++] = byte;
      if (z->have == 1 && byte != 0x1f) return BAD_MAGIC;
      if (z->have == 2 && byte != 0x8b) return BAD_MAGIC;
      if (z->have == 3 && byte != 8) return BAD_METHOD;
      if (z->have == 4 && (byte & FRESERVED)) return BAD_FLAGS;
      part_done = z->have == 10;
      break;
    case H_EXTRA_LENGTH:
      z->extra |= (uint32_t)byte << (8 * z->have++);
      part_done = z->have == 2;
      break;
    case H_EXTRA:
      part_done = ++z->have == z->extra;
      break;
    case H_NAME:
    case H_COMMENT:
      part_done = byte == 0;
      break;
    case H_CRC:
      z->stored[z->have++] = byte;
      if (z->have == 2 && (uint32_t)(z->stored[0] | z->stored[1] << 8) != (~z->crc & 0xffffu)) return BAD_HEADER_CRC;
      part_done = z->have == 2;
      break;
    }
    if (part_done) {
      if (z->part == H_FIXED) z->extra = 0;
      z->part = next_part(z, z->part);
      z->have = 0;
      if (z->part == H_DONE) return 1;
    }
  }
  return 0;
}

static const char *inflate_message(int error);

// Inflates from `in` into `out` until one is used up, across member boundaries.
static void inflate_step(decoder *d) {
  inflater *z = (inflater *)d;
  struct inflate_state *s = &z->state;
  s->next_in = d->in;
  s->avail_in = (uint32_t)d->in_length;
  s->next_out = d->out;
  s->avail_out = (uint32_t)d->out_length;
  int error = 0;
  while (error == 0) {
    if (z->phase == IGNORING_REST) {
      s->next_in += s->avail_in;
      s->avail_in = 0;
      break;
    }
    if (z->phase == BETWEEN_MEMBERS) {
      if (s->avail_in == 0) break;
      if (s->next_in[0] == 0) z->phase = IGNORING_REST;
      else start_header(z);
      continue;
    }
    if (z->phase == IN_HEADER) {
      int ret = parse_header(z, s);
      if (ret < 0) error = ret;
      if (ret != 1) break;
      // The deflate data follows, then the trailer, which ISA-L verifies.
      uint8_t *next_in = s->next_in, *next_out = s->next_out;
      uint32_t avail_in = s->avail_in, avail_out = s->avail_out;
      p_inflate_reset(s);
      s->crc_flag = ISAL_GZIP_NO_HDR_VER;
      s->next_in = next_in, s->avail_in = avail_in, s->next_out = next_out, s->avail_out = avail_out;
      z->phase = IN_MEMBER;
      continue;
    }
    int ret = p_inflate(s);
    if (ret < 0) {
      error = ret;
      break;
    }
    if (s->block_state == ISAL_BLOCK_FINISH) {
      z->phase = BETWEEN_MEMBERS;
      continue;
    }
    if (s->avail_in == 0 || s->avail_out == 0) break;
  }
  d->consumed = d->in_length - s->avail_in;
  d->produced = d->out_length - s->avail_out;
  d->ended = z->phase == BETWEEN_MEMBERS || z->phase == IGNORING_REST;
  d->error = error != 0 ? inflate_message(error) : NULL;
}

static const char *inflate_message(int error) {
  switch (error) {
  case ISAL_INVALID_BLOCK: return "invalid deflate block";
  case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
  case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
  case ISAL_INCORRECT_CHECKSUM: return "incorrect data check";
  case BAD_MAGIC: return "incorrect header check";
  case BAD_METHOD: return "unknown compression method";
  case BAD_FLAGS: return "unknown header flags set";
  case BAD_HEADER_CRC: return "header crc mismatch";
  default: return "invalid gzip data";
  }
}

static void inflater_destroy(decoder *d) {
  free(d);
}

// gzip_decoder_create() -> a decoder, or null where libisal is not installed.
napi_value js_gzip_decoder_create(napi_env env, napi_callback_info info) {
  (void)info;
  if (!load_isal()) return no_decoder(env);
  inflater *z = calloc(1, sizeof *z);
  if (!z) return throw_errno(env, ENOMEM, "gzip_decoder_create", "gzip stream");
  z->base.step = inflate_step;
  z->base.destroy = inflater_destroy;
  p_inflate_init(&z->state);
  start_header(z);
  return wrap_decoder(env, &z->base);
}

#else

napi_value js_gzip_decoder_create(napi_env env, napi_callback_info info) {
  (void)info;
  return no_decoder(env);
}

#endif
