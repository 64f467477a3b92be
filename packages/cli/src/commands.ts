/**
 * The commands themselves, each printing its result to stdout.
 */
import { fstatSync, statSync } from 'node:fs';
import { print, printError, sanitize } from './format.js';
import { stdinPath } from './stdin.js';
import {
  applyLayer,
  cleanEntryName,
  diffTrees,
  diffUpper,
  digestLayer,
  flatten,
  HostLayer,
  writeChanges,
  type LayerDescriptor,
  mergedListing,
  MergedView,
  NotFoundError,
  packDirectory,
  TarLayer,
  type ByteInput,
  type Compression,
  type Entry,
  type LayerTree,
  type NodeStat,
} from '@strata/core';

function warn(message: string, path: string): void {
  printError(`strata: warning: ${sanitize(path)}: ${sanitize(message)}\n`);
}

/** A layer argument: `-` is stdin, as tar's `-f -`. */
function layerInput(layer: string): ByteInput {
  return layer === '-' ? (stdinPath() ?? process.stdin) : layer;
}

/** `strata apply`: prints the applied layer's diffID. */
export async function runApply(layer: string, dir: string, options: { format: 'plain' | 'overlay'; userxattr: boolean; devices?: 'create' | 'skip' | 'refuse'; owners?: 'apply' | 'record' | 'xattr' }): Promise<void> {
  const result = await applyLayer(layerInput(layer), dir, {
    layout: options.format,
    ...(options.userxattr ? { xattrNamespace: 'user' as const } : {}),
    ...(options.devices ? { devices: options.devices } : {}),
    ...(options.owners ? { owners: options.owners } : {}),
    onWarning: warn,
  });
  print(`${result.diffID}\n`);
}

/** `strata digest`: diffID, and for compressed input the blob's digest and size. */
export async function runDigest(layer: string): Promise<void> {
  const d = await digestLayer(layerInput(layer));
  let out = `diffID ${d.diffID}\n`;
  if (d.compression !== 'none') out += `digest ${d.digest}\nsize ${d.size}\ncompression ${d.compression}\n`;
  print(out);
}

const TYPE_CHARS: Record<Entry['type'], string> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  hardlink: 'h',
  char: 'c',
  block: 'b',
  fifo: 'p',
};

function modeString(entry: Entry): string {
  const m = entry.mode;
  const bit = (mask: number, c: string) => (m & mask ? c : '-');
  const exec = (x: number, special: number, on: string, off: string) => (m & special ? (m & x ? on : off) : m & x ? 'x' : '-');
  return (
    TYPE_CHARS[entry.type] +
    bit(0o400, 'r') + bit(0o200, 'w') + exec(0o100, 0o4000, 's', 'S') +
    bit(0o040, 'r') + bit(0o020, 'w') + exec(0o010, 0o2000, 's', 'S') +
    bit(0o004, 'r') + bit(0o002, 'w') + exec(0o001, 0o1000, 't', 'T')
  );
}

/** `strata ls`: the merged listing of layers applied in order. */
export async function runLs(layers: string[], json: boolean): Promise<void> {
  printEntries(await mergedListing(layers), json);
}

/** Where a layer goes and how. */
export interface WriteTarget {
  output: string;
  compression: Compression;
  sourceDateEpoch: number | undefined;
}

const writeOptions = (t: WriteTarget) => ({ compression: t.compression, ...(t.sourceDateEpoch !== undefined ? { sourceDateEpoch: t.sourceDateEpoch } : {}) });

/** Prints a written layer's descriptor: on stdout, or on stderr when the layer itself went to stdout (`-o /dev/stdout`). */
function printDescriptor(d: LayerDescriptor, output: string): void {
  const stdout = fstatSync(1);
  const written = statSync(output, { throwIfNoEntry: false });
  const toStdout = written !== undefined && written.dev === stdout.dev && written.ino === stdout.ino;
  const descriptor = `diffID ${d.diffID}\ndigest ${d.digest}\nsize ${d.size}\n`;
  if (toStdout) printError(descriptor);
  else print(descriptor);
}

/** A layer source: a directory, or a layer tarball (plain, gzip or zstd). */
async function openTree(source: string, xattrNamespace: 'trusted' | 'user'): Promise<LayerTree> {
  return statSync(source).isDirectory() ? new HostLayer(source, { xattrNamespace }) : TarLayer.open(source);
}

/** Runs `use` on `sources` opened as trees, then lets go of what they hold (a compressed tarball's decompressed copy). */
async function withTrees<T>(sources: string[], xattrNamespace: 'trusted' | 'user', use: (trees: LayerTree[]) => Promise<T>): Promise<T> {
  const opened = await Promise.allSettled(sources.map((source) => openTree(source, xattrNamespace)));
  const trees = opened.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  try {
    const failed = opened.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    return await use(trees);
  } finally {
    for (const tree of trees) if (tree instanceof TarLayer) tree.close();
  }
}

/** `strata diff --upper`: an overlay upper directory (strata's or the kernel's) as a layer. */
export async function runDiffUpper(upper: string, lowers: string[], userxattr: boolean, target: WriteTarget): Promise<void> {
  const xattrNamespace = userxattr ? 'user' : 'trusted';
  await withTrees(lowers, xattrNamespace, async (trees) => {
    printDescriptor(await writeChanges(diffUpper(trees, upper, { xattrNamespace, onWarning: warn }), target.output, writeOptions(target)), target.output);
  });
}

/** `strata diff --from --to`: the changes between two trees as a layer. */
export async function runDiffTrees(from: string, to: string, exact: boolean, target: WriteTarget): Promise<void> {
  await withTrees([from, to], 'trusted', async ([a, b]) => {
    printDescriptor(await writeChanges(diffTrees(new MergedView([a!]), new MergedView([b!]), { exact, onWarning: warn }), target.output, writeOptions(target)), target.output);
  });
}

/** `strata flatten`: layers (bottom first) folded into one. */
export async function runFlatten(layers: string[], target: WriteTarget): Promise<void> {
  printDescriptor(await flatten(layers, target.output, writeOptions(target)), target.output);
}

/** `strata ls --lower`: the merged view of lowers (directories or layer tarballs) and an optional upper. */
export async function runLsMerged(lowers: string[], upper: string | undefined, path: string, json: boolean, userxattr: boolean): Promise<void> {
  const xattrNamespace = userxattr ? 'user' : 'trusted';
  await withTrees(lowers, xattrNamespace, async (trees) => lsMerged(trees, upper, path, json, xattrNamespace));
}

/** Prints the merged view of `trees` (and `upper`) at `path`: the entry, or a directory's whole tree. */
function lsMerged(trees: LayerTree[], upper: string | undefined, path: string, json: boolean, xattrNamespace: 'trusted' | 'user'): void {
  const view = new MergedView(trees, upper === undefined ? undefined : new HostLayer(upper, { xattrNamespace }));
  const start = cleanEntryName(path);
  const node = view.lookup(start);
  if (!node) throw new NotFoundError(`no such path in the merged view: ${path}`, { path });
  const entries: Entry[] = [];
  const add = (st: NodeStat) => entries.push({ ...st, type: st.type === 'socket' ? 'fifo' : st.type });
  if (node.type !== 'directory') add(view.stat(start)!);
  else for (const child of view.walk(start)) add(view.stat(child.path)!);
  printEntries(entries, json);
}

/** A time as ISO 8601 to the second; times no Date can hold (beyond ±8.64e15 ms) as seconds. */
function isoTime(sec: number): string {
  const date = new Date(sec * 1000);
  return Number.isNaN(date.getTime()) ? `@${sec}` : date.toISOString().slice(0, 19);
}

function printEntries(entries: readonly Entry[], json: boolean): void {
  const lines: string[] = [];
  for (const e of entries) {
    const mtime = e.mtime.sec + e.mtime.nsec / 1e9;
    if (json) {
      lines.push(JSON.stringify({ path: e.path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, mtime, linkname: e.linkname ?? null }));
    } else {
      const link = e.type === 'symlink' ? ` -> ${sanitize(e.linkname!)}` : e.type === 'hardlink' ? ` link to ${sanitize(e.linkname!)}` : '';
      lines.push(`${modeString(e)} ${e.uid}/${e.gid} ${String(e.size).padStart(10)} ${isoTime(e.mtime.sec)} ${sanitize(e.path)}${link}`);
    }
  }
  print(lines.length > 0 ? `${lines.join('\n')}\n` : '');
}

/** `strata pack`: prints diffID, digest and size. */
export async function runPack(dir: string, output: string, compression: Compression, sourceDateEpoch: number | undefined): Promise<void> {
  printDescriptor(await packDirectory(dir, output, { ...writeOptions({ output, compression, sourceDateEpoch }), onWarning: warn }), output);
}
