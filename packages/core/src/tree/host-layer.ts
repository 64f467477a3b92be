/**
 * A layer held in a host directory, in overlay form (whiteouts as char 0/0 devices, opaque directories by
 * xattr; what the kernel and `applyLayer({ layout: 'overlay' })` write) or OCI form (`.wh.` names, read by
 * the same rules as a layer tarball's: an entry beats a whiteout of the same name, aufs bookkeeping names
 * are skipped).
 */
import { closeSync, constants as fsConstants, copyFileSync, createReadStream, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, type Dirent, type Stats } from 'node:fs';
import { join } from 'node:path';
import { fsError } from '../errors.js';
import { getXattr } from '../native.js';
import { childPath } from '../path.js';
import { classifyWhiteout, isOpaqueValue, isWhiteoutEntry, isWhiteoutStats, OPAQUE_MARKER, opaqueXattr, WHITEOUT_PREFIX, type OverlayXattrNamespace } from '../whiteout.js';
import { decodeName, fsPath } from '../name-bytes.js';
import { hostStat } from './host-stat.js';
import { WHITEOUT_NODE, type ContentReader, type LayerNode, type LayerTree, type NodeStat, type NodeType } from './layer-tree.js';

/** How a host directory records deletions: as overlayfs does, or with OCI `.wh.` names. */
export type WhiteoutForm = 'overlay' | 'oci';

/** Options of `HostLayer`. */
export interface HostLayerOptions {
  /** How deletions are recorded: `overlay` (default) or `oci`. */
  whiteouts?: WhiteoutForm;
  /** Namespace of overlay opaque and other markers: `trusted` (default) or `user`. */
  xattrNamespace?: OverlayXattrNamespace;
  /** Cache listings (default true). A layer that changes under us must be invalidated by whoever changes it. */
  cache?: boolean;
}

/**
 * The entries of host directory `hostDir`, their names as strata spells them. Node lists a name that is not
 * UTF-8 with U+FFFD in place of its bytes, which then names nothing: a listing showing that character is read
 * again as bytes, and each name decoded with its escapes (see `name-bytes.ts`).
 */
function listHostDir(hostDir: string): Array<{ name: string; entry: Dirent | Dirent<Buffer> }> {
  const dirents = readdirSync(fsPath(hostDir), { withFileTypes: true });
  if (!dirents.some((d) => d.name.includes('\uFFFD'))) return dirents.map((entry) => ({ name: entry.name, entry }));
  return readdirSync(fsPath(hostDir), { withFileTypes: true, encoding: 'buffer' }).map((entry) => ({ name: decodeName(entry.name), entry }));
}

/** The node type an `fs.Stats` or `fs.Dirent` tells. */
function nodeType(d: Stats | Dirent | Dirent<Buffer>): NodeType {
  if (d.isFile()) return 'file';
  if (d.isDirectory()) return 'directory';
  if (d.isSymbolicLink()) return 'symlink';
  if (d.isCharacterDevice()) return 'char';
  if (d.isBlockDevice()) return 'block';
  if (d.isFIFO()) return 'fifo';
  return 'socket';
}

const EMPTY: ReadonlyMap<string, LayerNode> = new Map();
const NODES = new Map<NodeType, LayerNode>(
  (['file', 'directory', 'symlink', 'char', 'block', 'fifo', 'socket'] as const).map((type) => [type, Object.freeze({ kind: 'entry', type })]),
);

export class HostLayer implements LayerTree {
  readonly root: string;
  readonly #form: WhiteoutForm;
  readonly #opaqueName: string;
  readonly #cache: Map<string, ReadonlyMap<string, LayerNode>> | undefined;
  readonly #opaque: Map<string, boolean> | undefined;

  constructor(root: string, options: HostLayerOptions = {}) {
    this.root = root;
    this.#form = options.whiteouts ?? 'overlay';
    this.#opaqueName = opaqueXattr(options.xattrNamespace ?? 'trusted');
    this.#cache = options.cache === false ? undefined : new Map();
    this.#opaque = options.cache === false ? undefined : new Map();
  }

  /** The host path of a layer path. */
  hostPath(path: string): string {
    return path === '.' ? this.root : join(this.root, path);
  }

  /** Forgets cached listings of `dir` (call after changing it). */
  invalidate(dir: string): void {
    this.#cache?.delete(dir);
    this.#opaque?.delete(dir);
  }

  /**
   * Reports that one name of `dir` changed (made, removed, replaced): a cached listing of `dir` is updated
   * for that name alone (one lstat) instead of being read again, so filling a large directory one entry at
   * a time does not reread it each time.
   */
  refreshChild(dir: string, name: string): void {
    const cached = this.#cache?.get(dir);
    if (cached === undefined) return;
    if (this.#form === 'oci' && (name.startsWith(WHITEOUT_PREFIX) || classifyWhiteout(childPath(dir, name)).kind !== 'none')) {
      this.invalidate(dir); // whiteout names stand for other names: read the directory again
      return;
    }
    const st = lstatSync(fsPath(join(this.hostPath(dir), name)), { throwIfNoEntry: false });
    // In place (a copy per change would make filling a directory quadratic): a Map iterated meanwhile
    // shows the change or not, and never fails.
    const map = cached as Map<string, LayerNode>;
    if (st === undefined) map.delete(name);
    else if (this.#form === 'overlay' && isWhiteoutStats(st)) map.set(name, WHITEOUT_NODE);
    else map.set(name, NODES.get(nodeType(st))!);
  }

  children(dir: string): ReadonlyMap<string, LayerNode> {
    const cached = this.#cache?.get(dir);
    if (cached) return cached;
    let dirents: ReturnType<typeof listHostDir>;
    try {
      dirents = listHostDir(this.hostPath(dir));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return EMPTY;
      throw error;
    }
    const map = new Map<string, LayerNode>();
    const whiteouts: string[] = [];
    for (const { name, entry } of dirents) {
      const type = nodeType(entry);
      if (this.#form === 'oci') {
        const kind = classifyWhiteout(childPath(dir, name));
        if (kind.kind === 'whiteout') whiteouts.push(name.slice(WHITEOUT_PREFIX.length));
        else if (kind.kind === 'none') map.set(name, NODES.get(type)!);
        // An opaque marker is not a child (see isOpaque); aufs bookkeeping is skipped.
      } else if (type === 'char' && isWhiteoutStats(lstatSync(fsPath(join(this.hostPath(dir), name))))) {
        map.set(name, WHITEOUT_NODE);
      } else {
        map.set(name, NODES.get(type)!);
      }
    }
    for (const name of whiteouts) if (!map.has(name)) map.set(name, WHITEOUT_NODE); // an entry of this layer wins
    this.#cache?.set(dir, map);
    return map;
  }

  isOpaque(dir: string): boolean {
    const cached = this.#opaque?.get(dir);
    if (cached !== undefined) return cached;
    let opaque: boolean;
    if (this.#form === 'oci') {
      opaque = lstatSync(fsPath(join(this.hostPath(dir), OPAQUE_MARKER)), { throwIfNoEntry: false }) !== undefined;
    } else {
      opaque = isOpaqueValue(getXattr(this.hostPath(dir), this.#opaqueName));
    }
    this.#opaque?.set(dir, opaque);
    return opaque;
  }

  stat(path: string): NodeStat | undefined {
    const stat = hostStat(path, this.hostPath(path));
    // In overlay form a char 0/0 device is a deletion, not an entry of this layer.
    return stat !== undefined && this.#form === 'overlay' && isWhiteoutEntry(stat) ? undefined : stat;
  }

  readlink(path: string): string {
    try {
      return decodeName(readlinkSync(fsPath(this.hostPath(path)), { encoding: 'buffer' }));
    } catch (error) {
      throw fsError((error as NodeJS.ErrnoException).code ?? 'EIO', 'readlink', path);
    }
  }

  read(path: string): AsyncIterable<Uint8Array> {
    return createReadStream(fsPath(this.hostPath(path)), { highWaterMark: 1024 * 1024 });
  }

  readAll(path: string): Uint8Array {
    return readFileSync(fsPath(this.hostPath(path)));
  }

  openContent(path: string): ContentReader {
    return openHostContent(this.hostPath(path));
  }

  copyFileTo(path: string, hostPath: string): void {
    copyFileSync(fsPath(this.hostPath(path)), fsPath(hostPath), fsConstants.COPYFILE_FICLONE | fsConstants.COPYFILE_EXCL);
  }
}

/** The content of the host file at `hostPath` (never following a final symlink), read in place. */
export function openHostContent(hostPath: string): ContentReader {
  const fd = openSync(fsPath(hostPath), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  return {
    read: (buffer, position) => {
      let done = 0;
      while (done < buffer.length) {
        const n = readSync(fd, buffer, done, buffer.length - done, position + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    },
    close: () => closeSync(fd),
  };
}
