import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { BufferPool, dropReserve, reservedBytes } from '../src/blob/buffer-pool.js';
import { applyLayer, packDirectory } from '../src/index.js';

const MiB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'strata-pool-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => {
  dropReserve();
  vi.useRealTimers();
});

/** True when transparent huge pages back all anonymous memory (not only what asks for them). */
function hugePagesAlways(): boolean {
  try {
    return readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').includes('[always]');
  } catch {
    return false;
  }
}

/** A pool of `size` that has handed out `count` buffers and had them all back. */
function usedPool(size: number, count: number): { pool: BufferPool; buffers: ArrayBufferLike[] } {
  const pool = new BufferPool(size);
  const taken = Array.from({ length: count }, () => pool.take());
  for (const buffer of taken) pool.giveBack(buffer);
  return { pool, buffers: taken.map((buffer) => buffer.buffer) };
}

describe('buffer pools', () => {
  it('a retired pool hands its free buffers to the next pool of its size, and only of its size', () => {
    const { pool, buffers } = usedPool(MiB, 3);
    pool.retire();
    expect(reservedBytes()).toBe(3 * MiB);
    expect(buffers).not.toContain(new BufferPool(256 * 1024).take().buffer);
    const next = new BufferPool(MiB);
    const reused = [next.take(), next.take(), next.take()].map((buffer) => buffer.buffer);
    expect(new Set(reused)).toEqual(new Set(buffers));
    expect(reservedBytes()).toBe(0);
    expect(buffers).not.toContain(next.take().buffer); // the reserve is empty: a new one
    // What the retired pool is given afterwards stays with it: the reserve does not hand a buffer out twice.
    pool.give(reused[0] as ArrayBuffer);
    expect(reservedBytes()).toBe(0);
  });

  it('the reserve holds at most 16 MiB, and lets go of it after 5 idle seconds', () => {
    vi.useFakeTimers();
    usedPool(MiB, 20).pool.retire();
    expect(reservedBytes()).toBe(16 * MiB);
    vi.advanceTimersByTime(4000);
    usedPool(256 * 1024, 4).pool.retire(); // a pool finishing keeps the reserve for another 5 s (it is full)
    expect(reservedBytes()).toBe(16 * MiB);
    vi.advanceTimersByTime(4000);
    expect(reservedBytes()).toBe(16 * MiB);
    vi.advanceTimersByTime(1000);
    expect(reservedBytes()).toBe(0);
  });

  it('a pool buffer is in memory from the start and stays so across a fork: writing it takes no page faults', () => {
    // Node starts a child process by forking: every private page of the parent is then write-protected, and
    // the next write to each takes a fault (a copy-on-write one). A pool's buffers are left out of the child.
    const faultsWriting = (bytes: Uint8Array) => {
      const before = process.resourceUsage().minorPageFault;
      bytes.fill(7);
      return process.resourceUsage().minorPageFault - before;
    };
    const pages = MiB / 4096;
    const pooled = new BufferPool(MiB).take();
    const plain = Buffer.allocUnsafeSlow(MiB);
    expect(faultsWriting(pooled)).toBeLessThan(pages / 8);
    faultsWriting(plain);
    expect(spawnSync('true').status).toBe(0);
    // The measure sees what it looks for: the same write to memory from the allocator faults on every page
    // (once per huge page where the kernel backs all memory with them).
    const plainFaults = faultsWriting(plain);
    if (!hugePagesAlways()) expect(plainFaults).toBeGreaterThanOrEqual(pages * 0.9);
    expect(faultsWriting(pooled)).toBeLessThan(pages / 8);
    expect(pooled.every((byte) => byte === 7)).toBe(true);
  });

  it('layers read and written one after another reuse each other\'s buffers and stay intact', async () => {
    const tree = join(work, 'tree');
    mkdirSync(join(tree, 'd'), { recursive: true });
    const big = randomBytes(12 * MiB); // past the size hashed on a thread, which hands buffers back
    writeFileSync(join(tree, 'big'), big);
    for (let i = 0; i < 200; i++) writeFileSync(join(tree, 'd', `f${i}`), `small ${i}\n`);
    const layer = join(work, 'layer.tar');
    const packed = await packDirectory(tree, layer);
    const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    for (let round = 0; round < 3; round++) {
      const target = join(work, `target-${round}`);
      const applied = await applyLayer(layer, target);
      expect(applied.diffID).toBe(packed.diffID);
      expect(sha(readFileSync(join(target, 'big')))).toBe(sha(big));
      expect(readFileSync(join(target, 'd', 'f199'), 'utf8')).toBe('small 199\n');
      // The apply's read buffers wait in the reserve for the next layer.
      expect(reservedBytes()).toBeGreaterThanOrEqual(MiB);
    }
    // Two at once share the reserve without sharing a buffer.
    const [a, b] = await Promise.all([applyLayer(layer, join(work, 'both-a')), applyLayer(layer, join(work, 'both-b'))]);
    expect([a.diffID, b.diffID]).toEqual([packed.diffID, packed.diffID]);
    for (const dir of ['both-a', 'both-b']) expect(sha(readFileSync(join(work, dir, 'big')))).toBe(sha(big));
  });
});
