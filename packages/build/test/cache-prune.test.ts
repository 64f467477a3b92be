/**
 * `BuildCache.prune` as `docker builder prune` chooses what goes: all, those unused since a time, and with
 * `keepBytes` (`--keep-storage`) the least recently used records and cache mounts only until what is left
 * fits, a layer blob or snapshot two records share counted once.
 */
import { existsSync, mkdirSync, statfsSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diskUsage, packDirectory, type LayerDescriptor } from '@strata/core';
import { imagesRoot } from '../../images/test/helpers.js';
import { cacheMountsDir } from '../src/cache-mounts.js';
import { BuildCache, bytesToKeep } from '../src/index.js';

const layer = (n: number, size: number): LayerDescriptor => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${String(n).repeat(64)}`, size, diffID: `sha256:${String(n).repeat(64)}`, uncompressedSize: size, compression: 'none' });

describe('build cache prune', () => {
  const root = imagesRoot('strata-cache-prune-');

  /** Records a..e, used in that order (a longest ago), sizes 100..500 (times `unit`); d shares b's layer. */
  function records(cache: BuildCache, unit = 1): void {
    const now = Date.now();
    const table = [
      ['a', layer(1, 100 * unit)],
      ['b', layer(2, 200 * unit)],
      ['c', layer(3, 300 * unit)],
      ['d', layer(2, 200 * unit)],
      ['e', layer(5, 500 * unit)],
    ] as const;
    table.forEach(([key, l]) => cache.put(key, { snapshot: `snap-${key}`, layer: l, step: `RUN ${key}` }));
    // Used in order, an hour apart, the last an hour ago.
    const metadata = root.images.root.metadata;
    const stored = metadata.table<Record<string, unknown>>('build-cache');
    metadata.transaction(() => table.forEach(([key], i) => stored.put(key, { ...stored.get(key)!, used: now - (table.length - i) * 3600_000 })));
  }

  it('deletes the least recently used only until the rest fits, a shared layer counted once', async () => {
    const cache = new BuildCache(root.images);
    records(cache);
    // Layers: 100 + 200 + 300 + 500 = 1100 bytes (b and d share one).
    expect(await cache.prune({ keepBytes: 2000 })).toEqual([]);
    // a goes (1000 left, not yet 900); b goes but its layer stays for d; c goes (700).
    expect(await cache.prune({ keepBytes: 900 })).toEqual(['a', 'b', 'c']);
    expect(cache.list().map((r) => r.key)).toEqual(['e', 'd']);
    // Only records unused since `before` are candidates: d is, e is not.
    expect(await cache.prune({ keepBytes: 0, before: new Date(Date.now() - 90 * 60_000) })).toEqual(['d']);
    expect(cache.list().map((r) => r.key)).toEqual(['e']);
  });

  it('deletes all, or those unused since a time, without a size', async () => {
    const cache = new BuildCache(root.images);
    records(cache);
    expect(await cache.prune({ before: new Date(Date.now() - 150 * 60_000) })).toEqual(['a', 'b', 'c']);
    expect(await cache.prune()).toEqual(['d', 'e']);
    expect(cache.list()).toEqual([]);
  });

  it('takes cache mounts in the same order, by when a step last had them, and leaves a held one; sizes both for df', async () => {
    const cache = new BuildCache(root.images);
    records(cache);
    const dir = cacheMountsDir(root.images);
    const mount = (name: string, hoursAgo: number) => {
      mkdirSync(join(dir, name), { recursive: true });
      writeFileSync(join(dir, name, 'data'), 'x'.repeat(10_000));
      writeFileSync(join(dir, `${name}.used`), '');
      const at = (Date.now() - hoursAgo * 3600_000) / 1000;
      utimesSync(join(dir, `${name}.used`), at, at);
      return diskUsage(join(dir, name)).size;
    };
    const older = mount('older', 4.5); // between a and b
    mount('held', 6); // the oldest, but a live build holds it
    writeFileSync(join(dir, `held.use-${process.pid}-test`), String(process.pid));
    const held = diskUsage(join(dir, 'held')).size;
    // What df shows of it: five records (1100 bytes of layers), two mounts, the held one active.
    expect(await cache.usage()).toEqual({ total: 7, active: 1, size: 1100 + older + held, reclaimable: 1100 + older });
    // 1100 bytes of layers and the two mounts: a, then the older mount, go; the held one stays and counts.
    expect(await cache.prune({ keepBytes: 1000 + held })).toEqual(['a']);
    expect(existsSync(join(dir, 'older'))).toBe(false);
    expect(existsSync(join(dir, 'older.used'))).toBe(false);
    expect(existsSync(join(dir, 'held'))).toBe(true);
    expect(older).toBeGreaterThan(0);
    expect(cache.list().map((r) => r.key)).toEqual(['e', 'd', 'c', 'b']);
  });

  it('weighs a record by its layer blob and its snapshot, each counted once however many records hold them', async () => {
    const { images } = root;
    const tree = join(root.dir, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'data'), 'x'.repeat(100_000));
    await packDirectory(tree, join(root.dir, 'layer.tar'));
    await images.snapshotter.prepare('work', '');
    await images.snapshotter.applyLayer('work', join(root.dir, 'layer.tar'));
    await images.snapshotter.commit('snap-shared', 'work');
    const snapshot = (await images.snapshotter.usage('snap-shared')).size;
    expect(snapshot).toBeGreaterThanOrEqual(100_000);
    const cache = new BuildCache(images);
    // a and b: one step's record under two keys (one layer, one snapshot); c's snapshot is gone.
    cache.put('a', { snapshot: 'snap-shared', layer: layer(1, 5_000), step: 'RUN a' });
    cache.put('b', { snapshot: 'snap-shared', layer: layer(1, 5_000), step: 'RUN b' });
    cache.put('c', { snapshot: 'snap-gone', layer: layer(2, 300), step: 'RUN c' });
    const stored = images.root.metadata.table<Record<string, unknown>>('build-cache');
    const now = Date.now();
    images.root.metadata.transaction(() => ['a', 'b', 'c'].forEach((key, i) => stored.put(key, { ...stored.get(key)!, used: now - (3 - i) * 60_000 })));
    expect(await cache.usage()).toEqual({ total: 3, active: 0, size: 5_000 + snapshot + 300, reclaimable: 5_000 + snapshot + 300 });
    expect(await cache.sizes()).toEqual(new Map([['c', 300], ['b', 5_000 + snapshot], ['a', 5_000 + snapshot]]));
    // Deleting a frees nothing while b holds the same: both go before what is left fits.
    expect(await cache.prune({ keepBytes: 301 })).toEqual(['a', 'b']);
    expect((await cache.usage()).size).toBe(300);
  });

  it("works out what a size-bounded prune keeps as BuildKit does, and frees the disk down to --min-free-space", async () => {
    expect(bytesToKeep({ keepBytes: 100 }, 1000, 0)).toBe(100);
    expect(bytesToKeep({ minFreeSpace: 500 }, 1000, 800)).toBe(1000); // free enough: keep everything
    expect(bytesToKeep({ minFreeSpace: 500 }, 1000, 200)).toBe(700);
    expect(bytesToKeep({ keepBytes: 900, minFreeSpace: 500 }, 1000, 200)).toBe(700);
    expect(bytesToKeep({ keepBytes: 100, minFreeSpace: 500 }, 1000, 200)).toBe(100);
    expect(bytesToKeep({ minFreeSpace: 500, reservedSpace: 800 }, 1000, 0)).toBe(800);
    expect(bytesToKeep({ reservedSpace: 300 }, 1000, 0)).toBe(300);
    // Records of terabytes (sizes are only numbers here), so what else writes to the disk meanwhile cannot
    // move the outcome: 1.5 TB more free than there is leaves 9.5 of the 11 TB.
    const cache = new BuildCache(root.images);
    const tenGB = 1e10;
    records(cache, tenGB);
    const fs = statfsSync(root.images.root.path);
    expect(await cache.prune({ minFreeSpace: fs.bavail * fs.bsize + 150 * tenGB })).toEqual(['a', 'b', 'c']);
    expect(await cache.prune({ reservedSpace: 0 })).toEqual(['d', 'e']);
  });
});
