#!/usr/bin/env node
/**
 * The `strata` executable (bundled as dist/strata.cjs): runs the bundled command (dist/strata-command.cjs)
 * through V8's code cache, and the libraries of the commands that open a root (dist/strata-root.cjs) the
 * same way, once the command imports one of them. Compiling a bundle, and then each function it calls, is
 * 30–90 ms of every command; with the cache V8 deserialises the bytecode a previous run compiled instead
 * (Node 22 has `module.enableCompileCache` for this; Node 20 does not).
 *
 * The cache lives beside the bundles, so it is exactly as trusted as they are: a user who cannot write there
 * reads the cache the installer's runs left, or runs without one. Bytecode is code, so a cache owned by
 * anyone but the caller or the bundle's owner, or writable by others, is ignored. It is rewritten when a
 * command the cache has not seen ran (its functions are then compiled too), at most once per command, by
 * rename, so a reader sees the old cache or the new one. One file holds both bundles' bytecode: the
 * command's, then the root libraries' (none until a command that opens a root ran).
 */
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { getPriority, setPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/** The bundles' content hash, set by scripts/bundle.mjs: V8 itself checks only a source's length. */
declare const STRATA_COMMAND_BUNDLE_ID: string;

const here = dirname(fileURLToPath(import.meta.url));
const commandBundle = join(here, 'strata-command.cjs');
const rootBundle = join(here, 'strata-root.cjs');
/** `STRATA_CODE_CACHE` moves it (a user of a read-only install points it into their own directory). */
const cacheFile = process.env.STRATA_CODE_CACHE || join(here, 'strata-command.v8cache');
/** The cache's first line: what it was made from, the commands whose functions it holds, the command bundle's bytes. */
const stamp = `strata-v8cache ${STRATA_COMMAND_BUNDLE_ID} ${process.version} ${process.arch}`;

/** The packages in the root bundle, by the name of their namespace in its exports (src/root-libraries.cjs). */
const ROOT_LIBRARIES: Record<string, string> = {
  '@strata/images': 'images',
  '@strata/snapshotter': 'snapshotter',
  '@strata/registry': 'registry',
  '@strata/build': 'build',
};

interface Cache {
  command: Buffer | undefined;
  /** The root libraries' bytecode, read when first asked for: most commands never open a root. */
  root: () => Buffer | undefined;
  commands: string[];
}

const NO_CACHE: Cache = { command: undefined, root: () => undefined, commands: [] };

/** Longest first line read: the stamp and the commands the cache has seen, a few hundred bytes in practice. */
const HEADER_MAX = 64 * 1024;

/** `length` bytes of `fd` from `position`, or undefined where the file ends first. */
function readAt(fd: number, position: number, length: number): Buffer | undefined {
  const bytes = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, bytes, done, length - done, position + done);
    if (n === 0) return undefined;
    done += n;
  }
  return bytes;
}

/**
 * The cache, when it was made from these bundles by this Node, and is owned by us or by the bundle's owner.
 * Its root part stays unread (the file open, so a cache renamed over it meanwhile is never mixed in) until a
 * command opens a root: reading and deserialising it is most of a cache's bytes.
 */
function readCache(): Cache {
  let fd: number;
  try {
    fd = openSync(cacheFile, 'r');
  } catch {
    return NO_CACHE;
  }
  let keepOpen = false;
  try {
    const { uid, mode, size } = fstatSync(fd);
    if (![process.geteuid?.(), ownerOf(commandBundle)].includes(uid) || (mode & 0o022) !== 0) return NO_CACHE;
    const head = readAt(fd, 0, Math.min(size, HEADER_MAX));
    const newline = head?.indexOf(10) ?? -1;
    if (head === undefined || newline < 0) return NO_CACHE;
    const [header, commandList = '', commandBytes = ''] = head.toString('utf8', 0, newline).split('\t');
    const start = newline + 1;
    const split = Number(commandBytes);
    if (header !== stamp || commandBytes === '' || !Number.isSafeInteger(split) || split <= 0 || split > size - start) return NO_CACHE;
    const command = readAt(fd, start, split);
    if (command === undefined) return NO_CACHE;
    const rootStart = start + split;
    keepOpen = rootStart < size;
    let root: Buffer | undefined;
    return {
      command,
      root: () => (keepOpen ? (root ??= readAt(fd, rootStart, size - rootStart)) : undefined),
      commands: commandList.split(',').filter(Boolean),
    };
  } finally {
    if (!keepOpen) closeSync(fd);
  }
}

function ownerOf(path: string): number | undefined {
  return statSync(path, { throwIfNoEntry: false })?.uid;
}

/** Writes the cache by rename; a read-only install keeps none. */
function writeCache(command: Buffer, root: Buffer | undefined, commands: string[]): void {
  const temporary = `${cacheFile}.${process.pid}.tmp`;
  try {
    const header = Buffer.from(`${stamp}\t${commands.join(',')}\t${command.length}\n`);
    writeFileSync(temporary, Buffer.concat(root ? [header, command, root] : [header, command]), { mode: 0o644, flag: 'wx' });
    renameSync(temporary, cacheFile);
  } catch {
    try {
      unlinkSync(temporary);
    } catch {
      // Nothing was written.
    }
  }
}

/**
 * Compiles a bundle, from the cache when there is one. Each bundle is CommonJS's module function, wrapper
 * included (scripts/bundle.mjs), in ASCII: read as Latin-1 it becomes V8's source as it is, with no decoding
 * and no copy to wrap it.
 */
function compile(file: string, cachedData: Buffer | undefined): Script {
  return new Script(readFileSync(file, 'latin1'), { filename: file, ...(cachedData ? { cachedData } : {}) });
}

type ModuleFunction = (exports: unknown, require: NodeJS.Require, module: { exports: unknown }, filename: string, dirname: string) => void;

/**
 * Built-in modules the bundles require at load but use on a few paths only: commander requires
 * child_process for subcommands that are programs of their own (strata has none), cli-progress readline
 * for a progress bar, the command tty to refuse a layer on a terminal, the build commands net to check an
 * `--add-host` address, the core streams for compressed blobs and streams a caller hands it (the command
 * prints without them). Loading them (and net, dgram and streams below them) cost every command 6-8 ms.
 * Each is handed out as a stand-in that loads it on first use: the bundles reach a module's members at the
 * call (`(0, mod.fn)()`), never by a copy made at load.
 */
const LOADED_ON_USE = new Set(['node:child_process', 'node:net', 'readline', 'node:readline', 'node:tty', 'node:fs/promises', 'node:stream', 'node:stream/promises']);

function loadedOnUse(load: () => object): object {
  let module: object | undefined;
  const real = () => (module ??= load());
  return new Proxy(
    {},
    {
      get: (_, key) => Reflect.get(real(), key),
      has: (_, key) => Reflect.has(real(), key),
      ownKeys: () => Reflect.ownKeys(real()),
      getOwnPropertyDescriptor: (_, key) => {
        const descriptor = Reflect.getOwnPropertyDescriptor(real(), key);
        return descriptor && { ...descriptor, configurable: true }; // a proxy may not report what its empty target lacks as fixed
      },
    },
  );
}

/** Runs a compiled bundle as a module with `require`, but for the ids `resolve` answers: its exports. */
function run<T>(script: Script, file: string, resolve: (id: string) => unknown): T {
  const nodeRequire = createRequire(file);
  const requireOne = (id: string) => resolve(id) ?? (LOADED_ON_USE.has(id) ? loadedOnUse(() => nodeRequire(id) as object) : nodeRequire(id));
  const require = Object.assign(requireOne, nodeRequire) as NodeJS.Require;
  const module = { exports: {} as T };
  (script.runInThisContext() as ModuleFunction)(module.exports, require, module, file, here);
  return module.exports;
}

/** How far below the command's priority V8's helpers run (see `lowerHelperThreads`). */
const HELPER_NICE = 10;

/**
 * V8's helper threads (its optimising compiler and the collector's concurrent marking), which Node starts
 * before any JavaScript, run below the command's own threads: in a layer job those are the critical path
 * (the hashing thread most of all, which a compile on its core holds up), and a compile can wait. Ten
 * steps of nice (a tenth of a core's share where they contend), not more: under a load that keeps every
 * core busy the compiles still come, where at fifteen a digest of `/usr/share` took a third longer. Threads
 * started later (strata's own, libuv's) are started by this one and keep its priority. A library never
 * does this: the threads are its embedder's.
 */
function lowerHelperThreads(): void {
  let tasks: string[];
  try {
    tasks = readdirSync('/proc/self/task');
  } catch {
    return; // no /proc: they stay as they are
  }
  for (const task of tasks) {
    const tid = Number(task);
    if (tid === process.pid) continue;
    try {
      setPriority(tid, Math.min(19, getPriority(tid) + HELPER_NICE));
    } catch {
      // Gone, or not ours to change: it stays as it is.
    }
  }
}

lowerHelperThreads();
const cache = readCache();
const commandScript = compile(commandBundle, cache.command);
let rootScript: Script | undefined;
let rootExports: Record<string, unknown> | undefined;

/** The root libraries' namespaces, their bundle run the first time the command asks for one. */
function rootLibraries(): Record<string, unknown> {
  if (rootExports === undefined) {
    rootScript = compile(rootBundle, cache.root());
    rootExports = run<Record<string, unknown>>(rootScript, rootBundle, (id) => (id === '@strata/core' ? commandExports.strataCore : undefined));
  }
  return rootExports;
}

const commandExports = run<{ commandName?: () => string | undefined; strataCore?: unknown }>(commandScript, commandBundle, (id) => {
  const name = ROOT_LIBRARIES[id];
  return name === undefined ? undefined : rootLibraries()[name];
});

process.on('exit', () => {
  const command = commandExports.commandName?.();
  if (command === undefined) return; // help, version and usage errors compile little worth keeping
  // A rejected cache (another V8, garbage) holds nothing worth extending.
  const fresh = cache.command === undefined || commandScript.cachedDataRejected === true || rootScript?.cachedDataRejected === true;
  if (!fresh && cache.commands.includes(command)) return;
  // The root bundle's bytecode from this run, or as the cache had it when this command did not load it.
  const root = rootScript ? rootScript.createCachedData() : fresh ? undefined : cache.root();
  writeCache(commandScript.createCachedData(), root, fresh ? [command] : [...cache.commands, command]);
});
