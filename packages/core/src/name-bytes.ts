/**
 * Names as bytes and back. A layer may name a file with any bytes, and containerd and Docker create it with
 * those bytes; strata's paths are strings, so the bytes of a name that are not well-formed UTF-8 travel as
 * the surrogate escape (Python's PEP 383): each such byte as one lone U+DC80..U+DCFF, a code unit that
 * well-formed UTF-8 never decodes to. The native addon writes an escape back as its byte and lists names the
 * same way (`name_string`, `get_path`), and the tar writer does too, so such a name survives an apply, a
 * listing and a rewrite byte for byte. Node's own file system calls would write U+FFFD instead: a path goes
 * to them through `fsPath`, and a name they list as bytes through `decodeName`.
 */

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** String.prototype.isWellFormed (Node 20; typed from ES2024): no lone surrogate in `text`. */
const wellFormed = (text: string): boolean => (text as unknown as { isWellFormed(): boolean }).isWellFormed();

/** The length of the well-formed UTF-8 sequence at `at` and its code point, or 0 when it is ill-formed. */
function sequence(bytes: Uint8Array, at: number): [length: number, codePoint: number] {
  const c = bytes[at]!;
  if (c < 0x80) return [1, c];
  let n: number;
  let min: number;
  if (c >= 0xc2 && c <= 0xdf) (n = 1), (min = 0x80);
  else if (c >= 0xe0 && c <= 0xef) (n = 2), (min = 0x800);
  else if (c >= 0xf0 && c <= 0xf4) (n = 3), (min = 0x10000);
  else return [0, 0];
  if (at + n >= bytes.length) return [0, 0];
  let v = c & (0x3f >> n);
  for (let i = 1; i <= n; i++) {
    const b = bytes[at + i]!;
    if ((b & 0xc0) !== 0x80) return [0, 0];
    v = (v << 6) | (b & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return [0, 0];
  return [n + 1, v];
}

/** `bytes` as a name: UTF-8, each byte of an ill-formed sequence as its surrogate escape. */
export function decodeName(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    // Not UTF-8 throughout: byte by byte, as the addon's name_string decodes.
  }
  let text = '';
  for (let i = 0; i < bytes.length; ) {
    const [n, codePoint] = sequence(bytes, i);
    if (n === 0) {
      text += String.fromCharCode(0xdc00 + bytes[i]!);
      i++;
    } else {
      text += String.fromCodePoint(codePoint);
      i += n;
    }
  }
  return text;
}

/** True when `text` carries bytes that are not UTF-8 (a lone surrogate; an escape is one). */
export function hasEscapes(text: string): boolean {
  return !wellFormed(text);
}

/**
 * `text` as the bytes it names: UTF-8, each surrogate escape as its byte. A lone surrogate that is no escape
 * (no name decodes to one) is written as U+FFFD, as Node writes it.
 */
export function encodeName(text: string): Uint8Array {
  if (wellFormed(text)) return encoder.encode(text);
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
    if (c >= 0xdc80 && c <= 0xdcff) out.push(c - 0xdc00);
    else for (const b of encoder.encode(pair ? text.slice(i, ++i + 1) : text[i]!)) out.push(b);
  }
  return Uint8Array.from(out);
}

/** How many bytes `text` names (see `encodeName`). */
export function nameByteLength(text: string): number {
  return wellFormed(text) ? Buffer.byteLength(text) : encodeName(text).length;
}

/**
 * A path for Node's file system calls: `path` itself, or its bytes when it carries escapes (Node would write
 * each as U+FFFD). Node takes a Buffer wherever it takes a path.
 */
export function fsPath(path: string): string | Buffer {
  return wellFormed(path) ? path : Buffer.from(encodeName(path));
}
