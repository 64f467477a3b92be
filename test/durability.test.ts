/**
 * Durability: a layer written `durable`, every blob a commit publishes (layer, config, manifest) and every
 * ingest is on disk (fdatasync) before it is renamed into place, and before the metadata that records it;
 * writeback starts behind the writing. Nothing here can crash the machine, so the system calls are the
 * evidence: the writes run in a child process under strace, and the order of its calls is checked.
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

/**
 * Runs `script` (an ES module, `args` as process.argv[1..]) under strace; its fdatasync, fsync and renames
 * (and the `more` calls) in order.
 */
function traced(work: string, script: string, args: string[], more: string[] = []): Call[] {
  const log = join(work, `strace-${Date.now()}.log`);
  const trace = ['fdatasync', 'fsync', 'rename', 'renameat', 'renameat2', ...more].join(',');
  const run = spawnSync(
    'strace',
    ['-f', '-qq', '-y', '-o', log, '-e', `trace=${trace}`, process.execPath, '--input-type=module', '-e', script, ...args],
    { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } },
  );
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const calls: Call[] = [];
  const paths = (args: string) => [...args.matchAll(/<([^>]*)>|"([^"]*)"/g)].map((m) => m[1] ?? m[2]!);
  // A call another thread interrupts is split in two lines; it counts where it returned.
  const unfinished = new Map<string, Call>();
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const whole = /^\d+\s+(\w+)\((.*)\)\s+=\s+0/.exec(line);
    const started = /^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>$/.exec(line);
    const resumed = /^(\d+)\s+<\.\.\. \w+ resumed>.*\)\s+=\s+0/.exec(line);
    if (whole) calls.push({ name: whole[1]!, paths: paths(whole[2]!) });
    else if (started) unfinished.set(started[1]!, { name: started[2]!, paths: paths(started[3]!) });
    else if (resumed && unfinished.has(resumed[1]!)) {
      calls.push(unfinished.get(resumed[1]!)!);
      unfinished.delete(resumed[1]!);
    }
  }
  return calls;
}

const isSync = (c: Call) => c.name === 'fdatasync' || c.name === 'fsync';
const isRename = (c: Call) => c.name.startsWith('rename');
const BLOB = /\/content\/blobs\/sha256\/[0-9a-f]{64}$/;

/**
 * The first rename whose source and destination match, checked to come after a sync of its source: where
 * both are in `calls`, and the source's path.
 */
function syncedThenRenamed(calls: Call[], from: (path: string) => boolean, to: (path: string) => boolean): { renamed: number; synced: number; file: string } {
  const renamed = calls.findIndex((c) => isRename(c) && from(c.paths[0]!) && to(c.paths[1]!));
  expect(renamed).toBeGreaterThan(0);
  const file = calls[renamed]!.paths[0]!;
  const synced = calls.findIndex((c) => isSync(c) && c.paths[0] === file);
  expect(synced).toBeGreaterThanOrEqual(0);
  expect(synced).toBeLessThan(renamed);
  return { renamed, synced, file };
}

/** Writeback started on `file` before call `before`. */
const writebacks = (calls: Call[], file: string, before: number) => calls.filter((c, i) => c.name === 'sync_file_range' && c.paths[0] === file && i < before);

describe.skipIf(!needs('strace'))('durable blobs', () => {
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
      const calls = traced(work, pack, [tree, out, compression, 'durable'], ['sync_file_range']);
      const { synced, file } = syncedThenRenamed(calls, () => true, (to) => to === out);
      // The layer writer (uncompressed) starts writeback behind itself, every 8 MiB it writes.
      expect(writebacks(calls, file, synced).length > 0).toBe(compression === 'none');

      rmSync(out);
      const plain = traced(work, pack, [tree, out, compression, 'plain']);
      expect(plain.some((c) => isRename(c) && c.paths[1] === out)).toBe(true);
      expect(plain.filter(isSync)).toEqual([]);
    });
  }

  it('an ingest starts writeback as it writes, and syncs the blob before publishing it', () => {
    const script = `import { openImages } from '@strata/images';
import { randomBytes } from 'node:crypto';
const images = await openImages(process.argv[1], { driver: 'userspace' });
try {
  const writer = images.content.writer('pull:big');
  for (let i = 0; i < 20; i++) await writer.write(randomBytes(1024 * 1024));
  await writer.commit();
} finally {
  await images.close();
}`;
    const calls = traced(work, script, [join(work, 'ingest-root')], ['sync_file_range']);
    const { synced, file } = syncedThenRenamed(calls, () => true, (to) => BLOB.test(to));
    // 20 MiB in 1 MiB writes: writeback started at 8 and 16 MiB, before the sync.
    expect(writebacks(calls, file, synced)).toHaveLength(2);
  });

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
    // What the commit publishes comes from temporary files of the store (an import's blobs from ingests):
    // its layer, then its config and manifest. Each is synced before its rename, and the transaction that
    // records it commits (syncs the database) after the rename, not before.
    const published = calls.flatMap((c, i) => (isRename(c) && /\/tmp-[^/]*$/.test(c.paths[0]!) && BLOB.test(c.paths[1]!) ? [c.paths[0]!] : []));
    expect(published).toHaveLength(3);
    for (const file of published) {
      const { renamed } = syncedThenRenamed(calls, (from) => from === file, (to) => BLOB.test(to));
      const recorded = calls.findIndex((c, i) => i > renamed && isSync(c) && /metadata\.db$/.test(c.paths[0] ?? ''));
      expect(recorded).toBeGreaterThan(renamed);
    }
  });
});
