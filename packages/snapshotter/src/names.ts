/**
 * What a snapshot key, name or label may be. Keys and names are how callers refer to snapshots and never
 * reach the file system (directories are numbered), but they travel through logs, terminals and the
 * database, so they are refused rather than quoted when they could mislead any of those.
 */
import { InvalidArgumentError, quote } from '@strata/core';

/** Longest key or name, in bytes. */
export const MAX_KEY_BYTES = 255;
/** Largest label, key and value together, in bytes (containerd's limit). */
export const MAX_LABEL_BYTES = 4096;

/**
 * Throws INVALID_ARGUMENT unless `key` is a usable snapshot key or name: 1 to 255 bytes of UTF-8, no `/`,
 * NUL or control characters, and not `.` or `..`.
 */
export function checkKey(key: unknown, what = 'key'): string {
  if (typeof key !== 'string' || key === '') throw new InvalidArgumentError(`snapshot ${what} must be a non-empty string`);
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new InvalidArgumentError(`snapshot ${what} is over ${MAX_KEY_BYTES} bytes: ${quote(key.slice(0, 40))}…`);
  if (key === '.' || key === '..') throw new InvalidArgumentError(`snapshot ${what} cannot be ${quote(key)}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f/]/.test(key)) throw new InvalidArgumentError(`snapshot ${what} holds a slash or a control character: ${quote(key)}`);
  if (Buffer.from(key).toString() !== key) throw new InvalidArgumentError(`snapshot ${what} is not valid UTF-8: ${quote(key)}`); // a lone surrogate
  return key;
}

/** Throws INVALID_ARGUMENT unless every label is a non-empty key with a value, together at most 4096 bytes. */
export function checkLabels(labels: unknown): Record<string, string> {
  if (labels === undefined) return {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw new InvalidArgumentError('labels must be an object of strings');
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels)) {
    if (key === '' || typeof value !== 'string') throw new InvalidArgumentError(`label ${quote(key)} must have a non-empty key and a string value`);
    if (key.includes('\0') || value.includes('\0')) throw new InvalidArgumentError(`label ${quote(key)} holds a NUL`);
    const size = Buffer.byteLength(key) + Buffer.byteLength(value);
    if (size > MAX_LABEL_BYTES) throw new InvalidArgumentError(`label ${quote(key)} is ${size} bytes, over the ${MAX_LABEL_BYTES}-byte limit`);
    out[key] = value;
  }
  return out;
}

/**
 * Labels after an update with containerd's field paths: none (or `labels`) replaces them all with `given`;
 * `labels.<key>` sets that one from `given` or, absent there, removes it. Any other path is INVALID_ARGUMENT.
 */
export function updateLabels(current: Readonly<Record<string, string>>, given: Readonly<Record<string, string>>, fieldpaths: readonly string[]): Record<string, string> {
  let labels: Record<string, string> = fieldpaths.length === 0 ? { ...given } : { ...current };
  for (const path of fieldpaths) {
    if (path === 'labels') labels = { ...given };
    else if (path.startsWith('labels.') && path.length > 'labels.'.length) {
      const label = path.slice('labels.'.length);
      if (Object.hasOwn(given, label)) labels[label] = given[label]!;
      else delete labels[label];
    } else throw new InvalidArgumentError(`cannot update field ${quote(path)}: only labels change`);
  }
  return labels;
}
