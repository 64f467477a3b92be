/**
 * Debian's static busybox for one architecture: a program of that platform alone, with a shell and the
 * usual tools in it, for steps that run another platform's programs. Fetched once with apt (another
 * architecture's package through dpkg's multiarch, its package lists signed as the host's are) into the
 * cache the benchmarks and the minbase tree use.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CACHE } from '../../benchmarks/inputs.js';

export function busybox(arch: 'amd64' | 'arm64' | 'i386'): string {
  const path = join(CACHE, 'busybox', arch, 'busybox');
  if (existsSync(path)) return path;
  const native = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const foreign = execFileSync('dpkg', ['--print-foreign-architectures'], { encoding: 'utf8' }).split('\n');
  if (arch !== native && !foreign.includes(arch)) {
    execFileSync('dpkg', ['--add-architecture', arch]);
    try {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    } catch {
      // apt-get fails the whole update when any one index does (a security mirror mid-sync gave the i386
      // list at a size its Release did not name); the download below says whether the one it needs came.
    }
  }
  const work = mkdtempSync(join(tmpdir(), 'strata-busybox-'));
  try {
    execFileSync('apt-get', ['download', '-qq', `busybox-static:${arch}`], { cwd: work, stdio: 'ignore' });
    const deb = readdirSync(work).find((name) => name.endsWith('.deb'));
    if (deb === undefined) throw new Error(`apt-get download busybox-static:${arch} gave no package`);
    execFileSync('dpkg-deb', ['-x', join(work, deb), join(work, 'tree')]);
    mkdirSync(dirname(path), { recursive: true });
    copyFileSync(join(work, 'tree', 'bin', 'busybox'), `${path}.tmp`);
    renameSync(`${path}.tmp`, path);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return path;
}
