/**
 * COPY and ADD: which nodes a step selects (its checksum, for the cache key), and writing them into the
 * step's container through strata's writable layer, which resolves every destination inside the container
 * (a symlink in the image never sends a file to the host) and copies parent directories up as overlayfs does.
 *
 * Docker's rules: a directory source copies its contents; a file source lands at `dest/<name>` when `dest`
 * ends with `/` or is a directory, else at `dest`; several files need a `dest` that is a directory (BuildKit
 * would let the last replace the others). Context files become root's (or `--chown`'s); files from a stage
 * or image keep their owners unless `--chown`; `--chmod` changes the mode of everything copied (chmod.ts);
 * modes and mtimes are kept otherwise. As in BuildKit, a wildcard that matches nothing adds nothing (a named
 * path that is absent is an error); `--exclude` leaves out what its patterns match below each source (never
 * the source itself); `--parents` keeps each source's path from the tree's root, or from a `/./` in it.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { createGunzip } from 'node:zlib';
import { containerOwner, decodeBlob, detectCompression, eachLimited, encodeName, encodeRootlessOwner, ROOTLESS_OWNER_XATTR, toHostId, UnsupportedError, type IdMap, type WritableLayer } from '@strata/core';
import type { ModeChange } from './chmod.js';
import { externalFormat, inflate } from './external-decompress.js';
import { hasExceptions, patternFilter, type ContextFilter } from './ignore.js';
import { cleanSource, hasWildcards, SourceError, type SourceNode, type SourceTree } from './sources.js';

/** One selected node and where it goes, relative to its top-level source. */
interface Selected {
  readonly node: SourceNode;
  /** Path below the top-level source (`''` for the top itself). */
  readonly rel: string;
}

/** One top-level match of a COPY source, with everything below it. */
interface Top {
  /** The match's own name (before following a symlink): a file source lands under it. */
  readonly name: string;
  readonly node: SourceNode;
  readonly below: Selected[];
  /** The tree it was found in (the step's, or the files the step made: downloads, heredocs). */
  readonly tree: SourceTree;
  /** Whether ADD may extract it (a local archive, or a download under `--unpack`; never a heredoc's file). */
  readonly extractable: boolean;
}

/** A source found elsewhere than in the step's tree (a download, a heredoc's file): a file, taken as it is. */
export interface PickedSource {
  readonly tree: SourceTree;
  readonly node: SourceNode;
  readonly name: string;
  /** Whether ADD may extract it (a download under `--unpack`). */
  readonly extractable?: boolean;
}

/** How a COPY's flags shape its selection. */
export interface SelectOptions {
  /** `--exclude`: patterns (`.dockerignore`'s rules) for paths below each source directory. */
  readonly exclude?: readonly string[];
  /** `--parents`: each source keeps its path from the tree's root, or from a `/./` in it. */
  readonly parents?: boolean;
}

/** What a walk keeps, by path below the directory walked. */
interface WalkFilter {
  readonly excluded?: ContextFilter;
  /** The exclusions have exceptions (`!`): an excluded directory is searched for what they keep. */
  readonly exceptions?: boolean;
  /** `--parents`' pattern: what it matches (and all below that) is kept... */
  readonly included?: ContextFilter;
  /** ...and a directory it does not match is searched only if a match can lie below it. */
  readonly mayHold?: (rel: string) => boolean;
}

export interface CopyOptions {
  /** Owner of everything copied (`--chown`, resolved); default root for the context, kept for `--from`. */
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly keepOwners: boolean;
  /** `--chmod`: each node's mode from its own. */
  readonly chmod?: ModeChange;
  /**
   * The mode of the directories made for the destination: an octal `--chmod`'s permission bits, as
   * BuildKit's copy makes them (a symbolic one, or none, leaves them 0755).
   */
  readonly madeDirMode?: number;
  /**
   * Set in a rootless build: owners are the containers' (and a kept owner is read through it, owner record
   * included); the host gets what the map says, and an owner it lacks is kept in an owner record.
   */
  readonly idMap?: IdMap;
  /**
   * Directories of the source that only stand for a path (an archive's parents no entry named), by path
   * below the source: where the image has a symlink to a directory there, what is below goes through it, as
   * an extraction into the image would take it (BuildKit's testDockerfileAddArchiveThroughAbsoluteSymlink).
   */
  readonly impliedDirectories?: ReadonlySet<string>;
}

/** A file owner. */
type Owner = { readonly uid: number; readonly gid: number };

/** Sets owners in the step's container, through the build's id map when it has one. */
type Chown = (target: string, owner: Owner) => Promise<void>;

/** UNSUPPORTED for an owner a rootless build has no way to give. */
function ownerOutsideMap(path: string, uid: number, gid: number, tense: 'would belong' | 'belongs', why = 'its one id is its caller\'s, which its containers see as root'): UnsupportedError {
  return new UnsupportedError(`${JSON.stringify(path)} ${tense} to ${uid}:${gid}, which a build without root cannot give (${why})`, { path });
}

/**
 * Sets owners in a step's container: as they are, or through a rootless build's id map. An id the map lacks
 * is the caller's on the host and kept in the file's owner record (`user.rootlesscontainers`), as a rootless
 * unpack keeps the image's owners; the layer's writer gives it back. A symlink or fifo holds no xattr of
 * that namespace, so such an owner of one is UNSUPPORTED.
 */
export function chownThrough(layer: WritableLayer, map: IdMap | undefined): Chown {
  if (map === undefined) return (target, owner) => layer.lchown(target, owner.uid, owner.gid);
  const rootUid = toHostId(map.uids, 0);
  const rootGid = toHostId(map.gids, 0);
  return async (target, owner) => {
    const uid = toHostId(map.uids, owner.uid);
    const gid = toHostId(map.gids, owner.gid);
    const hostUid = uid ?? rootUid;
    const hostGid = gid ?? rootGid;
    if (hostUid === undefined || hostGid === undefined) throw ownerOutsideMap(target, owner.uid, owner.gid, 'would belong');
    await layer.lchown(target, hostUid, hostGid);
    const record = encodeRootlessOwner(uid === undefined ? owner.uid : 0, gid === undefined ? owner.gid : 0, target);
    if (record === undefined) {
      // An owner the map gives: a record an unpack or an earlier step left would say otherwise.
      if ((await layer.listxattr(target)).includes(ROOTLESS_OWNER_XATTR)) await layer.removexattr(target, ROOTLESS_OWNER_XATTR);
      return;
    }
    try {
      await layer.setxattr(target, ROOTLESS_OWNER_XATTR, record);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
      throw ownerOutsideMap(target, owner.uid, owner.gid, 'would belong', 'only files and directories hold an owner record');
    }
  };
}

/**
 * A kept owner as the containers see it: the host's own without a map; with one, through it and the node's
 * owner record. Undefined for a host owner the map lacks.
 */
async function keptOwner(tree: SourceTree, node: SourceNode, map: IdMap | undefined): Promise<Owner | undefined> {
  if (map === undefined) return { uid: node.uid, gid: node.gid };
  return containerOwner(node.uid, node.gid, await tree.ownerRecord?.(node), map, node.path);
}

/** `keptOwner`, UNSUPPORTED where there is none. */
async function sourceOwner(tree: SourceTree, node: SourceNode, map: IdMap | undefined): Promise<Owner> {
  const owner = await keptOwner(tree, node, map);
  if (owner === undefined) throw ownerOutsideMap(node.path, node.uid, node.gid, 'belongs');
  return owner;
}

/** A COPY's selection: made once, checksummed for the key, then written if the key misses. */
export class CopySelection {
  readonly #tops: Top[];
  readonly dest: string;
  readonly #destIsDir: boolean;
  #archives = new Set<SourceNode>();

  private constructor(tops: Top[], dest: string, destIsDir: boolean) {
    this.#tops = tops;
    this.dest = dest;
    this.#destIsDir = destIsDir;
  }

  /** Bytes of the files selected. */
  get bytes(): number {
    let n = 0;
    for (const top of this.#tops) for (const node of [top.node, ...top.below.map((s) => s.node)]) n += node.size;
    return n;
  }

  /** The top-level file sources that are tar archives (what ADD extracts instead of copying). */
  async archives(): Promise<SourceNode[]> {
    const out: SourceNode[] = [];
    for (const top of this.#tops) if (top.extractable && top.node.type === 'file' && (await isTarArchive(top.tree, top.node))) out.push(top.node);
    this.#archives = new Set(out);
    return out;
  }

  /** Files and directories selected (for progress and limits). */
  get count(): number {
    return this.#tops.reduce((n, t) => n + 1 + t.below.length, 0);
  }

  /**
   * Selects what `sources` name in `tree` (or, picked, elsewhere) for `dest` (absolute in the container; a
   * trailing `/` kept). Throws SourceError: a named source that is absent, one that leads out of the tree,
   * or more entries or bytes than `limits` (several files for a `dest` that is no directory fail when
   * written).
   */
  static async select(tree: SourceTree, sources: readonly (string | PickedSource)[], dest: string, limits: { maxEntries: number; maxBytes?: number }, options: SelectOptions = {}): Promise<CopySelection> {
    const tops: Top[] = [];
    const counted = () => tops.reduce((n, t) => n + t.below.length, 0);
    const exclude = options.exclude ?? [];
    const filter: WalkFilter | undefined = exclude.length > 0 ? { excluded: excludeFilter(exclude), exceptions: hasExceptions(exclude) } : undefined;
    for (const source of sources) {
      if (typeof source !== 'string') {
        tops.push({ name: source.name, node: source.node, below: [], tree: source.tree, extractable: source.extractable ?? false });
        continue;
      }
      if (options.parents) {
        tops.push(...(await parentsTops(tree, source, filter, limits, counted)));
        continue;
      }
      const matches = await tree.match(source);
      const cleaned = cleanSource(source, tree.label);
      if (matches.length === 0 && !hasWildcards(cleaned)) throw new SourceError(`${JSON.stringify(source)} is not in ${tree.label}${tree.label === 'the build context' ? ' (or .dockerignore excludes it)' : ''}`);
      for (const match of matches) {
        const node = await tree.resolve(match);
        if (node === undefined) throw new SourceError(`${JSON.stringify(match)} is not in ${tree.label}`);
        const below: Selected[] = [];
        if (node.type === 'directory') await walk(tree, node.path, '', below, limits, counted, filter);
        tops.push({ name: posix.basename(match) || '.', node, below, tree, extractable: true });
      }
    }
    const selection = new CopySelection(tops, dest, dest.endsWith('/'));
    if (limits.maxBytes !== undefined && selection.bytes > limits.maxBytes) throw new SourceError(`selects ${selection.bytes} bytes, more than the build's limit of ${limits.maxBytes}`);
    return selection;
  }

  /**
   * The selection's checksum: every node's path below its source, type, mode, link target and content
   * checksum (owners too when they are kept), never its times. `concurrency` files are read at once.
   */
  async checksum(options: CopyOptions, concurrency = 16): Promise<string> {
    const hash = createHash('sha256');
    const files: { node: SourceNode; tree: SourceTree }[] = [];
    for (const top of this.#tops) for (const node of [top.node, ...top.below.map((s) => s.node)]) if (node.type === 'file') files.push({ node, tree: top.tree });
    const sums = new Map<SourceNode, string>();
    await eachLimited(files, concurrency, async ({ node, tree }) => {
      sums.set(node, await tree.checksum(node));
    });
    for (const top of this.#tops) {
      hash.update(encodeName(`top ${top.name} ${top.node.type}\n`)); // a name's bytes, escapes included (UTF-8 otherwise, as before)
      // A later name of a file `write` links to an earlier one in this source counts as that link: a context
      // changed only in which names share a file makes a different layer.
      const firstNames = new Map<string, string>();
      for (const { node, rel } of [{ node: top.node, rel: '' }, ...top.below]) {
        // A host owner the map lacks fails the write, not the key: it counts as it is.
        const kept = options.keepOwners && options.owner === undefined ? ((await keptOwner(top.tree, node, options.idMap)) ?? node) : undefined;
        const owner = kept ? ` ${kept.uid}:${kept.gid}` : '';
        const special = node.special ? ` ${node.special.typeBits.toString(8)}:${node.special.major}:${node.special.minor}` : '';
        const first = node.linkKey === undefined ? undefined : firstNames.get(node.linkKey);
        if (node.linkKey !== undefined && first === undefined) firstNames.set(node.linkKey, rel);
        const link = first === undefined ? '' : ` linked to ${JSON.stringify(first)}`;
        hash.update(`${JSON.stringify(rel)} ${node.type}${special} ${node.mode.toString(8)}${owner} ${JSON.stringify(node.linkname ?? '')} ${sums.get(node) ?? ''}${link}\n`);
      }
    }
    return hash.digest('hex');
  }

  /**
   * Writes the selection into `layer` (the step's container); the archives `archives()` found go to
   * `extract` with the tree they are in and their destination directory instead. Throws fs-shaped errors from
   * the layer, and SourceError for a second file bound for a `dest` that is no directory.
   */
  async write(layer: WritableLayer, options: CopyOptions, extract?: (tree: SourceTree, node: SourceNode, dir: string) => Promise<void>): Promise<void> {
    const dirTimes: { path: string; node: SourceNode }[] = [];
    const owner = async (tree: SourceTree, node: SourceNode) => options.owner ?? (options.keepOwners ? sourceOwner(tree, node, options.idMap) : { uid: 0, gid: 0 });
    const chown = chownThrough(layer, options.idMap);
    // What is known to be absent is not looked up first (a lookup that fails costs an error and its stack:
    // 0.25 s of a 9 s COPY of /usr/share): a path in a directory this call made, unless this call wrote it
    // (two sources may put the same name in one directory).
    const madeDirs = new Set<string>();
    const written = new Set<string>();
    const knownAbsent = (target: string) => madeDirs.has(posix.dirname(target)) && !written.has(target);
    const writeNode = async (tree: SourceTree, node: SourceNode, target: string) => {
      if (await this.#writeNode(layer, tree, chown, node, target, await owner(tree, node), options.chmod, knownAbsent(target))) madeDirs.add(target);
      written.add(target);
    };
    // An archive's destination stays 0755 whatever --chmod says, as BuildKit's unpack makes it.
    const created = async (dir: string, forArchive = false) => {
      const mode = forArchive ? undefined : options.madeDirMode;
      const made = await layer.mkdir(dir, { recursive: true, mode: 0o755 });
      if (made === undefined) return;
      for (let p = dir; p.length >= made.length; p = posix.dirname(p)) {
        madeDirs.add(p);
        // The directories COPY makes for its destination belong to --chown's owner, as in BuildKit.
        if (options.owner !== undefined) await chown(p, options.owner);
        if (mode !== undefined) await layer.chmod(p, mode);
      }
    };
    let filesAtDest = 0;
    for (const top of this.#tops) {
      // Within one source, the names of one file are written once and linked (BuildKit's copier does so
      // per source, and an archive's extraction keeps its hardlinks).
      const linked = new Map<string, string>();
      const writeLinked = async (node: SourceNode, target: string) => {
        const first = node.linkKey === undefined ? undefined : linked.get(node.linkKey);
        if (first === undefined) {
          await writeNode(top.tree, node, target);
          if (node.linkKey !== undefined) linked.set(node.linkKey, target);
          return;
        }
        if (!knownAbsent(target)) await layer.rm(target, { recursive: true, force: true });
        await layer.link(first, target);
        written.add(target);
      };
      let base: string;
      if (top.node.type === 'directory') {
        base = this.dest.replace(/\/+$/, '') || '/';
        await created(base);
      } else if (extract && top.extractable && this.#archives.has(top.node)) {
        base = this.dest.replace(/\/+$/, '') || '/';
        await created(base, true);
        await extract(top.tree, top.node, base);
        madeDirs.clear(); // what the archive put there is not in `written`
        continue;
      } else {
        const into = this.#destIsDir || (await isDirectory(layer, this.dest));
        // A second file for a destination that is no directory would replace the first (as BuildKit lets it).
        if (!into && ++filesAtDest > 1) throw new SourceError('with more than one source file the destination must be a directory (or end with a /)');
        base = into ? posix.join(this.dest, top.name) : this.dest.replace(/\/+$/, '');
        await created(posix.dirname(base));
        await writeNode(top.tree, top.node, base);
      }
      for (const { node, rel } of top.below) {
        const target = posix.join(base, rel);
        if (node.type === 'directory' && options.impliedDirectories?.has(rel) && (await isSymlinkToDirectory(layer, target))) continue;
        await writeLinked(node, target);
        if (node.type === 'directory') dirTimes.push({ path: target, node });
      }
    }
    // Directory times last: writing their entries moved them.
    for (const { path, node } of dirTimes.reverse()) await layer.lutimes(path, seconds(node.mtime), seconds(node.mtime));
  }

  /** One node at `target` (`absent`: nothing can be there yet); true when it made a directory there. */
  async #writeNode(layer: WritableLayer, tree: SourceTree, chown: Chown, node: SourceNode, target: string, owner: Owner, chmod: ModeChange | undefined, absent: boolean): Promise<boolean> {
    const mode = chmod ? chmod(node.mode, node.type === 'directory') : node.mode;
    const existing = absent ? undefined : await lstatOrUndefined(layer, target);
    if (node.type === 'directory') {
      if (existing?.isDirectory()) {
        await chown(target, owner);
        await layer.chmod(target, mode);
        return false;
      }
      if (existing) await layer.rm(target, { recursive: true, force: true });
      await layer.mkdir(target, { mode: 0o700 });
      await chown(target, owner);
      await layer.chmod(target, mode);
      return true;
    }
    if (existing) await layer.rm(target, { recursive: true, force: true });
    if (node.type === 'symlink') {
      await layer.symlink(node.linkname!, target);
    } else if (node.type === 'file') {
      const handle = await layer.open(target, 'wx', 0o600);
      try {
        let position = 0;
        for await (const chunk of tree.read(node)) {
          await handle.write(chunk, position);
          position += chunk.length;
        }
      } finally {
        await handle.close();
      }
      // Owner first: chown clears setuid and setgid, which the mode then sets.
      await chown(target, owner);
      await layer.chmod(target, mode);
    } else if (node.special && node.special.typeBits !== 0o140000) {
      await layer.mknod(target, node.special.typeBits | (mode & 0o7777), node.special.major, node.special.minor);
      await chown(target, owner);
      await layer.chmod(target, mode);
    } else {
      // A socket: no layer can hold one (tar has no form for it), so it becomes an empty file, as BuildKit's
      // context transfer makes it (its testCopySocket).
      await (await layer.open(target, 'wx', 0o600)).close();
      await chown(target, owner);
      await layer.chmod(target, mode & 0o7777);
    }
    if (node.type === 'symlink') await chown(target, owner);
    await layer.lutimes(target, seconds(node.mtime), seconds(node.mtime));
    return false;
  }
}

/** `--exclude`'s filter; a pattern Docker's matcher refuses is the step's error. */
function excludeFilter(patterns: readonly string[]): ContextFilter {
  try {
    return patternFilter(patterns);
  } catch (error) {
    throw new SourceError(`--exclude: ${(error as Error).message}`);
  }
}

/** The first `size` bytes of `chunks` (fewer if they end first), reading no further than it takes. */
async function startOf(chunks: AsyncIterable<Uint8Array>, size: number): Promise<Buffer> {
  let start = Buffer.alloc(0);
  for await (const chunk of chunks) {
    start = Buffer.concat([start, chunk]);
    if (start.length >= size) break;
  }
  return start;
}

/** A file's first `size` bytes (fewer if it is shorter): what its format is told by. */
export function headOf(tree: SourceTree, node: SourceNode, size: number): Promise<Buffer> {
  return startOf(tree.read(node), size);
}

/** Whether `head` opens a zstd stream (a frame, or a skippable one). */
function isZstd(head: Buffer): boolean {
  try {
    return detectCompression(head) === 'zstd';
  } catch {
    return false; // the start of another compression's magic, not all of it: not zstd either
  }
}

/** Whether a file is a tar archive, plain or compressed with gzip, zstd, bzip2 or xz (ADD's test). */
async function isTarArchive(tree: SourceTree, node: SourceNode): Promise<boolean> {
  const head = await headOf(tree, node, 64 * 1024);
  const ustar = (b: Buffer) => b.length >= 263 && b.subarray(257, 262).toString('latin1') === 'ustar';
  if (head[0] === 0x1f && head[1] === 0x8b) {
    try {
      const inflated = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const gunzip = createGunzip();
        const done = () => resolve(Buffer.concat(chunks));
        gunzip.on('data', (c: Buffer) => {
          chunks.push(c);
          size += c.length;
          if (size >= 512) {
            gunzip.destroy(); // a tar header is all it takes; never inflate more (a bomb stays small)
            done();
          }
        });
        gunzip.on('error', (e) => (chunks.length > 0 ? done() : reject(e)));
        gunzip.on('end', done);
        gunzip.end(head);
      });
      return ustar(inflated);
    } catch {
      return false;
    }
  }
  const format = externalFormat(head);
  if (format === undefined && isZstd(head)) {
    // As BuildKit: an archive only if a tar header comes out (a zstd file of anything else is copied as is).
    // A header is all it takes: the rest is never inflated.
    try {
      return ustar(await startOf((await decodeBlob(tree.read(node), { hash: false })).stream, 512));
    } catch {
      return false;
    }
  }
  if (format !== undefined) {
    // Inflated by the system's tool until a tar header shows (a bzip2 block may need all of its input first).
    try {
      return ustar(await startOf(inflate(format, tree.read(node)), 512));
    } catch (error) {
      if (error instanceof UnsupportedError) throw new SourceError(`${JSON.stringify(node.path)}: ${error.message}`);
      return false; // not what it looked like: copied as a file, as BuildKit does
    }
  }
  return ustar(head);
}

function seconds(t: { sec: number; nsec: number }): number {
  return t.sec + t.nsec / 1e9;
}

/** Whether `path` is a symlink that leads (inside the container) to a directory. */
async function isSymlinkToDirectory(layer: WritableLayer, path: string): Promise<boolean> {
  // A dangling one, or a loop, is not: it is replaced by the directory, as before.
  return (await lstatOrUndefined(layer, path))?.isSymbolicLink() === true && (await isDirectory(layer, path));
}

async function lstatOrUndefined(layer: WritableLayer, path: string) {
  try {
    return await layer.lstat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw error;
  }
}

async function isDirectory(layer: WritableLayer, path: string): Promise<boolean> {
  try {
    return (await layer.stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Everything below `dir` into `out`, parents before what they hold; with a filter, what it keeps, and the
 * directories on the way to that (made as the source's, as BuildKit makes them when a path below is kept).
 * Returns whether anything was kept.
 */
async function walk(tree: SourceTree, dir: string, rel: string, out: Selected[], limits: { maxEntries: number }, counted: () => number, filter?: WalkFilter): Promise<boolean> {
  let kept = false;
  for (const node of await tree.children(dir)) {
    const childRel = rel === '' ? posix.basename(node.path) : `${rel}/${posix.basename(node.path)}`;
    const matched = filter?.included?.(childRel) ?? true;
    const excluded = filter?.excluded?.(childRel) ?? false;
    if (node.type !== 'directory') {
      if (matched && !excluded) out.push({ node, rel: childRel });
    } else {
      if (excluded && !filter?.exceptions) continue;
      if (!matched && !(filter?.mayHold?.(childRel) ?? true)) continue;
      const at = out.length;
      out.push({ node, rel: childRel });
      const below = await walk(tree, node.path, childRel, out, limits, counted, filter);
      if (!below && !(matched && !excluded)) {
        out.length = at; // nothing of it kept: not made
        continue;
      }
    }
    kept = true;
    if (counted() + out.length > limits.maxEntries) throw new SourceError(`more than ${limits.maxEntries} entries selected (the build's limit)`);
  }
  return kept;
}

/**
 * `COPY --parents`' tops for one source, as BuildKit's frontend reads it: the path before a `/./` (the tree's
 * root without one; wildcards allowed) is the directory copied from, and the rest a pattern of what below
 * it is kept, with its path. A pattern without wildcards must name something there.
 */
async function parentsTops(tree: SourceTree, source: string, filter: WalkFilter | undefined, limits: { maxEntries: number }, counted: () => number): Promise<Top[]> {
  const pivot = source.indexOf('/./');
  const from = pivot < 0 ? '' : cleanSource(source.slice(0, pivot) || '/', tree.label);
  const pattern = cleanSource(pivot < 0 ? source : source.slice(pivot + 3), tree.label);
  const roots = hasWildcards(from) ? await tree.match(from) : [from];
  const tops: Top[] = [];
  for (const root of roots) {
    const node = await tree.resolve(root);
    if (node === undefined || node.type !== 'directory') {
      if (hasWildcards(from)) continue;
      throw new SourceError(`${JSON.stringify(source)}: ${JSON.stringify(from)} is not a directory in ${tree.label}`);
    }
    if (!hasWildcards(pattern) && pattern !== '' && (await tree.resolve(root === '' ? pattern : `${root}/${pattern}`)) === undefined) {
      throw new SourceError(`${JSON.stringify(source)} is not in ${tree.label}${tree.label === 'the build context' ? ' (or .dockerignore excludes it)' : ''}`);
    }
    const below: Selected[] = [];
    const keep = pattern === '' ? filter : { ...filter, included: patternFilter([pattern]), mayHold: mayHoldMatches(pattern) };
    await walk(tree, node.path, '', below, limits, counted, keep);
    tops.push({ name: root === '' ? '.' : root, node, below, tree, extractable: false });
  }
  return tops;
}

/**
 * Whether a directory at `rel` can hold a path `pattern` matches: its components match the pattern's first
 * ones (anything can, once the pattern has reached a `**`).
 */
function mayHoldMatches(pattern: string): (rel: string) => boolean {
  const parts = pattern.split('/');
  const globstar = parts.findIndex((p) => p.includes('**'));
  const prefixes = new Map<number, ContextFilter>();
  return (rel) => {
    const depth = rel.split('/').length;
    if (globstar >= 0 && globstar < depth) return true;
    if (depth >= parts.length) return false; // as deep as the pattern, and not matched by it
    let prefix = prefixes.get(depth);
    if (prefix === undefined) prefixes.set(depth, (prefix = patternFilter([parts.slice(0, depth).join('/')])));
    return prefix(rel);
  };
}
