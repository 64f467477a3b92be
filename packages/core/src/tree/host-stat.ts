/**
 * What a host `lstat` says, in layer terms: the file type, and whole `NodeStat`s from the native batched
 * lstat that the hot walks (pack, diffUpper, host layers) share.
 */
import { basename, dirname } from 'node:path';
import type { Timestamp } from '../entry.js';
import { lstatBatch, readXattrValues, STAT, type LstatBatch } from '../native.js';
import { nodeTypeOfMode } from '../mode.js';
import type { NodeStat } from './layer-tree.js';

/** `st_mode` of entry `i` of a batch; 0 when the entry vanished after it was listed. */
export function batchMode(batch: LstatBatch, i: number): number {
  return batch.stats[i * STAT.fields + STAT.mode]!;
}

/** The same string for every name of one host inode: hardlink identity (device and inode number). */
export function batchIdentity(batch: LstatBatch, i: number): string {
  const f = batch.stats;
  const o = i * STAT.fields;
  return `${f[o + STAT.dev]}:${f[o + STAT.inoHigh]}:${f[o + STAT.inoLow]}`;
}

/**
 * Entry `i` of a batch as layer metadata, named `path`; undefined when it vanished or has a type no layer
 * knows. Xattr values are read (from `hostPath`) only for entries that have any, and only when `xattrs`.
 */
export function statFromBatch(batch: LstatBatch, i: number, path: string, hostPath: string, xattrs = true): NodeStat | undefined {
  const f = batch.stats;
  const o = i * STAT.fields;
  const mode = f[o + STAT.mode]!;
  const type = nodeTypeOfMode(mode);
  if (type === undefined) return undefined;
  const nlink = f[o + STAT.nlink]!;
  const mtime: Timestamp = { sec: f[o + STAT.mtimeSec]!, nsec: f[o + STAT.mtimeNsec]! };
  const stat: { -readonly [K in keyof NodeStat]: NodeStat[K] } = {
    path,
    type,
    mode: mode & 0o7777,
    uid: f[o + STAT.uid]!,
    gid: f[o + STAT.gid]!,
    size: type === 'file' ? f[o + STAT.size]! : 0,
    mtime,
    nlink,
    xattrs: xattrs ? readXattrValues(hostPath, batch.xattrs[i]) : new Map(),
  };
  if (type === 'file' && nlink > 1) stat.identity = batchIdentity(batch, i);
  else if (type === 'symlink') stat.linkname = batch.links[i] ?? '';
  else if (type === 'char' || type === 'block') {
    stat.devmajor = f[o + STAT.rdevMajor]!;
    stat.devminor = f[o + STAT.rdevMinor]!;
  }
  return stat;
}

/** A one-entry batch for the host path `hostPath`; undefined when nothing is there. */
export function lstatOne(hostPath: string): LstatBatch | undefined {
  let batch: LstatBatch;
  try {
    batch = lstatBatch(dirname(hostPath), [basename(hostPath) || '.']);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
  return batchMode(batch, 0) === 0 ? undefined : batch;
}

/** `lstat` of one host path as layer metadata; undefined when nothing (or nothing a layer can hold) is there. */
export function hostStat(path: string, hostPath: string): NodeStat | undefined {
  const batch = lstatOne(hostPath);
  return batch === undefined ? undefined : statFromBatch(batch, 0, path, hostPath);
}
