/**
 * writeAll: a synchronous write of a whole buffer, which `writeSync` does not promise (it returns what the
 * kernel took: less for a pipe, a full disk's last blocks, a signal).
 */
import { writeSync } from 'node:fs';

/** Writes all of `bytes` to `fd`: at `position` and on, or at the file's offset when it is omitted. */
export function writeAll(fd: number, bytes: Uint8Array, position?: number): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, position === undefined ? null : position + done);
}
