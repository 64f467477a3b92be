/**
 * Quoting of text a layer controls (names, link targets, type flags) for messages: one line, no terminal
 * control sequences, however hostile the input.
 */

/** How a lone surrogate shows: `\xNN` for the escape of a byte that is not UTF-8 (see `name-bytes.ts`). */
function loneSurrogate(c: number): string {
  return c >= 0xdc80 && c <= 0xdcff ? `\\x${(c - 0xdc00).toString(16)}` : `\\u${c.toString(16)}`;
}

/**
 * `text` in double quotes with every control character (C0, DEL, C1), quote and backslash escaped, and
 * lone surrogates shown as escapes (a name's byte that is not UTF-8 as `\xNN`): safe to print on one line
 * of a terminal.
 */
export function quote(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0) || c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c >= 0xd800 && c <= 0xdfff) {
      const next = text.charCodeAt(i + 1);
      if (c < 0xdc00 && next >= 0xdc00 && next <= 0xdfff) {
        out += text[i]! + text[i + 1]!;
        i++;
      } else out += loneSurrogate(c);
    } else out += text[i]!;
  }
  return `${out}"`;
}

/**
 * `text` made safe for one line of a terminal, without quotes: control characters and lone surrogates
 * escaped (as `quote` escapes them), nothing else.
 */
export function sanitize(text: string): string {
  return text.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => {
      const code = c.charCodeAt(0);
      return code >= 0xd800 && code <= 0xdfff ? loneSurrogate(code) : `\\u${code.toString(16).padStart(4, '0')}`;
    },
  );
}
