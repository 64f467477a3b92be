/**
 * RUN: what a step runs (the command, or a heredoc as the command or as a `#!` script; the environment
 * with the build args in scope; the user, working directory, network, security and mounts), the identity
 * that keys it in the cache, and its execution through an OCI runtime on a kernel overlay mount of the
 * step's snapshot, with the mounts it asked for and the hostname and /etc/hosts BuildKit gives a step.
 * The build around it hands in what RUN reads of it (`RunBuild`); the cache mounts and the bind mounts'
 * shared trees are this module's, held across the build's steps.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError, removeTree, UnsupportedError, WritableLayer } from '@strata/core';
import { formatPlatform, hostPlatform, type Images, type Platform } from '@strata/images';
import { BindTrees } from './bind-trees.js';
import type { BuildEvent, BuildOptions } from './builder.js';
import { cacheSubdirectory, CacheMounts, type HeldCache } from './cache-mounts.js';
import { CopySelection } from './copy.js';
import { emulationFor } from './emulation.js';
import { chompHeredoc, lineError, runMountAt, runNetworkAt, runSecurityAt, type Instruction } from './dockerfile.js';
import { processWord } from './lex.js';
import type { StageState } from './metadata.js';
import { mountStubs, removeMountStubs } from './mount-stubs.js';
import type { RunMount } from './run-mounts.js';
import { findRuntime, rlimitsOf, runContainer, type OciMount, type Rlimit } from './runtime.js';
import { cleanSource, SourceError, type SourceTree } from './sources.js';
import { forwardAgent } from './ssh-agent.js';
import { resolveUser } from './users.js';

/** Docker's predefined proxy ARGs, by kind: a RUN sees them when given as build args, without an ARG declaring them. */
const PROXY_KINDS = ['http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy'];

/**
 * The proxy variables RUN sees, as BuildKit gives them: a build arg named for a kind in any case (the last in
 * sorted order when several are) sets it in both cases, an empty one neither; `taken` names are left alone.
 */
function proxyEnv(buildArgs: Readonly<Record<string, string>>, taken: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (const kind of PROXY_KINDS) {
    const given = Object.keys(buildArgs)
      .filter((name) => name.toLowerCase() === kind)
      .sort()
      .at(-1);
    const value = given === undefined ? '' : buildArgs[given]!;
    if (value === '') continue;
    for (const name of [kind.toUpperCase(), kind]) if (!taken(name)) out.push(`${name}=${value}`);
  }
  return out;
}

/** A RUN step's hostname, as BuildKit names its sandbox; the build arg `BUILDKIT_SANDBOX_HOSTNAME` sets another. */
const SANDBOX_HOSTNAME = 'buildkitsandbox';

/** RUN's hostname: `BUILDKIT_SANDBOX_HOSTNAME` where given (and not empty), else BuildKit's default. */
function sandboxHostname(given: string | undefined): string {
  if (given === undefined || given === '') return SANDBOX_HOSTNAME;
  // The kernel takes 64 bytes; a space or a control character would break the line /etc/hosts gives it.
  if (Buffer.byteLength(given) > 64 || /[\s\x00-\x1f\x7f]/.test(given)) {
    throw new InvalidArgumentError(`BUILDKIT_SANDBOX_HOSTNAME ${JSON.stringify(given)} is not a hostname (at most 64 bytes, no spaces or control characters)`);
  }
  return given;
}

/** The PATH Docker gives a stage that starts from scratch (and a RUN whose environment has none). */
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A base image's ENV as a stage starts with it: Docker's default PATH first when it sets none (scratch's too), as BuildKit and buildah give it. */
export function withDefaultPath(env: readonly string[]): string[] {
  return env.some((e) => e.startsWith('PATH=')) ? [...env] : [DEFAULT_PATH, ...env];
}

/** What RUN reads of the build it is a step of. */
export interface RunBuild<S> {
  readonly images: Images;
  readonly options: BuildOptions;
  /** The build context, as `.dockerignore` leaves it. */
  readonly context: SourceTree;
  readonly limits: { readonly maxEntries: number; readonly maxBytes: number };
  /** The Dockerfile's escape character. */
  readonly escape: string;
  /** The tree a mount's `from` names (a stage, an image, a named context). */
  fromTree(from: string, step: Instruction, stage: S): Promise<{ tree: SourceTree; keepOwners: boolean }>;
  emit(event: BuildEvent): void;
}

/** A RUN step, planned: its key's part, its history line, how it runs on a cache miss. */
export interface RunPlan {
  readonly identity: string;
  readonly history: string;
  /** Runs the step in active snapshot `key`, its output reported as step `number`'s. */
  readonly execute: (key: string, number: number) => Promise<void>;
}

/** What a bind mount (or a cache mount's first contents) shows: its selection, the file when not a directory, and its checksum. */
interface BindSource {
  readonly selection: CopySelection;
  readonly file: string | undefined;
  readonly keepOwners: boolean;
  readonly sum: string;
}

/** A heredoc that is the whole command and starts with `#!`: run as the program it names, as in BuildKit. */
interface HeredocScript {
  /** Where it is bound in the container (under /dev, the container's own tmpfs: nothing of it reaches the layer). */
  readonly path: string;
  readonly content: string;
}

/** Everything a planned step runs with, decided before it runs. */
interface PlannedRun {
  readonly step: Instruction;
  readonly platform: Platform;
  readonly args: readonly string[];
  readonly script: HeredocScript | undefined;
  /** The environment its key holds. */
  readonly env: readonly string[];
  /** Proxy variables it sees besides, kept out of its key and history. */
  readonly proxies: readonly string[];
  readonly cwd: string;
  readonly user: string;
  /** Whether the stage set USER (without, the step runs as uid 0, passwd file or not). */
  readonly userGiven: boolean;
  readonly mounts: readonly RunMount[];
  readonly bindSources: ReadonlyMap<RunMount, BindSource>;
  readonly network: 'none' | 'host';
  readonly privileged: boolean;
  /** Extra hosts, by name. */
  readonly hosts: ReadonlyArray<readonly [string, string]>;
}

/**
 * The step's command line: its exec form as given, or the shell's with its command; a heredoc as the whole
 * command is the shell's command, or with `#!` a script to run; heredocs beside a command line go to the
 * shell with it, as written.
 */
function command(state: StageState, step: Instruction): { args: string[]; script: HeredocScript | undefined } {
  if (step.heredocs === undefined) return { args: step.json ? [...step.json] : [...state.shell(), step.args], script: undefined };
  const first = step.heredocs[0]!;
  const marker = /^<<-?(["']?)(\w+)\1$/.exec(step.args.trim());
  if (step.heredocs.length === 1 && marker?.[2] === first.name) {
    const body = first.chomp ? chompHeredoc(first.content) : first.content;
    if (!body.startsWith('#!')) return { args: [...state.shell(), body], script: undefined };
    const script = { path: `/dev/pipes/${first.name}`, content: body };
    return { args: [...state.shell(), script.path], script };
  }
  return { args: [...state.shell(), step.args + step.heredocs.map((h) => `\n${h.content}${h.name}`).join('')], script: undefined };
}

/** RUN's steps of one build; `S` is the build's stage, of which RUN reads the state and platform. */
export class RunSteps<S extends { readonly state: StageState; readonly platform: Platform }> {
  readonly #build: RunBuild<S>;
  readonly #hostname: string;
  /** The build's `ulimits` and `shmSize`, checked when the build starts, and what they add to each RUN's key. */
  readonly #rlimits: readonly Rlimit[];
  readonly #shmSize: number | undefined;
  readonly #limitsKey: readonly unknown[];
  readonly #cacheMounts: CacheMounts;
  readonly #bindTrees = new BindTrees();

  /** `cacheMounts`: the directory of the root's cache mounts. */
  constructor(build: RunBuild<S>, cacheMounts: string) {
    this.#build = build;
    this.#hostname = sandboxHostname(build.options.buildArgs?.BUILDKIT_SANDBOX_HOSTNAME);
    this.#rlimits = rlimitsOf(build.options.ulimits ?? {});
    const shm = build.options.shmSize;
    if (shm !== undefined && !(Number.isSafeInteger(shm) && shm >= 4096)) throw new InvalidArgumentError(`shmSize must be a whole number of bytes, at least 4096: ${shm}`);
    this.#shmSize = shm;
    // Part of each RUN's key when given (BuildKit's op holds them); the defaults leave keys as they were.
    this.#limitsKey = [...(this.#rlimits.length > 0 ? [['ulimits', ...this.#rlimits.map((r) => [r.type, r.soft, r.hard])]] : []), ...(shm !== undefined ? [['shm-size', shm]] : [])];
    this.#cacheMounts = new CacheMounts(cacheMounts);
  }

  /** Lets go of what the build's steps shared (the bind mounts' trees), once none runs. */
  dispose(): void {
    this.#bindTrees.dispose();
  }

  /** The step's plan: what keys it, its history line, and how it runs in the step's active snapshot. */
  async plan(stage: S, step: Instruction): Promise<RunPlan> {
    const config = stage.state.config;
    const { args, script } = command(stage.state, step);
    // The environment: the config's, then the build args in scope that it does not set, as Docker gives RUN.
    const env = [...(config.Env ?? [])];
    const names = new Set(env.map((e) => e.split('=', 1)[0]!));
    // In the order the ARGs were first declared (a base stage's first), as BuildKit lists them (`RUN |2 foo=… bar=…`).
    const args_ = [...stage.state.args].filter(([name]) => !names.has(name));
    for (const [name, value] of args_) env.push(`${name}=${value}`);
    if (!env.some((e) => e.startsWith('PATH='))) env.push(DEFAULT_PATH);
    // Docker's predefined proxy ARGs, given as build args and not declared: the step sees them, but neither
    // its key nor the history does (a proxy's address or credentials are the machine's, not the image's).
    const buildArgs = this.#build.options.buildArgs ?? {};
    const proxies = proxyEnv(buildArgs, (name) => stage.state.args.has(name) || names.has(name));
    const cwd = config.WorkingDir || '/';
    const user = config.User || 'root';
    const mounts = this.#runMounts(stage, step, cwd);
    // The first ssh mount is the step's agent, as BuildKit sets it (unless the step's environment has one).
    const agent = mounts.find((m) => m.type === 'ssh');
    if (agent !== undefined && !env.some((e) => e.startsWith('SSH_AUTH_SOCK='))) env.push(`SSH_AUTH_SOCK=${agent.target}`);
    const bindSources = await this.#bindSelections(stage, step, mounts);
    // A step's key holds its mounts as parsed (a cache's id and options, never its contents, as in BuildKit),
    // and what a bind mount shows, by checksum as COPY's sources are.
    const mountKeys = mounts.map((m) => (bindSources.has(m) ? { ...m, sum: bindSources.get(m)!.sum } : m));
    // `default` and `host` are the same network here (the host's), and so the same step; `none` is another.
    const network = runNetworkAt(step.flags.network ?? this.#build.options.network, step.line) === 'none' ? 'none' : 'host';
    const privileged = runSecurityAt(step.flags.security, step.line) === 'insecure';
    if (privileged && !this.#build.options.allow?.includes('security.insecure')) {
      throw new PermissionDeniedError(`Dockerfile line ${step.line}: RUN --security=insecure needs the security.insecure entitlement (strata build --allow security.insecure)`);
    }
    // Extra hosts and the hostname are part of what the step runs with (BuildKit keys them too).
    const hosts = Object.entries(this.#build.options.extraHosts ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const hostname = this.#hostname;
    const identity = JSON.stringify(['RUN', args, env, cwd, user, ...(mounts.length > 0 ? [mountKeys] : []), ...(network === 'none' ? ['network=none'] : []), ...(script ? [script.content] : []), ...(privileged ? ['security=insecure'] : []), ...(hosts.length > 0 ? [['hosts', ...hosts]] : []), ...(hostname !== SANDBOX_HOSTNAME ? [['hostname', hostname]] : []), ...this.#limitsKey]);
    const history = args_.length > 0 ? `RUN |${args_.length} ${args_.map(([n, v]) => `${n}=${v}`).join(' ')} ${args.join(' ')}` : `RUN ${args.join(' ')}`;
    const spec: PlannedRun = { step, platform: stage.platform, args, script, env, proxies, cwd, user, userGiven: Boolean(config.User), mounts, bindSources, network, privileged, hosts };
    return { identity, history, execute: (key, number) => this.#execute(spec, key, number) };
  }

  /** Runs a planned step in active snapshot `key`: its container, its mounts, then what it leaves. */
  async #execute(spec: PlannedRun, key: string, number: number): Promise<void> {
    const { step, args, script, env, proxies, cwd, user, mounts, bindSources, network, privileged, hosts } = spec;
    const hostname = this.#hostname;
    const host = hostPlatform();
    if (spec.platform.os !== host.os || spec.platform.architecture !== host.architecture) {
      // Another platform's programs run through the emulator the host registered for them, as in BuildKit.
      const emulation = emulationFor(spec.platform);
      if (!emulation.ok) throw new UnsupportedError(`Dockerfile line ${step.line}: RUN for ${formatPlatform(spec.platform)} cannot run on this ${formatPlatform(host)} host: ${emulation.reason}`);
    }
    let runtime: string;
    try {
      runtime = findRuntime(this.#build.options.runtime);
    } catch (error) {
      throw new UnsupportedError(`Dockerfile line ${step.line}: ${(error as Error).message}`);
    }
    const { snapshotter } = this.#build.images;
    if (snapshotter.driver !== 'overlay') throw new UnsupportedError(`Dockerfile line ${step.line}: RUN needs kernel overlay mounts; this root uses the ${snapshotter.driver} driver`);
    const layer = await snapshotter.open(key);
    let resolved;
    try {
      // No USER is uid 0, with or without a passwd file to name it (a scratch image has none), as BuildKit has it.
      resolved = await resolveUser(layer, spec.userGiven ? user : '0');
    } catch (error) {
      throw lineError(step.line, `RUN as ${JSON.stringify(user)}: ${(error as Error).message}`);
    }
    const runEnv = resolved.home && !env.some((e) => e.startsWith('HOME=')) ? [...env, `HOME=${resolved.home}`] : [...env];
    runEnv.push(...proxies);
    try {
      await layer.stat(cwd);
    } catch {
      await layer.mkdir(cwd, { recursive: true, mode: 0o755 });
    }
    const binds: string[] = [];
    try {
      if ((await layer.lstat('/etc/resolv.conf')).isFile()) binds.push('/etc/resolv.conf');
    } catch {
      // the image has none: RUN gets none (nothing appears in the layer for it)
    }
    // /etc/hosts is the step's own, written in the bundle as BuildKit writes it: localhost under the
    // sandbox's name too (so the step's hostname resolves), then the extra hosts; where the image has none,
    // its mount point is a stub like a mount's, removed after the step.
    const hostsStub: RunMount = { type: 'bind', target: '/etc/hosts', source: '.', readwrite: false };
    const stubs = await mountStubs(layer, [hostsStub, ...mounts]);
    const held: HeldCache[] = [];
    const bundle = mkdtempSync(join(tmpdir(), 'strata-run-'));
    const rootfs = join(bundle, 'rootfs');
    mkdirSync(rootfs);
    let status: number;
    try {
      const ociMounts = await this.#stepMounts(step, mounts, bindSources, bundle, held, runEnv, privileged);
      const hostsFile = join(bundle, 'hosts');
      writeFileSync(hostsFile, `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n${hosts.map(([name, address]) => `${address}\t${name}\n`).join('')}`, { mode: 0o644 });
      ociMounts.unshift({ destination: '/etc/hosts', type: 'bind', source: hostsFile, options: ['rbind', 'ro'] });
      if (script) {
        const file = join(bundle, 'heredoc-script');
        writeFileSync(file, script.content, { mode: 0o755, flag: 'wx' });
        ociMounts.push({ destination: script.path, type: 'bind', source: file, options: ['rbind', 'ro'] });
      }
      await snapshotter.mount(key, rootfs);
      try {
        status = await runContainer(runtime, bundle, rootfs, { args, env: runEnv, cwd, uid: resolved.uid, gid: resolved.gid, additionalGids: resolved.additionalGids, binds, mounts: ociMounts, network, privileged, hostname, rlimits: this.#rlimits, ...(this.#shmSize !== undefined ? { shmSize: this.#shmSize } : {}) }, {
          onOutput: (data) => this.#build.emit({ type: 'output', step: number, data }),
          ...(this.#build.options.signal ? { signal: this.#build.options.signal } : {}),
        });
      } finally {
        await snapshotter.unmount(rootfs).catch(() => {});
      }
    } finally {
      for (const cache of held) cache.release();
      // The root first, alone: were it still mounted, removing the bundle would reach into the snapshot.
      rmdirSync(rootfs);
      removeTree(bundle);
    }
    await removeMountStubs(await snapshotter.open(key), stubs);
    if (status !== 0) throw new FailedPreconditionError(`Dockerfile line ${step.line}: RUN ${step.json ? JSON.stringify(step.json) : step.args} failed with exit status ${status}`);
  }

  /**
   * The runtime's mounts for a step's `--mount`s, in order: caches held (into `held`, for the caller to
   * release), bind sources and secrets written into the step's `bundle` (removed after the step); secrets
   * given as variables go into `env`.
   */
  async #stepMounts(step: Instruction, mounts: readonly RunMount[], bindSources: ReadonlyMap<RunMount, BindSource>, bundle: string, held: HeldCache[], env: string[], privileged: boolean): Promise<OciMount[]> {
    const out: OciMount[] = [];
    for (const [i, mount] of mounts.entries()) {
      if (mount.type === 'tmpfs') {
        out.push({ destination: mount.target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', ...(mount.size === undefined ? [] : [`size=${mount.size}`])] });
      } else if (mount.type === 'bind') {
        // A copy of what the mount shows (the context as .dockerignore leaves it, nothing of the host's
        // reachable through it): the build's shared one, read-only, or the step's own where it can write.
        const { selection, file, keepOwners, sum } = bindSources.get(mount)!;
        const write = (dir: string) => selection.write(new WritableLayer([], dir), { keepOwners });
        let tree: string;
        if (mount.readwrite || privileged) {
          tree = join(bundle, `bind-${i}`);
          mkdirSync(tree);
          await write(tree);
        } else {
          tree = await this.#bindTrees.shared(sum, write);
        }
        out.push({ destination: mount.target, type: 'bind', source: file === undefined ? tree : join(tree, file), options: ['rbind', mount.readwrite ? 'rw' : 'ro'] });
      } else if (mount.type === 'secret') {
        const secret = this.#build.options.secrets?.[mount.id];
        if (secret === undefined) {
          if (mount.required) throw lineError(step.line, `RUN --mount=type=secret: the secret ${JSON.stringify(mount.id)} is required and was not given`);
          continue; // as BuildKit: the step runs without it
        }
        if (mount.env !== undefined) {
          const value = Buffer.from(secret).toString();
          if (value.includes('\0')) throw lineError(step.line, `RUN --mount=type=secret,env=${mount.env}: the secret ${JSON.stringify(mount.id)} holds a NUL byte, which no variable can`);
          // Over a variable of the same name the step would otherwise see.
          const same = env.findIndex((e) => e.startsWith(`${mount.env}=`));
          if (same >= 0) env.splice(same, 1);
          env.push(`${mount.env}=${value}`);
        }
        if (mount.target === undefined) continue;
        // In the bundle (mode 0700), read-only in the container.
        const file = join(bundle, `secret-${i}`);
        writeFileSync(file, secret, { mode: 0o600, flag: 'wx' });
        chownSync(file, mount.uid, mount.gid);
        chmodSync(file, mount.mode);
        out.push({ destination: mount.target, type: 'bind', source: file, options: ['rbind', 'ro'] });
      } else if (mount.type === 'ssh') {
        const agent = this.#build.options.ssh?.[mount.id];
        if (agent === undefined) {
          if (mount.required) throw lineError(step.line, `RUN --mount=type=ssh: the SSH agent ${JSON.stringify(mount.id)} is required and was not given`);
          continue; // as BuildKit: the step runs without it
        }
        let forwarded;
        try {
          forwarded = await forwardAgent(agent, join(bundle, `ssh-${i}.sock`), mount);
        } catch (error) {
          throw new FailedPreconditionError(`Dockerfile line ${step.line}: RUN --mount=type=ssh,id=${mount.id}: ${(error as Error).message}`, { cause: error });
        }
        held.push(forwarded);
        out.push({ destination: mount.target, type: 'bind', source: forwarded.path, options: ['rbind', 'rw'] });
      } else {
        // With `from`, the cache is the id's on that base (its contents' sum), first filled from it.
        const base = bindSources.get(mount);
        const cache = await this.#cacheMounts.acquire(
          mount,
          this.#build.options.signal,
          base === undefined ? {} : { key: `${mount.id}\0from\0${base.sum}`, seed: (dir) => base.selection.write(new WritableLayer([], dir), { keepOwners: base.keepOwners }) },
        );
        held.push(cache);
        let mounted = cache;
        if (base === undefined && mount.source !== undefined) {
          try {
            mounted = cacheSubdirectory(cache, mount.source, join(bundle, `cache-${i}`));
          } catch (error) {
            throw new FailedPreconditionError(`Dockerfile line ${step.line}: RUN --mount=type=cache,id=${mount.id}: ${(error as Error).message}`, { cause: error });
          }
          held.push(mounted);
        }
        out.push({ destination: mount.target, type: 'bind', source: mounted.path, options: ['rbind', mount.readonly ? 'ro' : 'rw'] });
      }
    }
    return out;
  }

  /**
   * What each bind mount of a step shows, selected as COPY selects a source (from the context with its
   * `.dockerignore`, or from a stage's or an image's tree), with its checksum for the step's key; `file` is
   * the name to mount when the source is not a directory.
   */
  async #bindSelections(stage: S, step: Instruction, mounts: readonly RunMount[]): Promise<Map<RunMount, BindSource>> {
    const out = new Map<RunMount, BindSource>();
    for (const mount of mounts) {
      // A bind's source, or a cache's first contents (`from` a stage, image or named context).
      if (mount.type !== 'bind' && !(mount.type === 'cache' && mount.from !== undefined)) continue;
      const source = mount.source ?? '.';
      const { tree, keepOwners } = mount.from === undefined ? { tree: this.#build.context, keepOwners: false } : await this.#build.fromTree(mount.from, step, stage);
      try {
        const path = cleanSource(source, tree.label);
        const node = await tree.resolve(path);
        if (node === undefined) throw new SourceError(`${JSON.stringify(source)} is not in ${tree.label}`);
        if (mount.type === 'cache' && node.type !== 'directory') throw new SourceError(`${JSON.stringify(source)} is no directory of ${tree.label} (a cache's from is one)`);
        const selection = await CopySelection.select(tree, [source], '/', this.#build.limits);
        out.set(mount, { selection, file: node.type === 'directory' ? undefined : posix.basename(path), keepOwners, sum: await selection.checksum({ keepOwners }) });
      } catch (error) {
        if (error instanceof SourceError) throw lineError(step.line, `RUN --mount source ${error.message}`);
        throw error;
      }
    }
    return out;
  }

  /** The step's `--mount`s, expanded and parsed, parents first; a malformed one is the line's error. */
  #runMounts(stage: S, step: Instruction, cwd: string): RunMount[] {
    const vars = stage.state.variables();
    let ssh = 0;
    const mounts = (step.mounts ?? []).map((spec) => {
      const mount = runMountAt(processWord(spec, vars, this.#build.escape), cwd, step.line, ssh);
      if (mount.type === 'ssh') ssh++;
      return mount;
    });
    // (A secret given as a variable only has no target: first, and no mount.)
    const at = (m: RunMount) => m.target ?? '';
    mounts.sort((a, b) => (at(a) < at(b) ? -1 : at(a) > at(b) ? 1 : 0));
    for (let i = 1; i < mounts.length; i++) if (at(mounts[i]!) !== '' && at(mounts[i]!) === at(mounts[i - 1]!)) throw lineError(step.line, `two mounts at ${at(mounts[i]!)}`);
    return mounts;
  }
}
