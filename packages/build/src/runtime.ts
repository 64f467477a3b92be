/**
 * RUN through a real OCI runtime (runc or crun): a bundle whose root is the kernel overlay mount of the
 * step's snapshot, with `/proc`, `/dev`, `/sys`, the host's network (no network namespace, as `docker build`
 * gives RUN by default) or none (`RUN --network=none`: a namespace of its own, loopback only), the step's
 * environment, user, working directory and command; confined as BuildKit confines a step (Docker's default
 * capabilities, containerd's masked paths and seccomp profile), or privileged for `RUN --security=insecure`.
 * The runtime's own output and the command's go to `onOutput`; the exit status comes back.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, type Dirent } from 'node:fs';
import { delimiter, join } from 'node:path';
import { InvalidArgumentError, UnsupportedError } from '@strata/core';
import { runSeccomp } from './seccomp.js';

/** What one RUN executes. */
export interface RunSpec {
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly uid: number;
  readonly gid: number;
  readonly additionalGids: readonly number[];
  /** Host files bind-mounted read-only over the same paths (`/etc/resolv.conf`), when the image has them. */
  readonly binds: readonly string[];
  /** The step's own mounts (`RUN --mount`), after the others, parents before what they hold. */
  readonly mounts?: readonly OciMount[];
  /** `none`: a network namespace of its own, with loopback alone (the runtime brings it up). Default: the host's. */
  readonly network?: 'host' | 'none';
  /**
   * `RUN --security=insecure`: what `docker run --privileged` gives, every capability the builder has, the
   * host's devices, `/sys` writable, nothing of `/proc` masked or read-only.
   */
  readonly privileged?: boolean;
  /** The container's hostname (its own UTS namespace). */
  readonly hostname: string;
  /** Resource limits (`setrlimit`) of the step's processes; none: the runtime's own, as in BuildKit. */
  readonly rlimits?: readonly Rlimit[];
  /** Bytes of the step's `/dev/shm` (a tmpfs); default 64 MiB, containerd's. */
  readonly shmSize?: number;
}

/** A resource limit as the runtime spec gives it: `RLIMIT_NOFILE`…, soft and hard, -1 for unlimited. */
export interface Rlimit {
  readonly type: string;
  readonly soft: number;
  readonly hard: number;
}

/** The resource names `docker build --ulimit` takes (Docker's, from go-units), each a Linux RLIMIT_*. */
const ULIMIT_NAMES = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

/**
 * `ulimits` (name → soft and hard, -1 unlimited, as `docker build --ulimit` gives them) as the runtime's
 * limits, sorted by name. Throws INVALID_ARGUMENT for a name Docker does not take, a value that is not a
 * whole number of -1 or more, or a soft limit over its hard one.
 */
export function rlimitsOf(ulimits: Readonly<Record<string, { readonly soft: number; readonly hard: number }>>): Rlimit[] {
  const out: Rlimit[] = [];
  for (const name of Object.keys(ulimits).sort()) {
    const { soft, hard } = ulimits[name]!;
    if (!ULIMIT_NAMES.includes(name)) throw new InvalidArgumentError(`ulimit ${JSON.stringify(name)} is none of ${ULIMIT_NAMES.join(', ')}`);
    for (const value of [soft, hard]) {
      if (!Number.isSafeInteger(value) || value < -1) throw new InvalidArgumentError(`ulimit ${name}: ${value} is not a limit (a whole number, or -1 for unlimited)`);
    }
    if (hard !== -1 && (soft === -1 || soft > hard)) throw new InvalidArgumentError(`ulimit ${name}: the soft limit ${soft} is over the hard limit ${hard}`);
    out.push({ type: `RLIMIT_${name.toUpperCase()}`, soft, hard });
  }
  return out;
}

/**
 * Unlimited (RLIM_INFINITY, 2^64 - 1), which no JavaScript number spells: a string in the spec, replaced in
 * its JSON by the number. Random, so that no argument or variable of a step can be it.
 */
const UNLIMITED = `rlim-infinity-${randomBytes(16).toString('hex')}`;
const UNLIMITED_JSON = '18446744073709551615';

/** A mount of the OCI runtime spec. */
export interface OciMount {
  readonly destination: string;
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

/**
 * What a step does not see of `/proc` and `/sys` (containerd's default, which BuildKit keeps): the host's
 * keys, its kernel's memory and timers, firmware, and the power meters that leak what other processes compute.
 */
const MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats',
  '/proc/sched_debug', '/sys/firmware', '/sys/devices/virtual/powercap', '/proc/scsi',
];

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

/** Linux's capabilities by number (capability.h). */
const ALL_CAPABILITIES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE',
  'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE',
  'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
].map((name) => `CAP_${name}`);

/**
 * The capabilities this process holds (its effective set), for a privileged step: all a container can be
 * given from here, as containerd's privileged spec gives the current ones (a VM's root may lack some).
 */
function currentCapabilities(): string[] {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  const bits = BigInt(`0x${effective?.[1] ?? '0'}`);
  return ALL_CAPABILITIES.filter((_, n) => ((bits >> BigInt(n)) & 1n) === 1n);
}

/** Devices the runtime makes in every container, which a privileged step's list leaves to it. */
const RUNTIME_DEVICES = new Set(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty', '/dev/ptmx', '/dev/console']);

/** The host's device nodes under `/dev` (not its pseudo-terminals, shared memory or queues), as the spec lists devices. */
function hostDevices(dir = '/dev'): object[] {
  const devices: object[] = [];
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return devices;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!['/dev/pts', '/dev/shm', '/dev/mqueue'].includes(path)) devices.push(...hostDevices(path));
    } else if ((entry.isCharacterDevice() || entry.isBlockDevice()) && !RUNTIME_DEVICES.has(path)) {
      const st = statSync(path, { bigint: true });
      const rdev = st.rdev;
      const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
      const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
      devices.push({ path, type: entry.isCharacterDevice() ? 'c' : 'b', major, minor, fileMode: Number(st.mode & 0o777n), uid: Number(st.uid), gid: Number(st.gid) });
    }
  }
  return devices;
}

/** Whether the host's cgroups are v2 alone (unified), where a cgroup namespace hides the host's hierarchy. */
function unifiedCgroups(): boolean {
  return existsSync('/sys/fs/cgroup/cgroup.controllers');
}

function ociSpec(rootfs: string, run: RunSpec): object {
  const isolated = run.network === 'none';
  const granted = run.privileged ? currentCapabilities() : CAPABILITIES;
  const caps = { bounding: granted, effective: granted, permitted: granted };
  const sysOptions = run.privileged ? ['nosuid', 'noexec', 'nodev'] : ['nosuid', 'noexec', 'nodev', 'ro'];
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
      ...(run.rlimits && run.rlimits.length > 0
        ? { rlimits: run.rlimits.map(({ type, soft, hard }) => ({ type, soft: soft === -1 ? UNLIMITED : soft, hard: hard === -1 ? UNLIMITED : hard })) }
        : {}),
    },
    root: { path: rootfs, readonly: false },
    hostname: run.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${run.shmSize ?? 64 * 1024 * 1024}`] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      // Without a network namespace sysfs cannot be mounted anew: the host's, read-only, as Docker does for
      // --network host. In one of its own, its own (the host's interfaces are not its business).
      isolated ? { destination: '/sys', type: 'sysfs', source: 'sysfs', options: sysOptions } : { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', ...sysOptions] },
      // The step's own cgroups over the host's (which the /sys above shows whole): the runtime mounts the
      // container's own, as containerd's default spec asks, so no other process's groups, limits or pids show.
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', ...(run.privileged ? [] : ['ro'])] },
      ...run.binds.map((path) => ({ destination: path, type: 'bind', source: path, options: ['rbind', 'ro'] })),
      ...(run.mounts ?? []),
    ],
    linux: {
      // A cgroup namespace where the host has cgroup v2 (BuildKit's rule), so the step's group is its root.
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, ...(isolated ? [{ type: 'network' }] : []), ...(unifiedCgroups() ? [{ type: 'cgroup' }] : [])],
      ...(run.privileged
        ? { devices: hostDevices(), resources: { devices: [{ allow: true, access: 'rwm' }] } }
        : {
            maskedPaths: MASKED_PATHS,
            readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
            seccomp: runSeccomp(),
          }),
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
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(ociSpec(rootfs, run)).replaceAll(JSON.stringify(UNLIMITED), UNLIMITED_JSON));
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
