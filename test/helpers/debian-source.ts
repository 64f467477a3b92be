/**
 * Debian's source tarballs of other projects, whose test suites are corpora strata is checked against: each
 * downloaded once from Debian's archive into the cache the benchmarks and the minbase tree use, and held to
 * the checksum pinned by its caller every time it is used.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE } from '../../benchmarks/inputs.js';

// Python's, as python3 is installed for the corpora anyway (curl may not be); three tries.
const DOWNLOAD = String.raw`
import sys, time, urllib.request
for attempt in range(3):
    try:
        urllib.request.urlretrieve(sys.argv[1], sys.argv[2])
        break
    except OSError:
        if attempt == 2: raise
        time.sleep(2)
`;

/** The tarball `file` of Debian's `pool/main/<dir>`, from the cache or downloaded, checked against `sha256`. */
export function debianSource(dir: string, file: string, sha256: string): string {
  const path = join(CACHE, file);
  if (!existsSync(path)) {
    mkdirSync(CACHE, { recursive: true });
    execFileSync('python3', ['-c', DOWNLOAD, `http://deb.debian.org/debian/pool/main/${dir}/${file}`, `${path}.part`], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(`${path}.part`, path);
  }
  const digest = createHash('sha256').update(readFileSync(path)).digest('hex');
  if (digest !== sha256) throw new Error(`${path}: sha256 ${digest}, expected ${sha256} (remove it to download again)`);
  return path;
}
