/**
 * Gating for tests that need root, the kernel's overlayfs or an external tool. Outside CI a missing oracle
 * skips the test; with CI=true it fails, so an oracle suite can never silently stop running.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const inCI = process.env.CI === 'true';

function probe(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}

const isRoot = process.getuid?.() === 0;
const hasCommand = (cmd: string) => probe(() => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0);

/** Mounts a tiny overlay to see whether the kernel lets us. */
function canMountOverlay(): boolean {
  if (!isRoot) return false;
  const dir = mkdtempSync(join(tmpdir(), 'strata-ovl-probe-'));
  try {
    for (const d of ['l', 'u', 'w', 'm']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'l', 'f'), 'x');
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${dir}/l,upperdir=${dir}/u,workdir=${dir}/w`, `${dir}/m`], { stdio: 'ignore' });
    execFileSync('umount', [`${dir}/m`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const available = {
  root: isRoot,
  'gnu-tar': probe(() => execFileSync('tar', ['--version']).toString().includes('GNU tar')),
  umoci: hasCommand('umoci'),
  skopeo: hasCommand('skopeo'),
  podman: hasCommand('podman'),
  containerd: hasCommand('containerd') && hasCommand('ctr'),
  openssl: hasCommand('openssl'),
  'docker-registry': hasCommand('docker-registry'),
  htpasswd: hasCommand('htpasswd'),
  buildah: hasCommand('buildah'),
  runc: hasCommand('runc'),
  debootstrap: hasCommand('debootstrap'),
  strace: hasCommand('strace'),
  'ssh-agent': hasCommand('ssh-agent') && hasCommand('ssh-add') && hasCommand('ssh-keygen'),
  git: hasCommand('git'),
  sshd: hasCommand('/usr/sbin/sshd') && hasCommand('ssh'),
  python3: probe(() => spawnSync('python3', ['-c', 'import tarfile']).status === 0),
  go: hasCommand('go'),
  gcc: hasCommand('gcc'),
  zstd: hasCommand('zstd'),
  // An emulator for arm64 programs the kernel starts itself (binfmt_misc, flag F): Debian's qemu-user-static
  // and binfmt-support register it (scripts/setup.sh).
  'qemu-aarch64': probe(() => /^enabled\n[\s\S]*^flags: \w*F/m.test(readFileSync('/proc/sys/fs/binfmt_misc/qemu-aarch64', 'utf8'))),
  overlay: probe(canMountOverlay),
};

export type Oracle = keyof typeof available;

/**
 * True when every oracle is present. When one is missing: in CI, throws (the suite fails); elsewhere,
 * returns false so the caller can `describe.skipIf(!needs(...))`.
 */
export function needs(...oracles: Oracle[]): boolean {
  const missing = oracles.filter((o) => !available[o]);
  if (missing.length === 0) return true;
  if (inCI) throw new Error(`CI=true and required oracle(s) unavailable: ${missing.join(', ')}`);
  return false;
}
