/**
 * What the snapshotter suites share: trees changed through a kernel mount or through strata's userspace
 * view with one set of operations (containerd's fstest appliers, in TypeScript), and pictures of trees to
 * compare a snapshot with the same changes applied to one plain directory.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { WritableLayer } from '@strata/core';
import type { Snapshotter } from '../src/index.js';

/** The subset of fs/promises the appliers use: node:fs on a host path, or a WritableLayer. */
export interface TreeFs {
  writeFile(path: string, data: string, options: { mode: number }): Promise<void>;
  mkdir(path: string, options: { mode: number }): Promise<unknown>;
  rm(path: string, options: { recursive: boolean; force: boolean }): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
}

/** A tree to change: a file system API and how it names paths. */
export interface Tree {
  readonly fs: TreeFs;
  path(p: string): string;
}

export function hostTree(dir: string): Tree {
  return { fs: fs as unknown as TreeFs, path: (p) => join(dir, p) };
}

export function layerTree(layer: WritableLayer): Tree {
  return { fs: layer as unknown as TreeFs, path: (p) => `/${p.replace(/^\/+/, '')}` };
}

/** A change to a tree (containerd's fstest.Applier). */
export type Applier = (tree: Tree) => Promise<void>;

// Modes are set explicitly after creation: the umask must not decide them.
export const createFile = (p: string, content: string, mode: number): Applier => async (t) => {
  await t.fs.writeFile(t.path(p), content, { mode });
  await t.fs.chmod(t.path(p), mode);
};
export const createDir = (p: string, mode: number): Applier => async (t) => {
  await t.fs.mkdir(t.path(p), { mode });
  await t.fs.chmod(t.path(p), mode);
};
export const removeAll = (p: string): Applier => (t) => t.fs.rm(t.path(p), { recursive: true, force: true });
export const chown = (p: string, uid: number, gid: number): Applier => (t) => t.fs.chown(t.path(p), uid, gid);
export const link = (existing: string, p: string): Applier => (t) => t.fs.link(t.path(existing), t.path(p));
export const rename = (from: string, to: string): Applier => (t) => t.fs.rename(t.path(from), t.path(to));
export const symlink = (target: string, p: string): Applier => (t) => t.fs.symlink(target, t.path(p));
export const apply = (...appliers: Applier[]): Applier => async (t) => {
  for (const a of appliers) await a(t);
};

/** A comparable picture of a tree: every path with type, mode, owner, size, content and link target (no times). */
export type Picture = Record<string, string>;

export function pictureOfHost(dir: string): Picture {
  const out: Picture = {};
  const walk = (host: string, rel: string) => {
    for (const name of readdirSync(host).sort()) {
      const p = join(host, name);
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      let detail = `${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isFile()) detail += ` ${st.size} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)}`;
      if (st.isSymbolicLink()) detail += ` -> ${readlinkSync(p)}`;
      out[path] = detail;
      if (st.isDirectory()) walk(p, path);
    }
  };
  walk(dir, '');
  return out;
}

export async function pictureOfLayer(layer: WritableLayer): Promise<Picture> {
  const out: Picture = {};
  const walk = async (dir: string, rel: string) => {
    for (const name of [...(await layer.readdir(dir))].sort()) {
      const p = dir === '/' ? `/${name}` : `${dir}/${name}`;
      const path = rel ? `${rel}/${name}` : name;
      const st = await layer.lstat(p);
      let detail = `${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isFile()) detail += ` ${st.size} ${createHash('sha256').update((await layer.readFile(p)) as Buffer).digest('hex').slice(0, 16)}`;
      if (st.isSymbolicLink()) detail += ` -> ${await layer.readlink(p)}`;
      out[path] = detail;
      if (st.isDirectory()) await walk(p, path);
    }
  };
  await walk('/', '');
  return out;
}

let mounts = 0;

/**
 * Runs `fn` on the tree of snapshot `key`: through a kernel mount (mounted in a fresh directory under
 * `work`, unmounted after) when the driver mounts, else through strata's userspace view.
 */
export async function withTree<T>(sn: Snapshotter, key: string, work: string, fn: (tree: Tree, picture: () => Promise<Picture>) => Promise<T>): Promise<T> {
  if (sn.driver === 'userspace') {
    const layer = await sn.open(key);
    return fn(layerTree(layer), () => pictureOfLayer(layer));
  }
  const target = join(work, `mnt-${++mounts}`);
  mkdirSync(target);
  await sn.mount(key, target);
  try {
    return await fn(hostTree(target), async () => pictureOfHost(target));
  } finally {
    await sn.unmount(target);
  }
}

/**
 * containerd's checkSnapshots: each applier becomes one committed snapshot on the last, made through the
 * snapshotter's trees; each is then viewed and compared with the appliers so far applied to one plain
 * directory.
 */
export async function checkSnapshots(sn: Snapshotter, work: string, ...appliers: Applier[]): Promise<void> {
  const flat = join(work, `flat-${++mounts}`);
  mkdirSync(flat);
  let parent: string | undefined;
  const committed: string[] = [];
  for (const [i, applier] of appliers.entries()) {
    const key = `check-${mounts}-prepare-${i}`;
    await sn.prepare(key, parent);
    await withTree(sn, key, work, (tree) => applier(tree));
    parent = `check-${mounts}-committed-${i}`;
    await sn.commit(parent, key);
    committed.push(parent);
  }
  for (const [i, name] of committed.entries()) {
    await appliers[i]!(hostTree(flat));
    const view = `${name}-view`;
    await sn.view(view, name);
    const got = await withTree(sn, view, work, (_tree, picture) => picture());
    const want = pictureOfHost(flat);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`snapshot ${name} differs from the plain directory:\n want ${JSON.stringify(want)}\n got  ${JSON.stringify(got)}`);
    }
    await sn.remove(view);
  }
}
