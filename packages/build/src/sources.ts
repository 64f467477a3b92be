/**
 * Where COPY and ADD read from: the build context on the host (with `.dockerignore` applied), or the tree of
 * an earlier stage or an image (`--from`), read through strata's userspace view of its committed snapshot.
 * Both answer the same questions: which paths a source names (wildcards expanded), what each node is, its
 * content and its checksum. Paths are relative to the tree's root, `/`-separated, `''` for the root itself.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsConstants, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import { basename, dirname, join, posix, sep } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { decodeName, DirectoryScan, fsPath, getXattr, InvalidArgumentError, isNotFound, isStrataError, lstatBatch, pathMatcher, ROOTLESS_OWNER_XATTR, STAT, turn, type LstatBatch, type PathMatcher, type WritableLayer } from '@strata/core';
import { checkPatterns, hasExceptions, ignorePatterns, patternFilter, type ContextFilter } from './ignore.js';
import type { FileChecksums } from './checksums.js';

export type SourceType = 'file' | 'directory' | 'symlink' | 'other';

/** One node of a source tree, as COPY needs to know it. */
export interface SourceNode {
  readonly path: string;
  readonly type: SourceType;
  /** Permission bits with setuid, setgid and sticky (0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: { readonly sec: number; readonly nsec: number };
  readonly linkname?: string;
  /** Device nodes and FIFOs: the type bits (`S_IFCHR`, `S_IFBLK`, `S_IFIFO`, or `S_IFSOCK`) and device numbers. */
  readonly special?: { readonly typeBits: number; readonly major: number; readonly minor: number };
  /**
   * A file with more than one name in its tree: the same string for each of its names there, so that one
   * COPY source writes the later names as hardlinks to the first, as BuildKit's copy does.
   */
  readonly linkKey?: string;
  /** Context files: device, inode, size, mtime and ctime, for the checksum records. */
  readonly stamp?: string;
  readonly ctime?: number;
}

/** A tree COPY reads. */
export interface SourceTree {
  /** What messages call it: `the build context`, `stage "builder"`. */
  readonly label: string;
  /** The paths a COPY source names, wildcards expanded as `matchSource` does; `[]` when nothing matches. */
  match(source: string): Promise<string[]>;
  /** The node at `path`, a symlink there followed (within the tree); undefined when absent or excluded. */
  resolve(path: string): Promise<SourceNode | undefined>;
  /** The children of a directory (excluded ones left out), sorted by name. */
  children(dir: string): Promise<SourceNode[]>;
  /** The content of a file. */
  read(node: SourceNode): AsyncIterable<Uint8Array>;
  /** A checksum of a file's content (cached where the tree can tell it has not changed). */
  checksum(node: SourceNode): Promise<string>;
  /**
   * The node's `user.rootlesscontainers` xattr, where a rootless unpack keeps an owner it could not give;
   * undefined where it has none. A tree that never holds one (downloads, here-documents) has no such method.
   */
  ownerRecord?(node: SourceNode): Promise<Uint8Array | undefined>;
}

/**
 * The text of the file at `path` in `tree`, a symlink there followed only within it (SourceError where it
 * leads out); undefined where there is none, or it is no file.
 */
export async function readTreeFile(tree: SourceTree, path: string): Promise<string | undefined> {
  const node = await tree.resolve(path);
  if (node?.type !== 'file') return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of tree.read(node)) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

/** The text of the first of `paths` that is a file in `tree` (see `readTreeFile`), or undefined. */
export async function readFirstTreeFile(tree: SourceTree, paths: readonly string[]): Promise<string | undefined> {
  for (const path of paths) {
    const text = await readTreeFile(tree, path);
    if (text !== undefined) return text;
  }
  return undefined;
}

/** An error about a COPY source, raised with the step's line by the caller. */
export class SourceError extends Error {}

/**
 * Whether a source path has wildcards: `*`, `?` or `[` not escaped by a `\`, as BuildKit's copy tells
 * (fsutil's containsWildcards); a path with none is taken as it is, backslashes and all.
 */
export function hasWildcards(source: string): boolean {
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '*' || c === '?' || c === '[') return true;
  }
  return false;
}

/** A source path cleaned: leading `/` and `./` dropped; refused when it climbs out of the tree. */
export function cleanSource(source: string, label: string): string {
  const cleaned = posix.normalize(`/${source}`).slice(1).replace(/\/$/, '');
  const raw = posix.normalize(source.replace(/^\/+/, ''));
  if (raw === '..' || raw.startsWith('../')) throw new SourceError(`${JSON.stringify(source)} is outside ${label}`);
  return cleaned === '.' ? '' : cleaned;
}

/**
 * The paths `source` names in `tree`, as BuildKit's copy finds them (fsutil's `ResolveWildcards`): without
 * wildcards, the path if it is there. With them, the segments before the first with a wildcard name a
 * directory, symlinks followed within the tree; below it, the rest is matched with Go's `filepath.Match`
 * (`*` never crosses a `/`, so `**` is `*`; no braces; `\` escapes) against each path of a walk that does
 * not follow symlinks and does not enter a directory that matched, each level in name order.
 */
export async function matchSource(tree: SourceTree, source: string): Promise<string[]> {
  const path = cleanSource(source, tree.label);
  if (!hasWildcards(path)) return (await tree.resolve(path)) ? [path] : [];
  const segments = path.split('/');
  const first = segments.findIndex(hasWildcards);
  const base = await tree.resolve(segments.slice(0, first).join('/'));
  if (base?.type !== 'directory') return [];
  const rest = segments.slice(first);
  const matches = sourceMatcher(rest.join('/'));
  const levels = matches.classTakesSlash ? undefined : levelMatchers(rest);
  if (levels === undefined) {
    // A class may take a `/` (`[^a]`), so a path deeper than the pattern can match: walk it all, as BuildKit does.
    const skip = base.path === '' ? 0 : base.path.length + 1;
    const found: string[] = [];
    const walk = async (dir: SourceNode): Promise<void> => {
      for (const child of await tree.children(dir.path)) {
        if (matches(child.path.slice(skip))) found.push(child.path);
        else if (child.type === 'directory') await walk(child);
      }
    };
    await walk(base);
    return found;
  }
  // Otherwise a `/` of a path can only meet a `/` of the pattern: matching a level at a time is the same, and reads
  // only the directories on the way (`requirements.tx[t]` reads one).
  let current = [base];
  for (const matchesName of levels) {
    const next: SourceNode[] = [];
    for (const dir of current) {
      if (dir.type !== 'directory') continue;
      for (const child of await tree.children(dir.path)) if (matchesName(posix.basename(child.path))) next.push(child);
    }
    current = next;
  }
  return current.map((node) => node.path);
}

const CHUNK = 1024 * 1024;

/**
 * A host file's bytes in chunks of at most 1 MiB, read into a buffer sized to the file (so small files
 * cost small buffers), or into `buffer` when given: then each chunk is valid only until the next is asked
 * for (for consumers that are done with a chunk before they ask again, like a hash).
 */
export async function* readChunks(path: string, size: number, buffer?: Buffer): AsyncGenerator<Uint8Array> {
  // Read on this thread: a file of the page cache takes microseconds, where each call on the thread pool
  // cost a wake-up of 50-100 us, four per file (open, read, the read at its end, close): 18 s of a COPY of
  // /usr/share's 54,000 files spent waiting. Non-blocking, so a FIFO put in a file's place cannot hold the
  // thread; it is refused, as is anything else that is not a regular file any more.
  const fd = openSync(fsPath(path), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw new SourceError(`${JSON.stringify(path)} is no longer a regular file`);
    for (;;) {
      const into = buffer ?? Buffer.allocUnsafe(Math.min(Math.max(size, 1), CHUNK));
      const bytesRead = readSync(fd, into, 0, into.length, null);
      if (bytesRead === 0) return;
      yield into.subarray(0, bytesRead);
      const wait = turn();
      if (wait) await wait;
    }
  } finally {
    closeSync(fd);
  }
}

/** The checksum of bytes as COPY keys use it. */
export async function hashStream(chunks: AsyncIterable<Uint8Array>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

/** The context directory holding context path `path` (`''` for the context's root). */
function contextDirOf(path: string): string {
  const dir = posix.dirname(path);
  return dir === '.' ? '' : dir;
}

function timeOf(ns: bigint): { sec: number; nsec: number } {
  const sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  let s = sec;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    s -= 1n;
  }
  return { sec: Number(s), nsec: Number(nsec) };
}

function typeOfMode(mode: number): SourceType {
  const t = mode & 0o170000;
  return t === 0o100000 ? 'file' : t === 0o040000 ? 'directory' : t === 0o120000 ? 'symlink' : 'other';
}

/** A directory's tree as COPY reads it, filtered by the first of `ignoreFiles` there is. */
export function contextTree(dir: string, ignoreFiles: readonly string[], checksums: FileChecksums, label?: string): ContextTree {
  const patterns = readIgnorePatterns(ignoreFiles);
  return new ContextTree(dir, patternFilter(patterns), hasExceptions(patterns), checksums, label);
}

/**
 * The patterns of the first of `ignoreFiles` that exists (none when none does); INVALID_ARGUMENT naming the
 * file for a pattern Docker's matcher refuses.
 */
export function readIgnorePatterns(ignoreFiles: readonly string[]): string[] {
  for (const file of ignoreFiles) {
    let text: string;
    try {
      text = decodeName(readFileSync(file)); // bytes that are not UTF-8 as the names they match
    } catch (error) {
      if (isNotFound(error)) continue;
      throw error;
    }
    const patterns = ignorePatterns(text);
    try {
      checkPatterns(patterns);
    } catch (error) {
      throw new InvalidArgumentError(`${basename(file)}: ${(error as Error).message}`, { cause: error });
    }
    return patterns;
  }
  return [];
}

/** The build context: a host directory, `.dockerignore` applied, symlinks never followed out of it. */
export class ContextTree implements SourceTree {
  readonly label: string;
  readonly #root: string;
  readonly #ignored: ContextFilter;
  /** Whether `.dockerignore` has exceptions (`!`), under which an excluded directory may hold included files. */
  readonly #exceptions: boolean;
  readonly #checksums: FileChecksums;

  /** `label`: what messages call it (the build context by default; a named context, a checkout). */
  constructor(root: string, ignored: ContextFilter, exceptions: boolean, checksums: FileChecksums, label = 'the build context') {
    this.label = label;
    this.#root = root;
    this.#ignored = ignored;
    this.#exceptions = exceptions;
    this.#checksums = checksums;
  }

  #host(path: string): string {
    return path === '' ? this.#root : join(this.#root, path);
  }

  match(source: string): Promise<string[]> {
    return matchSource(this, source);
  }

  #excluded(path: string): boolean {
    return path !== '' && this.#ignored(path);
  }

  /** The node of entry `i` of `batch`, listed in context directory `dir`; undefined when it vanished since. */
  #nodeOf(dir: string, batch: LstatBatch, i: number): SourceNode | undefined {
    const f = batch.stats;
    const o = i * STAT.fields;
    const mode = f[o + STAT.mode]!;
    if (mode === 0) return undefined;
    const type = typeOfMode(mode);
    const name = batch.names[i]!;
    const size = type === 'file' ? f[o + STAT.size]! : 0;
    return {
      path: dir === '' ? name : `${dir}/${name}`,
      type,
      mode: mode & 0o7777,
      uid: f[o + STAT.uid]!,
      gid: f[o + STAT.gid]!,
      size,
      mtime: { sec: f[o + STAT.mtimeSec]!, nsec: f[o + STAT.mtimeNsec]! },
      ...(type === 'symlink' ? { linkname: batch.links[i]! } : {}),
      ...(type === 'other' ? { special: { typeBits: mode & 0o170000, major: f[o + STAT.rdevMajor]!, minor: f[o + STAT.rdevMinor]! } } : {}),
      ...(type === 'file' && f[o + STAT.nlink]! > 1 ? { linkKey: `${f[o + STAT.dev]}:${f[o + STAT.inoHigh]}:${f[o + STAT.inoLow]}` } : {}),
      // What tells a file unchanged since its checksum was taken (see FileChecksums). Joined, not a template:
      // a template's result is a rope of a dozen pieces that lives as long as the node (0.7 KiB a file).
      stamp: [f[o + STAT.dev], f[o + STAT.inoHigh], f[o + STAT.inoLow], size, `${f[o + STAT.mtimeSec]}.${f[o + STAT.mtimeNsec]}`, `${f[o + STAT.ctimeSec]}.${f[o + STAT.ctimeNsec]}`].join(':'),
      ctime: f[o + STAT.ctimeSec]! + f[o + STAT.ctimeNsec]! / 1e9,
    };
  }

  async #node(path: string, host: string): Promise<SourceNode | undefined> {
    if (path === '') {
      const st = await lstat(fsPath(host), { bigint: true });
      return { path: '', type: typeOfMode(Number(st.mode)), mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid), size: 0, mtime: timeOf(st.mtimeNs) };
    }
    return this.#nodeOf(contextDirOf(path), lstatBatch(dirname(host), [basename(host)]), 0);
  }

  async resolve(path: string): Promise<SourceNode | undefined> {
    if (this.#excluded(path)) return undefined;
    const host = this.#host(path);
    let real: string;
    try {
      real = decodeName(await realpath(fsPath(host), { encoding: 'buffer' }));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw error;
    }
    const root = decodeName(await realpath(fsPath(this.#root), { encoding: 'buffer' }));
    if (real !== root && !real.startsWith(root + sep)) throw new SourceError(`${JSON.stringify(path)} leads out of ${this.label} (a symlink to ${real})`);
    const inside = real === root ? '' : real.slice(root.length + 1).split(sep).join('/');
    if (this.#excluded(inside)) return undefined;
    return this.#node(inside, real);
  }

  /**
   * In byte order of their names, as BuildKit walks a context. A large directory is lstat'ed a chunk of
   * entries per turn of the event loop (one call for all of a directory of 18,000 held it 100-180 ms).
   */
  async children(dir: string): Promise<SourceNode[]> {
    const scan = this.#scan(dir);
    const out: SourceNode[] = [];
    for (let k = 0; k < scan.names.length; k++) {
      const batch = scan.seek(k);
      if (scan.index === 0 && k > 0) await nextTurn();
      const node = this.#nodeOf(dir, batch, scan.index);
      // An excluded directory may hold an exception (`!`): kept, with what it holds, when there are any.
      if (node === undefined || (this.#excluded(node.path) && !(this.#exceptions && node.type === 'directory'))) continue;
      out.push(node);
    }
    return out;
  }

  /** A listing of context directory `dir` (names that are not UTF-8 with strata's escapes). */
  #scan(dir: string): DirectoryScan {
    return new DirectoryScan(this.#host(dir));
  }

  read(node: SourceNode): AsyncIterable<Uint8Array> {
    return readChunks(this.#host(node.path), node.size);
  }

  checksum(node: SourceNode): Promise<string> {
    return this.#checksums.of(this.#host(node.path), node);
  }

  async ownerRecord(node: SourceNode): Promise<Uint8Array | undefined> {
    return getXattr(this.#host(node.path), ROOTLESS_OWNER_XATTR);
  }
}

/**
 * A committed snapshot's tree (an earlier stage, or an image given to `--from`), read through strata's
 * userspace view: paths and symlinks resolve inside it, never on the host. Checksums are remembered per
 * snapshot and path (a committed snapshot never changes).
 */
export class SnapshotTree implements SourceTree {
  readonly label: string;
  readonly #layer: WritableLayer;
  readonly #memo: (path: string, compute: () => Promise<string>) => Promise<string>;

  constructor(label: string, layer: WritableLayer, memo: (path: string, compute: () => Promise<string>) => Promise<string>) {
    this.label = label;
    this.#layer = layer;
    this.#memo = memo;
  }

  async #node(path: string): Promise<SourceNode | undefined> {
    let st;
    try {
      st = await this.#layer.lstat(`/${path}`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw error;
    }
    const type = typeOfMode(st.mode);
    return {
      path,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: type === 'file' ? st.size : 0,
      mtime: timeOf(st.mtimeNs),
      ...(type === 'symlink' ? { linkname: await this.#layer.readlink(`/${path}`) } : {}),
      ...(type === 'other' ? { special: { typeBits: st.mode & 0o170000, major: st.rdev >> 8, minor: st.rdev & 0xff } } : {}),
      ...(type === 'file' && st.nlink > 1 ? this.#linkKey(path) : {}),
    };
  }

  /** A hardlinked file's key: its set's identity in the layer that shows it (none where the view cannot tell). */
  #linkKey(path: string): { linkKey?: string } {
    const view = this.#layer.view;
    const shown = view.lookup(path);
    const identity = shown?.type === 'file' ? view.stat(path)?.identity : undefined;
    return identity === undefined ? {} : { linkKey: `${shown!.layer}/${identity}` };
  }

  match(source: string): Promise<string[]> {
    return matchSource(this, source);
  }

  async resolve(path: string): Promise<SourceNode | undefined> {
    let current = path;
    for (let hops = 0; hops < 40; hops++) {
      const node = await this.#node(current);
      if (node?.type !== 'symlink') return node;
      const target = node.linkname!;
      current = posix.normalize(posix.join('/', target.startsWith('/') ? '' : posix.dirname(`/${current}`), target)).slice(1);
    }
    throw new SourceError(`${JSON.stringify(path)} in ${this.label}: too many levels of symbolic links`);
  }

  async children(dir: string): Promise<SourceNode[]> {
    const out: SourceNode[] = [];
    for (const name of (await this.#layer.readdir(`/${dir}`)).sort()) {
      const node = await this.#node(dir === '' ? name : `${dir}/${name}`);
      if (node) out.push(node);
    }
    return out;
  }

  async *read(node: SourceNode): AsyncIterable<Uint8Array> {
    const handle = await this.#layer.open(`/${node.path}`, 'r');
    try {
      for (;;) {
        const buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(node.size, 1)));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        yield buffer.subarray(0, bytesRead);
      }
    } finally {
      await handle.close();
    }
  }

  checksum(node: SourceNode): Promise<string> {
    return this.#memo(node.path, () => hashStream(this.read(node)));
  }

  async ownerRecord(node: SourceNode): Promise<Uint8Array | undefined> {
    // Listed first: a missing xattr is an error (ENODATA) to `getxattr`, and most nodes have none.
    const path = `/${node.path}`;
    return (await this.#layer.listxattr(path)).includes(ROOTLESS_OWNER_XATTR) ? this.#layer.getxattr(path, ROOTLESS_OWNER_XATTR) : undefined;
  }
}

/** Each segment's matcher; undefined where a class holds a `/` (`[^/]`), so that a segment alone is no pattern. */
function levelMatchers(segments: readonly string[]): PathMatcher[] | undefined {
  try {
    return segments.map((segment) => pathMatcher(segment));
  } catch (error) {
    if (isStrataError(error) && error.code === 'INVALID_ARGUMENT') return undefined;
    throw error;
  }
}

/** A source pattern as Go's `filepath.Match` reads it; a malformed one is the source's error. */
function sourceMatcher(pattern: string): PathMatcher {
  try {
    return pathMatcher(pattern);
  } catch (error) {
    throw isStrataError(error) && error.code === 'INVALID_ARGUMENT' ? new SourceError(error.message) : error;
  }
}
