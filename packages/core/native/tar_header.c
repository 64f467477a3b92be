// Tar headers for the layer writer (src/tar/writer.ts): for an entry without xattrs or owner names, byte
// for byte what its JavaScript encoder writes (a POSIX ustar header, after a PAX header and records where
// ustar cannot say something). It decides nothing about the layer: the writer hands it an entry's fields,
// and takes the JavaScript path for whatever this declines. In a fresh process the encoder's JavaScript
// ran interpreted and then kept V8's compilers busy for most of a first layer's 1,800 entries. And the
// reader's common headers (src/tar/header.ts), decoded as its JavaScript decodes them (below).
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

// A header's checksum as writers compute it: the sum of its bytes, the checksum field's own counted as spaces.
static unsigned header_sum(const uint8_t *block) {
  unsigned sum = 8 * ' ';
  for (int i = 0; i < BLOCK; i++)
    if (i < 148 || i >= 156) sum += block[i];
  return sum;
}

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
  unsigned sum = header_sum(block);
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

// ---- Decoding, for the reader (src/tar/header.ts) ----
// The common header, decoded as the reader's JavaScript decodes it: octal numbers, the unsigned checksum,
// the magic, and where each byte field ends. It judges nothing: anything else (a base-256 number, a field
// that holds no number, a checksum only a signed sum matches or none does) is left to the JavaScript
// decoder, which reads it or gives the reader's error. In a fresh process that decoder's byte loops ran
// interpreted for a first layer's first thousands of headers and then kept V8's compilers busy.

// The fields, as HEADER_FIELD in src/native.ts numbers them. Int32s, which V8 reads as small integers (a
// Float64Array's elements come out boxed); a 12-byte number (size, mtime: below 2^36) as two, `high * 2^30 + low`.
enum { H_MODE, H_UID, H_GID, H_SIZE_HIGH, H_SIZE_LOW, H_MTIME_HIGH, H_MTIME_LOW, H_DEVMAJOR, H_DEVMINOR, H_TYPEFLAG, H_NAME, H_LINKNAME, H_UNAME, H_GNAME, H_PREFIX, H_FIELDS };

// The length of the byte field at `offset`: up to its first NUL.
static size_t field_length(const uint8_t *block, int offset, int length) {
  const uint8_t *nul = memchr(block + offset, 0, (size_t)length);
  return nul ? (size_t)(nul - (block + offset)) : (size_t)length;
}

// An octal field as the JavaScript's numberField reads it: digits before the first NUL, spaces around them;
// none is 0 when nothing but NULs and spaces follow. False for anything else: base-256, which the JavaScript
// reads, and what it refuses.
static bool octal_field(const uint8_t *block, int offset, int length, uint64_t *value) {
  if (block[offset] & 0x80) return false; // base-256
  size_t stop = (size_t)offset + field_length(block, offset, length);
  size_t i = (size_t)offset, last = stop, end = (size_t)offset + (size_t)length;
  while (i < last && block[i] == ' ') i++;
  while (last > i && block[last - 1] == ' ') last--;
  if (i == last) {
    for (size_t j = stop; j < end; j++)
      if (block[j] != 0 && block[j] != ' ') return false;
    *value = 0;
    return true;
  }
  uint64_t v = 0; // at most 12 digits
  for (; i < last; i++) {
    if (block[i] < '0' || block[i] > '7') return false;
    v = v * 8 + (uint64_t)(block[i] - '0');
  }
  *value = v;
  return true;
}

// Go's test of a GNU time field (readsAsGoNumber in header.ts): empty, base-256, or octal digits.
static bool reads_as_go_number(const uint8_t *block, int offset) {
  if (block[offset] == 0 || (block[offset] & 0x80)) return true;
  size_t start = (size_t)offset, end = (size_t)offset + 12;
  while (start < end && (block[start] == ' ' || block[start] == 0)) start++;
  while (end > start && (block[end - 1] == ' ' || block[end - 1] == 0)) end--;
  const uint8_t *nul = memchr(block + start, 0, end - start);
  if (nul) end = (size_t)(nul - block);
  for (size_t i = start; i < end; i++)
    if (block[i] < '0' || block[i] > '7') return false;
  return true;
}

// The prefix an old Go writer put into a GNU header (legacyGoPrefix in header.ts): its length, 0 for none.
static size_t legacy_go_prefix(const uint8_t *block) {
  if (reads_as_go_number(block, 345) && reads_as_go_number(block, 357)) return 0;
  size_t length = field_length(block, 345, 155);
  for (size_t i = 0; i < length; i++)
    if (block[345 + i] >= 0x80) return 0;
  return length;
}

// tarHeaderFields(block, out): 1 for a POSIX ustar header, 2 for GNU, 0 for neither (pre-POSIX), with its
// fields in `out` (byte fields as lengths from their offsets); -1, `out` undefined, where the JavaScript
// decoder must decide.
napi_value js_tar_header_fields(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *block;
  size_t length;
  napi_typedarray_type type;
  size_t count = 0;
  int32_t *out = NULL;
  if (argc < 2 || get_bytes(env, argv[0], (void **)&block, &length) != 0 || length < BLOCK ||
      napi_get_typedarray_info(env, argv[1], &type, &count, (void **)&out, NULL, NULL) != napi_ok || type != napi_int32_array || count < H_FIELDS) {
    napi_throw_type_error(env, "EINVAL", "tarHeaderFields(block, out): a block of 512 bytes and an Int32Array");
    return NULL;
  }
  int kind = -1;
  uint64_t stored;
  if (octal_field(block, 148, 8, &stored)) {
    if (stored == header_sum(block)) kind = 0;
  }
  if (kind == 0 && memcmp(block + 257, "ustar", 5) == 0) {
    if (block[262] == 0) kind = 1;
    else if (block[262] == ' ' && block[263] == ' ' && block[264] == 0) kind = 2;
  }
  bool named = kind > 0;
  uint64_t mode, uid, gid, size, mtime, devmajor = 0, devminor = 0;
  if (kind >= 0 &&
      (!octal_field(block, 100, 8, &mode) || !octal_field(block, 108, 8, &uid) || !octal_field(block, 116, 8, &gid) ||
       !octal_field(block, 124, 12, &size) || !octal_field(block, 136, 12, &mtime) ||
       (named && (!octal_field(block, 329, 8, &devmajor) || !octal_field(block, 337, 8, &devminor)))))
    kind = -1;
  if (kind >= 0) {
    // An 8-byte field holds at most 8 digits (below 2^24), a 12-byte one 12 (below 2^36).
    out[H_MODE] = (int32_t)mode;
    out[H_UID] = (int32_t)uid;
    out[H_GID] = (int32_t)gid;
    out[H_SIZE_HIGH] = (int32_t)(size >> 30);
    out[H_SIZE_LOW] = (int32_t)(size & 0x3fffffff);
    out[H_MTIME_HIGH] = (int32_t)(mtime >> 30);
    out[H_MTIME_LOW] = (int32_t)(mtime & 0x3fffffff);
    out[H_DEVMAJOR] = (int32_t)devmajor;
    out[H_DEVMINOR] = (int32_t)devminor;
    out[H_TYPEFLAG] = block[156];
    out[H_NAME] = (int32_t)field_length(block, 0, 100);
    out[H_LINKNAME] = (int32_t)field_length(block, 157, 100);
    out[H_UNAME] = named ? (int32_t)field_length(block, 265, 32) : 0;
    out[H_GNAME] = named ? (int32_t)field_length(block, 297, 32) : 0;
    out[H_PREFIX] = kind == 1 ? (int32_t)field_length(block, 345, 155) : kind == 2 ? (int32_t)legacy_go_prefix(block) : 0;
  }
  napi_value result;
  napi_create_int32(env, kind, &result);
  return result;
}
