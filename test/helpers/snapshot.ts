/**
 * A comparable picture of a host tree: every path with type, mode, owner, size, mtime (ns), link target,
 * device numbers, xattrs, content hash and hardlink group. Two trees are equal when their pictures are.
 * Names and link targets are read as bytes, those that are not UTF-8 keyed with strata's escapes.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { decodeName, fsPath } from '../../packages/core/src/name-bytes.js';
import { readXattrs } from './host.js';

export interface NodeRecord {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  mtimeNs?: string;
  linkname?: string;
  rdev?: string;
  xattrs?: Record<string, string>;
  sha256?: string;
  linkGroup?: string;
}

export interface SnapshotOptions {
  /** Leave out directory mtimes (a merged view's directories carry the upper layer's time). */
  ignoreDirMtime?: boolean;
  /** Leave out all mtimes. */
  ignoreMtime?: boolean;
  /** Leave out symlink mtimes. */
  ignoreSymlinkMtime?: boolean;
  /** Compare mtimes in whole seconds (for tools that write no finer times). */
  mtimeInSeconds?: boolean;
  /** Xattr names to leave out (e.g. the overlay's own). */
  ignoreXattr?: (name: string) => boolean;
  /** Skip names a directory lists but lstat cannot find (overlayfs lists redundant whiteouts in non-merged directories). */
  skipVanished?: boolean;
  /** Paths (relative, as keyed) to leave out with everything below them. */
  skip?: (path: string) => boolean;
}

function typeOf(mode: number): string {
  switch (mode & 0o170000) {
    case 0o100000: return 'file';
    case 0o040000: return 'directory';
    case 0o120000: return 'symlink';
    case 0o020000: return 'char';
    case 0o060000: return 'block';
    case 0o010000: return 'fifo';
    case 0o140000: return 'socket';
    default: return 'unknown';
  }
}

/** The picture of the tree under `root` (the root itself left out), keyed by relative path. */
export function snapshotTree(root: string, options: SnapshotOptions = {}): Map<string, NodeRecord> {
  const out = new Map<string, NodeRecord>();
  const inodes = new Map<string, string[]>();
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(fsPath(dir), { encoding: 'buffer' }).map(decodeName).sort()) {
      const host = join(dir, name);
      const path = rel === '' ? name : `${rel}/${name}`;
      if (options.skip?.(path)) continue;
      const st = lstatSync(fsPath(host), { bigint: true, throwIfNoEntry: !options.skipVanished });
      if (st === undefined) continue;
      const type = typeOf(Number(st.mode));
      const record: NodeRecord = { type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid) };
      const skipTime = options.ignoreMtime || (type === 'directory' && options.ignoreDirMtime) || (type === 'symlink' && options.ignoreSymlinkMtime);
      if (!skipTime) record.mtimeNs = (options.mtimeInSeconds ? (st.mtimeNs / 1_000_000_000n) * 1_000_000_000n : st.mtimeNs).toString();
      if (type === 'file') {
        record.size = Number(st.size);
        record.sha256 = createHash('sha256').update(readFileSync(fsPath(host))).digest('hex');
      }
      if (type === 'symlink') record.linkname = decodeName(readlinkSync(fsPath(host), { encoding: 'buffer' }));
      if (type === 'char' || type === 'block') record.rdev = st.rdev.toString();
      const xattrs = [...readXattrs(host)].filter(([n]) => !options.ignoreXattr?.(n));
      if (xattrs.length > 0) record.xattrs = Object.fromEntries(xattrs.map(([n, v]) => [n, Buffer.from(v).toString('hex')]));
      if (type !== 'directory' && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        inodes.set(key, [...(inodes.get(key) ?? []), path]);
        (record as NodeRecord & { inode?: string }).inode = key;
      }
      out.set(path, record);
      if (type === 'directory') walk(host, path);
    }
  };
  walk(root, '');
  // Hardlink identity as a group name (the smallest path of the group), independent of inode numbers.
  for (const record of out.values()) {
    const r = record as NodeRecord & { inode?: string };
    if (r.inode === undefined) continue;
    const group = inodes.get(r.inode)!;
    if (group.length > 1) r.linkGroup = [...group].sort()[0]!;
    delete r.inode;
  }
  return out;
}

/** Human-readable differences between two pictures (empty when equal), at most `limit` of them. */
export function diffSnapshots(expected: Map<string, NodeRecord>, actual: Map<string, NodeRecord>, limit = 20): string[] {
  const diffs: string[] = [];
  for (const [path, want] of expected) {
    const got = actual.get(path);
    if (!got) diffs.push(`missing: ${path}`);
    else if (JSON.stringify(want) !== JSON.stringify(got)) diffs.push(`differs: ${path}\n  want ${JSON.stringify(want)}\n  got  ${JSON.stringify(got)}`);
    if (diffs.length >= limit) return diffs;
  }
  for (const path of actual.keys()) {
    if (!expected.has(path)) diffs.push(`extra: ${path}`);
    if (diffs.length >= limit) break;
  }
  return diffs;
}
