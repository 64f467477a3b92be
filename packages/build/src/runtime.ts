/**
 * RUN through a real OCI runtime (runc or crun): a bundle whose root is the kernel overlay mount of the
 * step's snapshot, with `/proc`, `/dev`, `/sys`, the host's network (no network namespace, as `docker build`
 * gives RUN by default) or none (`RUN --network=none`: a namespace of its own, loopback only), the step's
 * environment, user, working directory and command. The runtime's own
 * output and the command's go to `onOutput`; the exit status comes back.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UnsupportedError } from '@strata/core';

/** What one RUN executes. */
export interface RunSpec {
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly uid: number;
  readonly gid: number;
  readonly additionalGids: readonly number[];
  /** Host files bind-mounted read-only over the same paths (`/etc/resolv.conf`, `/etc/hosts`), when the image has them. */
  readonly binds: readonly string[];
  /** The step's own mounts (`RUN --mount`), after the others, parents before what they hold. */
  readonly mounts?: readonly OciMount[];
  /** `none`: a network namespace of its own, with loopback alone (the runtime brings it up). Default: the host's. */
  readonly network?: 'host' | 'none';
}

/** A mount of the OCI runtime spec. */
export interface OciMount {
  readonly destination: string;
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

/** Docker's default capabilities for a container. */
const CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** The runtime binary to use: `preferred`, `$STRATA_RUNTIME`, or runc then crun on PATH. Throws UNSUPPORTED. */
export function findRuntime(preferred?: string): string {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UnsupportedError('RUN needs root (an OCI runtime and kernel overlay mounts)');
  }
  const wanted = preferred ?? process.env.STRATA_RUNTIME;
  const names = wanted ? [wanted] : ['runc', 'crun'];
  for (const name of names) {
    if (name.includes('/')) {
      if (existsSync(name)) return name;
      continue;
    }
    for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new UnsupportedError(`RUN needs an OCI runtime: ${names.join(' or ')} is not installed (apt-get install runc)`);
}

function ociSpec(rootfs: string, run: RunSpec): object {
  const isolated = run.network === 'none';
  const caps = { bounding: CAPABILITIES, effective: CAPABILITIES, permitted: CAPABILITIES };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: run.uid, gid: run.gid, additionalGids: [...run.additionalGids] },
      args: [...run.args],
      env: [...run.env],
      cwd: run.cwd,
      capabilities: caps,
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: false },
    hostname: 'strata-build',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      // Without a network namespace sysfs cannot be mounted anew: the host's, read-only, as Docker does for
      // --network host. In one of its own, its own (the host's interfaces are not its business).
      isolated
        ? { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] }
        : { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] },
      ...run.binds.map((path) => ({ destination: path, type: 'bind', source: path, options: ['rbind', 'ro'] })),
      ...(run.mounts ?? []),
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, ...(isolated ? [{ type: 'network' }] : [])],
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/**
 * Runs `run` in a container whose root file system is mounted at `rootfs` (a directory the caller mounted
 * and unmounts), with the bundle in `bundle` (an empty directory). Returns the exit status (128 + n for a
 * signal). Aborting kills the container.
 */
export async function runContainer(runtime: string, bundle: string, rootfs: string, run: RunSpec, options: { onOutput?: (chunk: Buffer) => void; signal?: AbortSignal } = {}): Promise<number> {
  mkdirSync(bundle, { recursive: true });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(ociSpec(rootfs, run)));
  const id = `strata-build-${randomBytes(6).toString('hex')}`;
  const state = join(bundle, 'state');
  const child = spawn(runtime, ['--root', state, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = (chunk: Buffer) => options.onOutput?.(chunk);
  child.stdout.on('data', output);
  child.stderr.on('data', output);
  const abort = () => spawnSync(runtime, ['--root', state, 'kill', id, 'KILL'], { stdio: 'ignore' });
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve(code ?? 128 + (signal ? 9 : 0)));
    });
  } finally {
    options.signal?.removeEventListener('abort', abort);
    spawnSync(runtime, ['--root', state, 'delete', '--force', id], { stdio: 'ignore' });
  }
}
