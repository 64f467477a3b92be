/**
 * Durability: a layer written `durable`, and every layer a commit puts in the content store, is on disk
 * (fdatasync) before it is renamed into place, and a commit's layer before the metadata that records it.
 * Nothing here can crash the machine, so the system calls are the evidence: the writes run in a child
 * process under strace, and the order of its fdatasync and rename calls is checked.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, layer, layoutFiles, named, writeDirectory } from './helpers/images.js';
import { needs } from './helpers/oracle.js';

/** One traced call: its name, and the paths it names (fd paths as strace -y prints them). */
interface Call {
  name: string;
  paths: string[];
}

/** Runs `script` (an ES module, `args` as process.argv[1..]) under strace; its fdatasync, fsync and renames in order. */
function traced(work: string, script: string, args: string[]): Call[] {
  const log = join(work, `strace-${Date.now()}.log`);
  const run = spawnSync(
    'strace',
    ['-f', '-qq', '-y', '-o', log, '-e', 'trace=fdatasync,fsync,rename,renameat,renameat2', process.execPath, '--input-type=module', '-e', script, ...args],
    { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } },
  );
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const calls: Call[] = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const match = /^\d+\s+(\w+)\((.*)\)\s+=\s+0/.exec(line);
    if (!match) continue;
    calls.push({ name: match[1]!, paths: [...match[2]!.matchAll(/<([^>]*)>|"([^"]*)"/g)].map((m) => m[1] ?? m[2]!) });
  }
  return calls;
}

const isSync = (c: Call) => c.name === 'fdatasync' || c.name === 'fsync';
const isRename = (c: Call) => c.name.startsWith('rename');

describe.skipIf(!needs('strace'))('durable layers', () => {
  let work: string;
  let tree: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-durable-'));
    tree = join(work, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'small'), 'hello\n');
    // Large enough for the writing thread's kernel copy and for more than one writeback step.
    writeFileSync(join(tree, 'big'), Buffer.alloc(20 * 1024 * 1024, 7));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const pack = `import { packDirectory } from '@strata/core';
await packDirectory(process.argv[1], process.argv[2], { compression: process.argv[3], durable: process.argv[4] === 'durable' });`;

  for (const compression of ['none', 'gzip'] as const) {
    it(`a ${compression} layer written durable is synced before its rename into place, and not otherwise`, () => {
      const out = join(work, `layer-${compression}.tar`);
      const calls = traced(work, pack, [tree, out, compression, 'durable']);
      const renamed = calls.findIndex((c) => isRename(c) && c.paths[1] === out);
      expect(renamed).toBeGreaterThan(0);
      const temporary = calls[renamed]!.paths[0]!;
      const synced = calls.findIndex((c) => isSync(c) && c.paths[0] === temporary);
      expect(synced).toBeGreaterThanOrEqual(0);
      expect(synced).toBeLessThan(renamed);

      rmSync(out);
      const plain = traced(work, pack, [tree, out, compression, 'plain']);
      expect(plain.some((c) => isRename(c) && c.paths[1] === out)).toBe(true);
      expect(plain.filter(isSync)).toEqual([]);
    });
  }

  it.skipIf(!needs('root', 'overlay'))('a commit syncs its layer before publishing it, and before the metadata records it', () => {
    const built = buildImage({ layers: [layer({ 'etc/base': 'base\n' })] });
    const layout = writeDirectory(join(work, 'layout'), layoutFiles(built.blobs, [named(built.manifestDescriptor, 'example.com/base:1')]));
    const script = `import { openImages } from '@strata/images';
import { cpSync } from 'node:fs';
const [root, layout, tree] = process.argv.slice(1);
const images = await openImages(root);
try {
  await images.import(layout, { name: 'example.com/base:1' });
  await images.createContainer('example.com/base:1', 'c1');
  const mounts = await images.snapshotter.mounts('container-c1');
  const upper = mounts[0].options.find((o) => o.startsWith('upperdir=')).slice('upperdir='.length);
  cpSync(tree, upper, { recursive: true });
  await images.commit('c1', 'example.com/base:2', { compression: 'none' });
} finally {
  await images.close();
}`;
    const calls = traced(work, script, [join(work, 'images-root'), layout, tree]);
    // The commit's layer: the one blob published from a temporary file of the store (imports come from ingests).
    const published = calls.findIndex((c) => isRename(c) && /\/content\/blobs\/sha256\/[0-9a-f]{64}$/.test(c.paths[1]!) && /\/tmp-[^/]*$/.test(c.paths[0]!));
    expect(published).toBeGreaterThan(0);
    const temporary = calls[published]!.paths[0]!;
    const synced = calls.findIndex((c) => isSync(c) && c.paths[0] === temporary);
    expect(synced).toBeGreaterThanOrEqual(0);
    expect(synced).toBeLessThan(published);
    // The transaction that records the blob commits (syncs the database) after the rename, not before.
    const recorded = calls.findIndex((c, i) => i > published && isSync(c) && /metadata\.db$/.test(c.paths[0] ?? ''));
    expect(recorded).toBeGreaterThan(published);
  });
});
