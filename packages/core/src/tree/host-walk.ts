/**
 * Walks a host directory in tar order (parents first, siblings in byte order), as entries ready to write.
 * Synchronous lstat/readdir per entry on purpose: one syscall each, no thread-pool round trip per file.
 */
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import type { Entry } from '../entry.js';
import { timestampFromNs } from '../entry.js';
import { readXattrs } from '../native.js';
import { childPath, compareNames, ROOT } from '../path.js';
import type { WriteItem } from '../tar/writer.js';
import { deviceNumbers, nodeTypeOf } from './host-stat.js';

/** Options of `walkHostDirectory`. */
export interface HostWalkOptions {
  /** Read extended attributes (default true). */
  xattrs?: boolean;
  /** Include an entry for the root directory itself (default false, as Docker layers do). */
  includeRoot?: boolean;
  /** Called for what cannot go into a layer (sockets), which is skipped. */
  onWarning?: (message: string, path: string) => void;
  signal?: AbortSignal;
}

/**
 * The entries of the tree at `root`, each with its content source. A file with several names is written
 * in full at its first name in walk order and as a hardlink at the others (identity by device and inode).
 */
export async function* walkHostDirectory(root: string, options: HostWalkOptions = {}): AsyncGenerator<WriteItem> {
  const withXattrs = options.xattrs ?? true;
  const seen = new Map<string, string>();

  const entryOf = (hostPath: string, path: string, st: BigIntStats): WriteItem | undefined => {
    const kind = nodeTypeOf(st);
    if (kind === undefined || kind === 'socket') {
      options.onWarning?.(`skipping ${kind ?? 'unknown file type'}: sockets have no tar form`, path);
      return undefined;
    }
    const base = {
      path,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: timestampFromNs(st.mtimeNs),
      xattrs: withXattrs ? readXattrs(hostPath) : new Map<string, Uint8Array>(),
    };
    if (kind !== 'directory' && st.nlink > 1n) {
      const identity = `${st.dev}:${st.ino}`;
      const first = seen.get(identity);
      if (first !== undefined) return { entry: { ...base, type: 'hardlink', size: 0, linkname: first } };
      seen.set(identity, path);
    }
    let entry: Entry;
    if (kind === 'file') entry = { ...base, type: 'file', size: Number(st.size) };
    else if (kind === 'symlink') entry = { ...base, type: 'symlink', size: 0, linkname: readlinkSync(hostPath) };
    else if (kind === 'char' || kind === 'block') entry = { ...base, type: kind, size: 0, ...deviceNumbers(st.rdev) };
    else entry = { ...base, type: kind, size: 0 };
    return kind === 'file' ? { entry, content: { kind: 'path', path: hostPath } } : { entry };
  };

  if (options.includeRoot) {
    const item = entryOf(root, ROOT, lstatSync(root, { bigint: true }));
    if (item) yield item;
  }
  // An explicit stack keeps memory to one directory listing per level.
  const stack: Array<{ hostDir: string; dir: string; names: string[]; next: number }> = [];
  const listing = (hostDir: string) => readdirSync(hostDir).sort(compareNames);
  stack.push({ hostDir: root, dir: ROOT, names: listing(root), next: 0 });
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.names.length) {
      stack.pop();
      continue;
    }
    options.signal?.throwIfAborted();
    const name = top.names[top.next++]!;
    const hostPath = join(top.hostDir, name);
    const path = childPath(top.dir, name);
    const st = lstatSync(hostPath, { bigint: true });
    const item = entryOf(hostPath, path, st);
    if (!item) continue;
    yield item;
    if (item.entry.type === 'directory') stack.push({ hostDir: hostPath, dir: path, names: listing(hostPath), next: 0 });
  }
}
