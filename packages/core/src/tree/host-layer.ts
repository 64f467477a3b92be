/**
 * A layer held in a host directory, in overlay form (whiteouts as char 0/0 devices, opaque directories by
 * xattr; what the kernel and `applyLayer({ layout: 'overlay' })` write) or OCI form (`.wh.` names, read by
 * the same rules as a layer tarball's: an entry beats a whiteout of the same name, aufs bookkeeping names
 * are skipped).
 */
import { closeSync, constants as fsConstants, copyFileSync, createReadStream, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, type Dirent, type Stats } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { join } from 'node:path';
import { fsError } from '../errors.js';
import { getXattr } from '../native.js';
import { childPath } from '../path.js';
import { classifyWhiteout, isOpaqueValue, isWhiteoutEntry, isWhiteoutStats, OPAQUE_MARKER, opaqueXattr, WHITEOUT_PREFIX, type OverlayXattrNamespace } from '../whiteout.js';
import { hostStat, nonUtf8NameError } from './host-stat.js';
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
 * Throws UNSUPPORTED when `hostDir` holds a name that is not UTF-8. Node lists such a name with U+FFFD in
 * place of its bytes, which then names nothing; only a listing with such a character is read again as bytes.
 */
function refuseNonUtf8Names(hostDir: string, dirents: readonly Dirent[]): void {
  if (!dirents.some((d) => d.name.includes('\uFFFD'))) return;
  if (readdirSync(hostDir, { encoding: 'buffer' }).every((name) => isUtf8(name))) return;
  throw nonUtf8NameError(hostDir);
}

/** The node type an `fs.Stats` or `fs.Dirent` tells. */
function nodeType(d: Stats | Dirent): NodeType {
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
    const st = lstatSync(join(this.hostPath(dir), name), { throwIfNoEntry: false });
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
    let dirents: Dirent[];
    try {
      dirents = readdirSync(this.hostPath(dir), { withFileTypes: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return EMPTY;
      throw error;
    }
    refuseNonUtf8Names(this.hostPath(dir), dirents);
    const map = new Map<string, LayerNode>();
    const whiteouts: string[] = [];
    for (const d of dirents) {
      const type = nodeType(d);
      if (this.#form === 'oci') {
        const kind = classifyWhiteout(childPath(dir, d.name));
        if (kind.kind === 'whiteout') whiteouts.push(d.name.slice(WHITEOUT_PREFIX.length));
        else if (kind.kind === 'none') map.set(d.name, NODES.get(type)!);
        // An opaque marker is not a child (see isOpaque); aufs bookkeeping is skipped.
      } else if (type === 'char' && isWhiteoutStats(lstatSync(join(this.hostPath(dir), d.name)))) {
        map.set(d.name, WHITEOUT_NODE);
      } else {
        map.set(d.name, NODES.get(type)!);
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
      opaque = lstatSync(join(this.hostPath(dir), OPAQUE_MARKER), { throwIfNoEntry: false }) !== undefined;
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
      return readlinkSync(this.hostPath(path));
    } catch (error) {
      throw fsError((error as NodeJS.ErrnoException).code ?? 'EIO', 'readlink', path);
    }
  }

  read(path: string): AsyncIterable<Uint8Array> {
    return createReadStream(this.hostPath(path), { highWaterMark: 1024 * 1024 });
  }

  readAll(path: string): Uint8Array {
    return readFileSync(this.hostPath(path));
  }

  openContent(path: string): ContentReader {
    return openHostContent(this.hostPath(path));
  }

  copyFileTo(path: string, hostPath: string): void {
    copyFileSync(this.hostPath(path), hostPath, fsConstants.COPYFILE_FICLONE | fsConstants.COPYFILE_EXCL);
  }
}

/** The content of the host file at `hostPath` (never following a final symlink), read in place. */
export function openHostContent(hostPath: string): ContentReader {
  const fd = openSync(hostPath, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
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
