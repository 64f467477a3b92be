/**
 * The differential harness: the same lowers and the same operations through strata's WritableLayer and
 * through a kernel overlayfs mount, compared op by op (errors and results) and at the end (merged views
 * and upper directories).
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  applyLayer,
  compareTarOrder,
  HostLayer,
  TarLayer,
  WritableLayer,
  writeEntries,
  type Entry,
  type LayerTree,
  type WriteItem,
} from '@strata/core';
import { decodeName, fsPath } from '../../packages/core/src/name-bytes.js';
import { parentOf } from '../../packages/core/src/path.js';
import { setXattr } from './host.js';
import { snapshotTree, type NodeRecord } from './snapshot.js';

// ---- the namespace everything is drawn from ----
export const DIRS = ['d', 'd/e', 'x'];
export const PATHS = ['a', 'b', 'd', 'd/a', 'd/b', 'd/e', 'd/e/a', 'x', 'x/a'];
const NEW_PATHS = ['n', 'd/n', 'x/n', 'd/e/n'];
export const ALL_PATHS = [...PATHS, ...NEW_PATHS];

export type LayerItem =
  | { kind: 'file'; path: string; content: string; mode: number; uid: number; xattr?: string }
  | { kind: 'dir'; path: string; mode: number; uid: number; opaque?: boolean }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'hardlink'; path: string; target: string }
  | { kind: 'whiteout'; path: string };

/** A layer: at most one item per path, parents present as directories. */
export type LayerSpec = LayerItem[];

/**
 * Symlink targets that stay inside the tree: the kernel side is driven from outside the mount, where an
 * absolute target, or a `..` above the mount, would resolve on the host instead of in the container.
 * Container-root resolution of such links has tests of its own.
 */
function targetArb(path: string): fc.Arbitrary<string> {
  return path.includes('/') ? fc.constantFrom('a', 'nowhere', '../a', '../d') : fc.constantFrom('a', 'nowhere', 'd', 'd/e');
}

const content = fc.constantFrom('', 'one\n', 'two two\n', 'x'.repeat(5000));
const mode = fc.constantFrom(0o644, 0o755, 0o600, 0o4755);
const uid = fc.constantFrom(0, 1000);

function itemArb(path: string, allowWhiteout: boolean): fc.Arbitrary<LayerItem | null> {
  const options: fc.Arbitrary<LayerItem | null>[] = [
    fc.constant(null),
    fc.record({ kind: fc.constant('file' as const), path: fc.constant(path), content, mode, uid, xattr: fc.option(fc.constantFrom('v1', 'v2'), { nil: undefined }) }).map(
      (r) => (r.xattr === undefined ? { kind: r.kind, path: r.path, content: r.content, mode: r.mode, uid: r.uid } : (r as LayerItem)),
    ),
    fc.record({ kind: fc.constant('dir' as const), path: fc.constant(path), mode: fc.constantFrom(0o755, 0o700), uid, opaque: fc.boolean() }),
    fc.record({ kind: fc.constant('symlink' as const), path: fc.constant(path), target: targetArb(path) }),
  ];
  if (allowWhiteout) options.push(fc.constant({ kind: 'whiteout' as const, path }));
  return fc.oneof(...options);
}

/** A random layer over the namespace, made consistent (a child forces its parent to be a directory). */
export function layerArb(allowWhiteout: boolean): fc.Arbitrary<LayerSpec> {
  return fc.tuple(...PATHS.map((p) => itemArb(p, allowWhiteout))).map((items) => {
    const byPath = new Map<string, LayerItem>();
    for (const item of items) if (item) byPath.set(item.path, item);
    for (const path of [...byPath.keys()].sort((a, b) => b.length - a.length)) {
      for (let p = parentOf(path); p !== '.'; p = parentOf(p)) {
        const parent = byPath.get(p);
        if (!parent || parent.kind !== 'dir') byPath.set(p, { kind: 'dir', path: p, mode: 0o755, uid: 0 });
      }
    }
    // A hardlink to a file of the same layer, when there is one.
    const files = [...byPath.values()].filter((i) => i.kind === 'file');
    if (files.length > 0 && !byPath.has('b') && files[0]!.path !== 'b') byPath.set('b', { kind: 'hardlink', path: 'b', target: files[0]!.path });
    return [...byPath.values()].sort((a, b) => compareTarOrder(a.path, b.path));
  });
}

/** 1 or 2 lowers, the upper ones with whiteouts. */
export const baseArb = fc.tuple(layerArb(false), fc.option(layerArb(true), { nil: undefined })).map(([l1, l2]) => (l2 ? [l1, l2] : [l1]));

export type Op =
  | { op: 'writeFile' | 'appendFile'; path: string; data: string }
  | { op: 'truncate'; path: string; length: number }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'chown'; path: string; uid: number; gid: number }
  | { op: 'utimes'; path: string; time: number }
  | { op: 'unlink' | 'rmdir' | 'readFile' | 'readdir' | 'readlink'; path: string }
  | { op: 'mkdir'; path: string }
  | { op: 'rm'; path: string; recursive: boolean }
  | { op: 'rename' | 'link'; path: string; to: string }
  | { op: 'symlink'; target: string; path: string }
  | { op: 'setxattr'; path: string; name: string; value: string };

const pathArb = fc.constantFrom(...ALL_PATHS);
export const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom('writeFile' as const, 'appendFile' as const), path: pathArb, data: fc.constantFrom('new\n', 'more\n') }),
  fc.record({ op: fc.constant('truncate' as const), path: pathArb, length: fc.constantFrom(0, 2) }),
  fc.record({ op: fc.constant('chmod' as const), path: pathArb, mode: fc.constantFrom(0o700, 0o4711, 0o644) }),
  fc.record({ op: fc.constant('chown' as const), path: pathArb, uid: fc.constantFrom(0, 42), gid: fc.constantFrom(0, 43) }),
  fc.record({ op: fc.constant('utimes' as const), path: pathArb, time: fc.constantFrom(1_000_000, 1_600_000_000) }),
  fc.record({ op: fc.constantFrom('unlink' as const, 'rmdir' as const, 'readFile' as const, 'readdir' as const, 'readlink' as const, 'mkdir' as const), path: pathArb }),
  fc.record({ op: fc.constant('rm' as const), path: pathArb, recursive: fc.boolean() }),
  fc.record({ op: fc.constantFrom('rename' as const, 'link' as const), path: pathArb, to: pathArb }),
  pathArb.chain((path) => fc.record({ op: fc.constant('symlink' as const), target: targetArb(path), path: fc.constant(path) })),
  fc.record({ op: fc.constant('setxattr' as const), path: pathArb, name: fc.constantFrom('user.k', 'user.j'), value: fc.constantFrom('1', '2') }),
);

/**
 * Each name of the namespace as one that is not UTF-8 (strata's escapes: Latin-1 bytes, a cut-short
 * sequence, bytes no UTF-8 starts with), so the same stacks and operations run on names only bytes spell.
 */
const NOT_UTF8: Record<string, string> = { a: 'caf\udce9', b: 'b\udcff\udcfe', d: 'd\udce9', e: '\udc80e', x: 'x\udce2\udc82', n: 'n\udcc3' };
const notUtf8 = (path: string): string => path.split('/').map((name) => NOT_UTF8[name] ?? name).join('/');

/** `base` and `ops` with every name of the namespace, and of link targets, spelled by `NOT_UTF8`. */
export function withNamesNotUtf8(base: LayerSpec[], ops: Op[]): { base: LayerSpec[]; ops: Op[] } {
  const item = (i: LayerItem): LayerItem => ('target' in i ? { ...i, path: notUtf8(i.path), target: notUtf8(i.target) } : { ...i, path: notUtf8(i.path) });
  const op = (o: Op): Op => {
    const out = { ...o, path: notUtf8(o.path) } as Op & { to?: string; target?: string };
    if ('to' in o) out.to = notUtf8(o.to);
    if ('target' in o) out.target = notUtf8(o.target);
    return out;
  };
  return { base: base.map((layer) => layer.map(item)), ops: ops.map(op) };
}

/**
 * Node's fs/promises for strata's paths: a path carrying escapes goes as its bytes, and names and link
 * targets come back with their escapes (Node would show U+FFFD), as the kernel side of the harness needs.
 */
const bytesFs = {
  ...Object.fromEntries(
    Object.entries(fs).map(([key, f]) => [key, typeof f === 'function' ? (...args: unknown[]) => (f as (...a: unknown[]) => unknown)(...args.map((a) => (typeof a === 'string' ? fsPath(a) : a))) : f]),
  ),
  readdir: async (p: string) => (await fs.readdir(fsPath(p), { encoding: 'buffer' })).map(decodeName),
  readlink: async (p: string) => decodeName(await fs.readlink(fsPath(p), { encoding: 'buffer' })),
  lstat: (p: string) => fs.lstat(fsPath(p)),
};

const now = { sec: 1_700_000_000, nsec: 0 };

function entryFor(item: LayerItem): WriteItem | undefined {
  const base = { mtime: now, gid: 0, xattrs: new Map<string, Uint8Array>() };
  switch (item.kind) {
    case 'file': {
      const bytes = Buffer.from(item.content);
      const xattrs = item.xattr ? new Map([['user.layer', Buffer.from(item.xattr) as Uint8Array]]) : new Map<string, Uint8Array>();
      return { entry: { ...base, xattrs, path: item.path, type: 'file', mode: item.mode, uid: item.uid, size: bytes.length }, content: { kind: 'bytes', bytes } };
    }
    case 'dir':
      return { entry: { ...base, path: item.path, type: 'directory', mode: item.mode, uid: item.uid, size: 0 } };
    case 'symlink':
      return { entry: { ...base, path: item.path, type: 'symlink', mode: 0o777, uid: 0, size: 0, linkname: item.target } };
    case 'hardlink':
      return { entry: { ...base, path: item.path, type: 'hardlink', mode: 0o644, uid: 0, size: 0, linkname: item.target } };
    case 'whiteout': {
      const slash = item.path.lastIndexOf('/');
      const path = slash < 0 ? `.wh.${item.path}` : `${item.path.slice(0, slash)}/.wh.${item.path.slice(slash + 1)}`;
      return { entry: { ...base, path, type: 'file', mode: 0o644, uid: 0, size: 0 } };
    }
  }
}

/** Writes a layer spec as an OCI layer tarball. */
export async function writeSpec(spec: LayerSpec, tarPath: string): Promise<void> {
  const items: WriteItem[] = [];
  for (const item of spec) {
    const e = entryFor(item);
    if (e) items.push(e);
    if (item.kind === 'dir' && item.opaque) items.push({ entry: { path: `${item.path}/.wh..wh..opq`, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: now, xattrs: new Map() } });
  }
  await writeEntries(items, tarPath);
}

export interface Stack {
  dir: string;
  lowerDirs: string[]; // bottom first
  tarPaths: string[];
}

/** Materialises a base: each layer as a tarball and as an overlay-form directory. */
export async function buildStack(base: LayerSpec[], namespace: 'trusted' | 'user'): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-diff-'));
  const lowerDirs: string[] = [];
  const tarPaths: string[] = [];
  for (const [i, spec] of base.entries()) {
    const tar = join(dir, `layer${i}.tar`);
    await writeSpec(spec, tar);
    const lower = join(dir, `lower${i}`);
    await applyLayer(tar, lower, { layout: 'overlay', xattrNamespace: namespace });
    lowerDirs.push(lower);
    tarPaths.push(tar);
  }
  return { dir, lowerDirs, tarPaths };
}

type Outcome = { ok: true; value?: unknown } | { ok: false; code: string };

interface Target {
  fs: {
    writeFile(p: string, d: string): Promise<unknown>;
    appendFile(p: string, d: string): Promise<unknown>;
    truncate(p: string, n: number): Promise<unknown>;
    chmod(p: string, m: number): Promise<unknown>;
    chown(p: string, u: number, g: number): Promise<unknown>;
    utimes(p: string, a: number, m: number): Promise<unknown>;
    unlink(p: string): Promise<unknown>;
    rmdir(p: string): Promise<unknown>;
    readFile(p: string, e: 'utf8'): Promise<unknown>;
    readdir(p: string): Promise<string[]>;
    readlink(p: string): Promise<unknown>;
    mkdir(p: string): Promise<unknown>;
    rm(p: string, o: { recursive: boolean }): Promise<unknown>;
    rename(a: string, b: string): Promise<unknown>;
    link(a: string, b: string): Promise<unknown>;
    symlink(t: string, p: string): Promise<unknown>;
  };
  setxattr(p: string, name: string, value: string): Promise<unknown>;
  path(p: string): string;
}

/**
 * Whether `op` renames or links a symlink whose target climbs (`../`) to the top level, where it would
 * point above the root: the kernel, driven from outside its mount, resolves that on the host, while a
 * container (and strata) stays at its root. Out of scope, like the targets `targetArb` never generates;
 * such ops are skipped on both sides.
 */
async function bringsClimbingLinkToTop(op: Op, mount: string): Promise<boolean> {
  if ((op.op !== 'rename' && op.op !== 'link') || op.to.includes('/')) return false;
  const target = await bytesFs.readlink(join(mount, op.path)).catch(() => undefined);
  return target !== undefined && target.startsWith('../');
}

async function run(target: Target, op: Op): Promise<Outcome> {
  const p = target.path(op.path);
  try {
    let value: unknown;
    switch (op.op) {
      case 'writeFile': await target.fs.writeFile(p, op.data); break;
      case 'appendFile': await target.fs.appendFile(p, op.data); break;
      case 'truncate': await target.fs.truncate(p, op.length); break;
      case 'chmod': await target.fs.chmod(p, op.mode); break;
      case 'chown': await target.fs.chown(p, op.uid, op.gid); break;
      case 'utimes': await target.fs.utimes(p, op.time, op.time); break;
      case 'unlink': await target.fs.unlink(p); break;
      case 'rmdir': await target.fs.rmdir(p); break;
      case 'readFile': value = await target.fs.readFile(p, 'utf8'); break;
      case 'readdir': value = [...(await target.fs.readdir(p))].sort(); break;
      case 'readlink': value = await target.fs.readlink(p); break;
      case 'mkdir': await target.fs.mkdir(p); break;
      case 'rm': await target.fs.rm(p, { recursive: op.recursive }); break;
      case 'rename': await target.fs.rename(p, target.path(op.to)); break;
      case 'link': await target.fs.link(p, target.path(op.to)); break;
      case 'symlink': await target.fs.symlink(op.target, p); break;
      case 'setxattr': await target.setxattr(p, op.name, op.value); break;
    }
    return value === undefined ? { ok: true } : { ok: true, value };
  } catch (error) {
    return { ok: false, code: String((error as NodeJS.ErrnoException).code) };
  }
}

/** The picture of a merged view through strata, in the snapshot format (link counts left out; times only with `times`). */
async function snapshotLayer(layer: WritableLayer, times = false): Promise<Map<string, NodeRecord>> {
  const out = new Map<string, NodeRecord>();
  for (const node of layer.view.walk()) {
    const st = layer.view.stat(node.path)!;
    const record: NodeRecord = { type: st.type, mode: st.mode, uid: st.uid, gid: st.gid };
    if (times) record.mtimeNs = (BigInt(st.mtime.sec) * 1_000_000_000n + BigInt(st.mtime.nsec)).toString();
    if (st.type === 'file') {
      record.size = st.size;
      const data = (await layer.readFile(node.path)) as Buffer;
      record.sha256 = createHash('sha256').update(data).digest('hex');
    }
    if (st.type === 'symlink') record.linkname = st.linkname!;
    const xattrs = [...st.xattrs].filter(([n]) => !n.includes('overlay.'));
    if (xattrs.length > 0) record.xattrs = Object.fromEntries(xattrs.sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, v]) => [n, Buffer.from(v).toString('hex')]));
    out.set(node.path, record);
  }
  return out;
}

function stripForMergedCompare(map: Map<string, NodeRecord>): Map<string, NodeRecord> {
  for (const r of map.values()) {
    delete r.linkGroup;
    delete r.mtimeNs;
  }
  return map;
}

/** Upper directories compared on what a layer diff would see: whiteouts, opaque markers, copied-up entries. */
function upperPicture(dir: string, namespace: string): Map<string, NodeRecord> {
  const map = snapshotTree(dir, { ignoreMtime: true, ignoreXattr: (n) => n.includes('overlay.') && n !== `${namespace}.overlay.opaque` });
  for (const r of map.values()) delete r.linkGroup; // the kernel shares one inode among its whiteouts
  return map;
}

export interface DiffResult {
  opMismatches: string[];
  mergedMismatches: string[];
  upperMismatches: string[];
}

/**
 * Runs `ops` on both sides. `lowers: 'dirs' | 'tars'` chooses strata's lower sources (the kernel always
 * mounts the directories).
 */
/** What `differential` hands to its `after` hook, while everything still exists. */
export interface DifferentialContext {
  stack: Stack;
  kernelUpper: string;
  ourUpper: string;
  lowers: LayerTree[];
  /** The kernel's merged view, as `mergedPicture` draws it. */
  kernelMerged: Map<string, NodeRecord>;
  /** The kernel's merged view with every mtime, directories' included (`timedPicture`). */
  kernelTimed: Map<string, NodeRecord>;
  /** Strata's merged view with every mtime. */
  oursTimed: Map<string, NodeRecord>;
}

/** The picture used to compare trees with their times: mtimes of every entry, no link groups, no overlay xattrs. */
export function timedPicture(dir: string): Map<string, NodeRecord> {
  const map = snapshotTree(dir, { skipVanished: true, ignoreXattr: (n) => n.includes('overlay.') });
  for (const r of map.values()) delete r.linkGroup;
  return map;
}

/** The picture used to compare merged views: no times, no link groups, no overlay xattrs. */
export function mergedPicture(dir: string): Map<string, NodeRecord> {
  return stripForMergedCompare(snapshotTree(dir, { ignoreMtime: true, skipVanished: true, ignoreXattr: (n) => n.includes('overlay.') }));
}

/** The tarball `tar` compressed by GNU gzip, beside it: a layer TarLayer reads from its rewritten copy. */
function gzipped(tar: string): string {
  writeFileSync(`${tar}.gz`, execFileSync('gzip', ['-c', tar], { maxBuffer: 1 << 30 }));
  return `${tar}.gz`;
}

export async function differential(
  base: LayerSpec[],
  ops: Op[],
  options: { lowers: 'dirs' | 'tars' | 'gzip tars'; namespace: 'trusted' | 'user'; after?: (context: DifferentialContext) => Promise<void> },
): Promise<DiffResult> {
  const stack = await buildStack(base, options.namespace);
  const kernelUpper = join(stack.dir, 'k-upper');
  const work = join(stack.dir, 'k-work');
  const mount = join(stack.dir, 'merged');
  const ourUpper = join(stack.dir, 's-upper');
  for (const d of [kernelUpper, work, mount, ourUpper]) mkdirSync(d);
  const lowerdir = [...stack.lowerDirs].reverse().join(':');
  // userxattr implies redirect_dir=nofollow (the kernel refuses it next to redirect_dir=off); both refuse
  // to rename a directory with lower parts, which is what strata matches.
  const semantics = options.namespace === 'user' ? 'userxattr' : 'redirect_dir=off';
  const mountOptions = `lowerdir=${lowerdir},upperdir=${kernelUpper},workdir=${work},index=off,metacopy=off,${semantics}`;
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', mountOptions, mount]);
  const lowers: LayerTree[] = [];
  try {
    if (options.lowers === 'dirs') lowers.push(...stack.lowerDirs.map((d) => new HostLayer(d, { xattrNamespace: options.namespace })));
    else lowers.push(...(await Promise.all(stack.tarPaths.map((t) => TarLayer.open(options.lowers === 'tars' ? t : gzipped(t))))));
    const layer = new WritableLayer(lowers, ourUpper, { xattrNamespace: options.namespace });
    // A deliberate difference: in a directory the kernel does not merge, it lists whiteouts that lookup then
    // cannot find; strata never lists them. Names that vanish on lstat are dropped from the kernel's listings.
    const kernelFs = {
      ...bytesFs,
      readdir: async (p: string) => {
        const names = await bytesFs.readdir(p);
        const kept: string[] = [];
        for (const name of names) if ((await bytesFs.lstat(join(p, name)).catch(() => undefined)) !== undefined) kept.push(name);
        return kept;
      },
    };
    const kernel: Target = {
      fs: kernelFs as unknown as Target['fs'],
      setxattr: async (p, n, v) => setXattr(p, n, Buffer.from(v)),
      path: (p) => join(mount, p),
    };
    const ours: Target = {
      fs: layer as unknown as Target['fs'],
      setxattr: (p, n, v) => layer.setxattr(p, n, v),
      path: (p) => `/${p}`,
    };
    const opMismatches: string[] = [];
    for (const [i, op] of ops.entries()) {
      if (await bringsClimbingLinkToTop(op, mount)) continue;
      const want = await run(kernel, op);
      const got = await run(ours, op);
      if (JSON.stringify(want) !== JSON.stringify(got)) opMismatches.push(`op ${i} ${JSON.stringify(op)}: kernel ${JSON.stringify(want)} strata ${JSON.stringify(got)}`);
    }
    const merged = mergedPicture(mount);
    const kernelTimed = timedPicture(mount);
    const ourMerged = await snapshotLayer(layer);
    const oursTimed = await snapshotLayer(layer, true);
    const mergedMismatches = diffMaps(merged, ourMerged);
    execFileSync('umount', [mount]);
    const upperMismatches = diffMaps(upperPicture(kernelUpper, options.namespace), upperPicture(ourUpper, options.namespace));
    await options.after?.({ stack, kernelUpper, ourUpper, lowers, kernelMerged: merged, kernelTimed, oursTimed });
    return { opMismatches, mergedMismatches, upperMismatches };
  } finally {
    for (const lower of lowers) if (lower instanceof TarLayer) lower.close();
    try {
      execFileSync('umount', [mount], { stdio: 'ignore' });
    } catch {
      // already unmounted
    }
    rmSync(stack.dir, { recursive: true, force: true });
  }
}

export function diffMaps(want: Map<string, NodeRecord>, got: Map<string, NodeRecord>): string[] {
  const out: string[] = [];
  for (const [p, w] of want) {
    const g = got.get(p);
    if (!g) out.push(`missing ${p} ${JSON.stringify(w)}`);
    else if (JSON.stringify(w) !== JSON.stringify(g)) out.push(`differs ${p}: kernel ${JSON.stringify(w)} strata ${JSON.stringify(g)}`);
  }
  for (const [p, g] of got) if (!want.has(p)) out.push(`extra ${p} ${JSON.stringify(g)}`);
  return out;
}

