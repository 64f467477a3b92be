// Tar headers for the layer writer (src/tar/writer.ts): for an entry without xattrs or owner names, byte
// for byte what its JavaScript encoder writes (a POSIX ustar header, after a PAX header and records where
// ustar cannot say something). It decides nothing about the layer: the writer hands it an entry's fields,
// and takes the JavaScript path for whatever this declines. In a fresh process the encoder's JavaScript
// ran interpreted and then kept V8's compilers busy for most of a first layer's 1,800 entries.
#include "common.h"

#define BLOCK 512
#define LIMIT_8 07777777LL       // the largest octal number of an 8-byte field
#define LIMIT_12 077777777777LL  // of a 12-byte one
// The longest PAX records this writes: a path and a link target of PATH_MAX_BYTES each, and short numbers.
#define PAX_MAX (2 * PATH_MAX_BYTES + 512)

typedef struct {
  const uint8_t *bytes;
  size_t length;
} span;

// Zero-padded octal with a NUL, or base-256 (a first byte of 0x80, or 0xff when negative) where octal
// cannot hold the value; PAX carries those values too.
static void put_number(uint8_t *block, int offset, int length, int64_t value) {
  if (value >= 0 && value <= (length == 8 ? LIMIT_8 : LIMIT_12)) {
    uint64_t v = (uint64_t)value;
    for (int i = offset + length - 2; i >= offset; i--, v >>= 3) block[i] = (uint8_t)('0' + (v & 7));
    block[offset + length - 1] = 0;
    return;
  }
  int64_t v = value;
  for (int i = length - 1; i >= 0; i--, v >>= 8) block[offset + i] = (uint8_t)(v & 0xff); // sign-extending
  block[offset] = value < 0 ? 0xff : 0x80;
}

static void put_bytes(uint8_t *block, int offset, span s, size_t max) {
  memcpy(block + offset, s.bytes, s.length < max ? s.length : max);
}

typedef struct {
  span name, prefix, linkname;
  int64_t mode, uid, gid, size, mtime, devmajor, devminor;
  char typeflag;
} ustar;

static void encode_ustar(uint8_t *block, const ustar *h) {
  memset(block, 0, BLOCK);
  put_bytes(block, 0, h->name, 100);
  put_number(block, 100, 8, h->mode);
  put_number(block, 108, 8, h->uid);
  put_number(block, 116, 8, h->gid);
  put_number(block, 124, 12, h->size);
  put_number(block, 136, 12, h->mtime);
  block[156] = (uint8_t)h->typeflag;
  put_bytes(block, 157, h->linkname, 100);
  memcpy(block + 257, "ustar\0" "00", 8);
  put_number(block, 329, 8, h->devmajor);
  put_number(block, 337, 8, h->devminor);
  put_bytes(block, 345, h->prefix, 155);
  unsigned sum = 8 * 0x20; // the checksum field counts as spaces
  for (int i = 0; i < BLOCK; i++) sum += block[i];
  for (int i = 153; i >= 148; i--, sum >>= 3) block[i] = (uint8_t)('0' + (sum & 7));
  block[154] = 0;
  block[155] = ' ';
}

// `name` into ustar's name and prefix fields, split at a slash; false when only PAX can hold it.
static bool split_name(span name, span *field, span *prefix) {
  *field = name;
  *prefix = (span){name.bytes, 0};
  if (name.length <= 100) return true;
  if (name.length > 255) return false;
  for (size_t i = name.length - 101; i < name.length; i++) {
    if (name.bytes[i] != '/' || i == 0 || i > 155 || name.length - i - 1 > 100) continue;
    *prefix = (span){name.bytes, i};
    *field = (span){name.bytes + i + 1, name.length - i - 1};
    return true;
  }
  return false;
}

static size_t decimal_digits(size_t n) {
  size_t d = 1;
  while (n >= 10) n /= 10, d++;
  return d;
}

// Appends the record "<length> <key>=<value>\n", whose length counts its own digits.
static void add_record(uint8_t *pax, size_t *used, const char *key, const void *value, size_t value_length) {
  size_t key_length = strlen(key);
  size_t body = key_length + value_length + 3;
  size_t length = body + decimal_digits(body);
  if (decimal_digits(length) != decimal_digits(body)) length = body + decimal_digits(length);
  uint8_t *p = pax + *used;
  p += sprintf((char *)p, "%zu %s=", length, key);
  memcpy(p, value, value_length);
  p[value_length] = '\n';
  *used += length;
}

static void add_number_record(uint8_t *pax, size_t *used, const char *key, int64_t value) {
  char text[24];
  add_record(pax, used, key, text, (size_t)sprintf(text, "%lld", (long long)value));
}

// A PAX time: decimal seconds, the fraction without trailing zeros (-1.5 s is sec -2, nsec 5e8).
static void add_time_record(uint8_t *pax, size_t *used, int64_t sec, int64_t nsec) {
  char text[48];
  int n;
  if (nsec == 0) {
    n = sprintf(text, "%lld", (long long)sec);
  } else {
    bool negative = sec < 0;
    int64_t whole = negative ? sec + 1 : sec;
    n = sprintf(text, "%s%lld.%09lld", negative && whole == 0 ? "-" : "", (long long)whole, (long long)(negative ? 1000000000 - nsec : nsec));
    while (text[n - 1] == '0') n--;
  }
  add_record(pax, used, "mtime", text, (size_t)n);
}

// A number argument that is an integer from `min` to 2^53; false otherwise.
static bool get_integer(napi_env env, napi_value value, double min, int64_t *out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok || d != d || d < min || d > 9007199254740992.0 || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

// tarHeader(chunk, at, path, linkname, typeflag, mode, uid, gid, size, mtimeSec, mtimeNsec, devmajor,
// devminor) -> the bytes written at chunk[at] (whole blocks); -n when they would be n bytes and fewer are
// left after `at`, nothing written; 0 when the JavaScript encoder must write this entry (a name or link
// with a NUL, a lone surrogate that is no escape, or longer than a path; a number out of the ranges
// below). `typeflag` is the character's code; a directory's name gets its slash here.
napi_value js_tar_header(napi_env env, napi_callback_info info) {
  static const char *usage = "tarHeader(chunk, at, path, linkname, typeflag, mode, uid, gid, size, mtimeSec, mtimeNsec, devmajor, devminor)";
  napi_value argv[13];
  size_t argc = 13;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *chunk;
  size_t chunk_length;
  double at_number;
  napi_valuetype path_type, link_type;
  if (argc < 13 || get_bytes(env, argv[0], (void **)&chunk, &chunk_length) != 0 || napi_get_value_double(env, argv[1], &at_number) != napi_ok ||
      napi_typeof(env, argv[2], &path_type) != napi_ok || path_type != napi_string || napi_typeof(env, argv[3], &link_type) != napi_ok ||
      (link_type != napi_string && link_type != napi_undefined) || !(at_number >= 0 && at_number <= (double)chunk_length)) {
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  size_t at = (size_t)at_number;
  napi_value result;
  int64_t typeflag, mode, uid, gid, size, sec, nsec, devmajor, devminor;
  if (!get_integer(env, argv[4], 1, &typeflag) || typeflag > 127 || !get_integer(env, argv[5], 0, &mode) || !get_integer(env, argv[6], 0, &uid) ||
      !get_integer(env, argv[7], 0, &gid) || !get_integer(env, argv[8], 0, &size) || !get_integer(env, argv[9], -9007199254740992.0, &sec) ||
      !get_integer(env, argv[10], 0, &nsec) || nsec >= 1000000000 || !get_integer(env, argv[11], 0, &devmajor) || !get_integer(env, argv[12], 0, &devminor)) {
    napi_create_int32(env, 0, &result);
    return result;
  }

  char name[PATH_MAX_BYTES + 1], link[PATH_MAX_BYTES];
  if (get_path(env, argv[2], name) != 0 || (link_type == napi_string && get_path(env, argv[3], link) != 0)) {
    napi_create_int32(env, 0, &result);
    return result;
  }
  size_t path_length = strlen(name);
  span name_bytes = {(const uint8_t *)name, path_length};
  if (typeflag == '5') name[name_bytes.length++] = '/';
  span link_bytes = {(const uint8_t *)link, link_type == napi_string ? strlen(link) : 0};

  uint8_t pax[PAX_MAX];
  size_t pax_length = 0;
  ustar h = {.linkname = link_bytes, .mode = mode & 07777, .uid = uid < LIMIT_8 ? uid : LIMIT_8, .gid = gid < LIMIT_8 ? gid : LIMIT_8,
             .size = typeflag == '0' ? size : 0, .mtime = sec, .devmajor = devmajor < LIMIT_8 ? devmajor : LIMIT_8,
             .devminor = devminor < LIMIT_8 ? devminor : LIMIT_8, .typeflag = (char)typeflag};
  if (!split_name(name_bytes, &h.name, &h.prefix)) {
    add_record(pax, &pax_length, "path", name_bytes.bytes, name_bytes.length);
    h.name.length = 100; // the first 100 bytes, for readers without PAX
  }
  if (link_bytes.length > 100) add_record(pax, &pax_length, "linkpath", link_bytes.bytes, link_bytes.length);
  if (uid > LIMIT_8) add_number_record(pax, &pax_length, "uid", uid);
  if (gid > LIMIT_8) add_number_record(pax, &pax_length, "gid", gid);
  if (h.size > LIMIT_12) add_number_record(pax, &pax_length, "size", h.size);
  if (nsec != 0 || sec < 0 || sec > LIMIT_12) add_time_record(pax, &pax_length, sec, nsec);
  if (devmajor > LIMIT_8) add_number_record(pax, &pax_length, "SCHILY.devmajor", devmajor);
  if (devminor > LIMIT_8) add_number_record(pax, &pax_length, "SCHILY.devminor", devminor);

  size_t pax_blocks = (pax_length + BLOCK - 1) / BLOCK * BLOCK;
  size_t total = BLOCK + (pax_length > 0 ? BLOCK + pax_blocks : 0);
  if (total > chunk_length - at) {
    napi_create_int64(env, -(int64_t)total, &result);
    return result;
  }
  uint8_t *out = chunk + at;
  if (pax_length > 0) {
    // The PAX header is named after the entry's last component.
    uint8_t pax_name[100];
    const char *slash = memrchr(name, '/', path_length); // in the path, not after a directory's own slash
    const char *base = slash ? slash + 1 : name;
    size_t base_length = path_length - (size_t)(base - name);
    memcpy(pax_name, "PaxHeaders/", 11);
    memcpy(pax_name + 11, base, base_length < 89 ? base_length : 89);
    ustar x = {.name = {pax_name, 11 + (base_length < 89 ? base_length : 89)}, .prefix = {pax_name, 0}, .linkname = {pax_name, 0}, .mode = 0644,
               .size = (int64_t)pax_length, .mtime = sec < 0 ? 0 : sec > LIMIT_12 ? LIMIT_12 : sec, .typeflag = 'x'};
    encode_ustar(out, &x);
    memcpy(out + BLOCK, pax, pax_length);
    memset(out + BLOCK + pax_length, 0, pax_blocks - pax_length);
    out += BLOCK + pax_blocks;
  }
  encode_ustar(out, &h);
  napi_create_int64(env, (int64_t)total, &result);
  return result;
}
