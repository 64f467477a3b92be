/**
 * A private containerd daemon, for the interop test and the diff benchmarks: its own root, state and socket
 * under one directory, so the oracle and the peer are containerd's own snapshot diff (its overlayfs
 * snapshotter and walking differ), not a re-implementation of it.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const NAMESPACE = 'strata';
/** Uncompressed, as the other cases write their layers. */
const LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
/** What the overlay mount that wrote an upper records of itself: file handles of *its* lowers, meaningless over another lower. */
const MOUNT_BOOKKEEPING = ['trusted.overlay.origin', 'trusted.overlay.impure', 'trusted.overlay.uuid'];

export class Containerd {
  readonly #daemon: ChildProcess;
  readonly #socket: string;

  private constructor(
    daemon: ChildProcess,
    socket: string,
    /** The daemon's executable (for a benchmark to re-read after a cache drop). */
    readonly program: string,
  ) {
    this.#daemon = daemon;
    this.#socket = socket;
  }

  /** Starts a daemon rooted in `dir` (CRI off: nothing here runs containers) and waits until it answers. */
  static async start(dir: string): Promise<Containerd> {
    mkdirSync(dir, { recursive: true });
    const socket = join(dir, 'containerd.sock');
    const config = join(dir, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = "${join(dir, 'root')}"`,
        `state = "${join(dir, 'state')}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${socket}"`,
        '',
      ].join('\n'),
    );
    const log = join(dir, 'containerd.log');
    const logFd = openSync(log, 'w');
    const program = spawnSync('sh', ['-c', 'command -v containerd'], { encoding: 'utf8' }).stdout.trim() || 'containerd';
    const daemon = spawn(program, ['--config', config], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    let failure: Error | undefined;
    daemon.on('error', (error) => (failure = error)); // e.g. not installed: reported below, not thrown from an event
    const containerd = new Containerd(daemon, socket, program);
    process.once('exit', () => daemon.kill('SIGKILL')); // a harness that fails midway leaves no daemon behind
    const tail = () => readFileSync(log, 'utf8').split('\n').slice(-5).join('\n');
    for (let waited = 0; ; waited += 50) {
      if (failure) throw new Error(`containerd did not start: ${failure.message}`);
      if (daemon.exitCode !== null) throw new Error(`containerd exited at start-up (${daemon.exitCode}):\n${tail()}`);
      if (spawnSync('ctr', ['-a', socket, 'version'], { stdio: 'ignore' }).status === 0) return containerd;
      if (waited > 20_000) {
        containerd.stop();
        throw new Error(`containerd did not answer within 20 s:\n${tail()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A `ctr` command line against this daemon. */
  ctr(...args: string[]): string[] {
    return ['ctr', '-a', this.#socket, '-n', NAMESPACE, ...args];
  }

  #run(...args: string[]): string {
    const [command, ...rest] = this.ctr(...args);
    return execFileSync(command!, rest, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  }

  /** The directory holding snapshot `key`'s own files (an active snapshot's upper). */
  #filesOf(key: string): string {
    const mount = this.#run('snapshots', 'mounts', '/mnt', key);
    const dir = /upperdir=([^,\s]+)/.exec(mount)?.[1] ?? /mount -t bind (\S+)/.exec(mount)?.[1];
    if (dir === undefined) throw new Error(`cannot tell where snapshot ${key} keeps its files: ${mount}`);
    return dir;
  }

  /**
   * Stages a change as containerd holds it: a committed snapshot with the lower's files, and an active
   * snapshot `key` over it whose upper is a copy of the kernel-written upper. Returns `key`.
   */
  stageChange(lower: string, upper: string, key = 'change'): string {
    this.#run('snapshots', 'prepare', 'base-active', '');
    execFileSync('cp', ['-a', `${lower}/.`, this.#filesOf('base-active')]);
    this.#run('snapshots', 'commit', 'base', 'base-active');
    this.#run('snapshots', 'prepare', key, 'base');
    const files = this.#filesOf(key);
    execFileSync('cp', ['-a', `${upper}/.`, files]);
    for (const name of MOUNT_BOOKKEEPING) {
      execFileSync('sh', ['-c', 'getfattr -R --absolute-names -n "$1" "$2" 2>/dev/null | sed -n "s/^# file: //p" | while IFS= read -r f; do setfattr -h -x "$1" "$f"; done', 'sh', name, files]);
    }
    return key;
  }

  /** `ctr snapshots diff` of active snapshot `key` against its parent, as an uncompressed layer (printed to stdout). */
  diffCommand(key: string): string[] {
    return this.ctr('snapshots', 'diff', '--media-type', LAYER_TAR, key);
  }

  /** That diff, written to `out`. */
  diff(key: string, out: string): void {
    const [command, ...args] = this.diffCommand(key);
    const fd = openSync(out, 'w');
    try {
      execFileSync(command!, args, { stdio: ['ignore', fd, 'inherit'] });
    } finally {
      closeSync(fd);
    }
  }

  /** Removes the blobs earlier diffs left in the content store, so every run writes its own. */
  clearContent(): void {
    const digests = this.#run('content', 'ls', '-q').split('\n').filter(Boolean);
    if (digests.length > 0) this.#run('content', 'rm', ...digests);
  }

  /** Stops the daemon and waits (up to 10 s) until it has exited, so its root can be removed. */
  stop(): void {
    this.#daemon.kill('SIGTERM');
    const sleep = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 200 && running(this.#daemon.pid!); i++) Atomics.wait(sleep, 0, 0, 50);
  }
}

/** Whether `pid` still runs: exited children stay as zombies until Node reaps them, which it cannot while we wait. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
