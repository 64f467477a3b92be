/**
 * The process's file mode creation mask, read without changing it: `process.umask()` with no argument
 * sets the mask to 0 and back (deprecated for that: another thread creating a file in between gets the
 * wrong mode), so it is read from `/proc/self/status` (Linux 4.7 and later).
 */
import { readFileSync } from 'node:fs';

/** The umask, or undefined where `/proc` does not say (no `/proc`, an older kernel). */
export function readUmask(): number | undefined {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'latin1');
  } catch {
    return undefined;
  }
  const match = /^Umask:\s*([0-7]+)$/m.exec(status);
  return match === null ? undefined : parseInt(match[1]!, 8);
}
