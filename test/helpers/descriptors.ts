/** What this process holds open, for tests that a job closes what it opened. */
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** This process's descriptors open on `path`. */
export function openOn(path: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(join('/proc/self/fd', fd)) === path) count++;
    } catch {
      // closed meanwhile (the listing's own descriptor among them)
    }
  }
  return count;
}
