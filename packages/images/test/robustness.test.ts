/**
 * Imports, unpacks and collections from several processes at once, and killed: a killed import publishes
 * nothing and leaves ingests the next run resumes; a collection running during an import takes nothing
 * the import needs (its lease holds it); two unpacks of images that share a base both succeed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainID } from '@strata/core';
import { openImages } from '../src/index.js';
import { buildImage, layer, layoutFiles, named, writeArchive, writeDirectory } from '../../../test/helpers/images.js';
import { rawTar } from '../../../test/helpers/raw-tar.js';

const WORKER = join(import.meta.dirname, 'fixtures', 'worker.mjs');

interface Event {
  progress?: number;
  done?: Record<string, unknown>;
  error?: string;
  message?: string;
}

/** Runs the worker; `onEvent` may kill it. Resolves with its events and exit status. */
function work(args: string[], onEvent: (event: Event, kill: () => void) => void = () => {}): Promise<{ events: Event[]; code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const events: Event[] = [];
    createInterface({ input: child.stdout }).on('line', (line) => {
      const event = JSON.parse(line) as Event;
      events.push(event);
      onEvent(event, () => child.kill('SIGKILL'));
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ events, code, signal }));
  });
}

describe('images from several processes, and killed', () => {
  let dir: string;
  let big: string;
  let bigImage: ReturnType<typeof buildImage>;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'strata-images-robust-'));
    // An image with one large, incompressible, uncompressed layer: an import of it takes long enough to be caught mid-way.
    bigImage = buildImage({ layers: [rawTar([{ name: 'data', data: randomBytes(96 * 1024 * 1024) }]), layer({ 'etc/': '', 'etc/x': 'y\n' })], gzip: false });
    big = writeArchive(join(dir, 'big.tar'), layoutFiles(bigImage.blobs, [named(bigImage.manifestDescriptor, 'example.com/big:1')]));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a killed import publishes nothing and leaves ingests that the next run resumes', async () => {
    const root = join(dir, 'killed');
    const run = await work(['import', root, big], (event, kill) => {
      if ((event.progress ?? 0) > 32 * 1024 * 1024) kill();
    });
    expect(run.signal).toBe('SIGKILL');
    const images = await openImages(root);
    try {
      expect(images.list()).toEqual([]);
      expect(images.content.digests()).toEqual([]); // nothing published
      const ingests = images.content.ingests();
      expect(ingests.length).toBeGreaterThan(0);
      expect(ingests.some((i) => i.offset > 0 && !i.locked)).toBe(true);
      // The dead import's lease still holds its ingests against collection.
      expect(images.leases.list()).toHaveLength(1);
      expect((await images.gc()).ingests).toBe(0);
      const again = await images.import(big);
      expect(again.images.map((i) => i.name)).toEqual(['example.com/big:1']);
      expect(again.resumed).toBeGreaterThan(16 * 1024 * 1024);
      expect(images.content.ingests()).toEqual([]);
      expect((await images.fsck({ content: true })).ok).toBe(true);
    } finally {
      await images.close();
    }
  });

  it('a collection running during an import takes nothing the import needs', async () => {
    const root = join(dir, 'concurrent-gc');
    spawnSync(process.execPath, [WORKER, 'gc', root, '0']); // make the root
    const [imported, collected] = await Promise.all([work(['import', root, big]), work(['gc', root, '3'])]);
    expect(imported.events.at(-1)).toMatchObject({ done: { images: ['example.com/big:1'] } });
    expect(collected.code).toBe(0);
    expect((collected.events.at(-1)!.done as { runs: number }).runs).toBeGreaterThan(1);
    const images = await openImages(root);
    try {
      expect((await images.gc()).blobs).toEqual([]);
      const report = await images.fsck({ content: true });
      expect(report.problems).toEqual([]);
      expect(report.blobs).toBe(bigImage.blobs.size);
    } finally {
      await images.close();
    }
  });

  it('two unpacks of images that share a base, in two processes at once, both succeed', async () => {
    const root = join(dir, 'two-unpacks');
    const base = rawTar([{ name: 'base.bin', data: randomBytes(8 * 1024 * 1024) }]);
    const one = buildImage({ layers: [base, layer({ 'one/': '' })] });
    const two = buildImage({ layers: [base, layer({ 'two/': '' })] });
    const layout = writeDirectory(join(dir, 'two-layout'), layoutFiles(new Map([...one.blobs, ...two.blobs]), [named(one.manifestDescriptor, 'example.com/one:1'), named(two.manifestDescriptor, 'example.com/two:1')]));
    const images = await openImages(root);
    try {
      await images.import(layout);
    } finally {
      await images.close();
    }
    for (let round = 0; round < 3; round++) {
      const runs = await Promise.all([work(['unpack', root, 'example.com/one:1']), work(['unpack', root, 'example.com/two:1'])]);
      for (const r of runs) expect(r.events.at(-1)).toHaveProperty('done');
      const check = await openImages(root);
      try {
        const keys: string[] = [];
        await check.snapshotter.walk((info) => void keys.push(`${info.kind} ${info.name}`));
        expect(keys.sort()).toEqual([chainID([one.diffIDs[0]!]), chainID(one.diffIDs), chainID(two.diffIDs)].map((k) => `committed ${k}`).sort());
        expect((await check.fsck()).ok).toBe(true);
        // Start the next round from nothing unpacked.
        check.removeImages(['example.com/one:1', 'example.com/two:1']);
        await check.gc();
        await check.import(layout);
      } finally {
        await check.close();
      }
    }
  });
});
