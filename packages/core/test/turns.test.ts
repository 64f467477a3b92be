import { mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { applyLayer, digestLayer, packDirectory, walkHostDirectory, writeEntries } from '../src/index.js';
import { FileHasher } from '../src/native.js';
import { turn } from '../src/turns.js';
import { watchLoop } from '../../../test/helpers/event-loop.js';

const work = mkdtempSync(join(tmpdir(), 'strata-turns-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Spins for `ms` milliseconds: a job's synchronous work. */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

/** A tree of `count` small files over 100 directories, and a layer of it. */
async function bigLayer(count: number): Promise<{ tree: string; layer: string }> {
  const tree = join(work, `tree-${count}`);
  for (let d = 0; d < 100; d++) {
    mkdirSync(join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < count / 100; f++) writeFileSync(join(tree, `d${d}`, `f${f}`), `file ${d}/${f}\n`);
  }
  const layer = join(work, `layer-${count}.tar`);
  await packDirectory(tree, layer);
  return { tree, layer };
}

/**
 * How much of `job`'s run the event loop was held at a stretch: the longest gap of a 1 ms interval as a
 * share of the whole run. A job that never gives way holds it for all of it (or for the stretches between
 * its hashing thread's rare waits).
 */
async function heldShare(job: () => Promise<unknown>): Promise<number> {
  const { longestGap, duration } = await watchLoop(job);
  return longestGap / duration;
}

/**
 * The least `heldShare` of up to three runs of `job(attempt)`. A job of ten slices or so is held 11-24% of
 * its run in its longest gap (a digest of the 10,000-entry layer, 50 ms: a slice and what ran past it, a
 * collection), and a test file beside this one can take the core for a few milliseconds more; a job that does
 * not take turns is held for most of every run.
 */
async function leastHeldShare(job: (attempt: number) => Promise<unknown>): Promise<number> {
  let least = Infinity;
  for (let attempt = 0; attempt < 3 && least >= 0.25; attempt++) least = Math.min(least, await heldShare(() => job(attempt)));
  return least;
}

describe('turns of the event loop', () => {
  it('jobs that have run their slice wait in line, one per turn of the loop, with timers between them', async () => {
    const order: string[] = [];
    const job = async (name: string) => {
      for (let i = 0; i < 3; i++) {
        spin(10); // longer than a slice: every check gives way
        order.push(name);
        const wait = turn();
        expect(wait).toBeInstanceOf(Promise);
        await wait;
      }
    };
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
      order.push('timer');
    }, 0);
    try {
      await Promise.all([job('a'), job('b')]);
    } finally {
      clearInterval(timer);
    }
    const jobs = order.filter((o) => o !== 'timer');
    expect(jobs).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
    // Between two slices of work the loop turned: timers ran between the jobs, not only after them.
    expect(order.indexOf('timer')).toBeLessThan(order.lastIndexOf('a'));
    expect(ticks).toBeGreaterThan(1);
  });

  it('a job within its slice is not held up', () => {
    const wait = turn();
    if (wait) return wait; // a slice ended just now: the next check must pass
    expect(turn()).toBeUndefined();
  });

  it('an apply of a file begun once the slice has run out waits its turn before it touches anything', async () => {
    const { layer } = await bigLayer(100);
    const parent = join(work, 'begun');
    mkdirSync(parent);
    spin(10);
    // Three begun together would otherwise each open its input, start its hashing thread and read its
    // first chunk (and make its staging directory) in this one turn of the loop.
    const applies = [0, 1, 2].map((i) => applyLayer(layer, join(parent, `t${i}`)));
    expect(readdirSync(parent)).toEqual([]);
    await Promise.all(applies);
    expect(readdirSync(parent).sort()).toEqual(['t0', 't1', 't2']);
  });

  it('an apply of a stream begun once the slice has run out meets the stream at once: its error rejects the apply', async () => {
    spin(10);
    const stream = new PassThrough();
    // Emitted before a turn in line would have ended: with no listener yet it would be an uncaught exception.
    setImmediate(() => stream.destroy(new Error('connection reset')));
    await expect(applyLayer(stream, join(work, 'from-stream'))).rejects.toThrow('connection reset');
  });

  it('a pack whose hash trails its writing catches the hash up in turns, not in one call at the end', async () => {
    const tree = join(work, 'sparse');
    mkdirSync(tree);
    // Read as zeros without touching a disk: the writing thread outruns the hashing one by far.
    writeFileSync(join(tree, 'big'), '');
    truncateSync(join(tree, 'big'), 128 * 1024 * 1024);
    const layer = join(work, 'sparse.tar');
    // The digest hashed what the hashing thread had not reached in one call: 30-70% of the pack's run.
    const left: number[] = [];
    const digest = FileHasher.prototype.digest;
    const spy = vi.spyOn(FileHasher.prototype, 'digest').mockImplementation(function (this: FileHasher) {
      left.push(this.hashSome(0)); // what the one call would hash (-1: the hashing thread holds it)
      return digest.call(this);
    });
    try {
      expect(await heldShare(() => packDirectory(tree, layer))).toBeLessThan(0.25);
    } finally {
      spy.mockRestore();
    }
    expect(left).toEqual([0]);
    expect((await digestLayer(layer)).diffID).toBe((await packDirectory(tree, join(work, 'sparse-again.tar'))).diffID);
  });

  it('apply, pack and digest of a 10,000-entry layer let timers run while they work, and concurrent applies agree', async () => {
    const { tree, layer } = await bigLayer(10_000);
    const targets = [0, 1, 2].map((i) => join(work, `target-${i}`));
    for (const t of targets) mkdirSync(t);
    // Each takes ten slices or more here; held for a quarter of its run every time, it did not take turns.
    expect(await leastHeldShare((i) => applyLayer(layer, targets[i]!))).toBeLessThan(0.25);
    expect(await leastHeldShare((i) => packDirectory(tree, join(work, `again-${i}.tar`)))).toBeLessThan(0.25);
    expect(await leastHeldShare((i) => writeEntries(walkHostDirectory(tree), join(work, `entries-${i}.tar`), { compression: 'gzip' }))).toBeLessThan(0.25);
    expect(await leastHeldShare(() => digestLayer(layer))).toBeLessThan(0.25);
    // Three at once take turns and each gives the same tree as the one applied alone.
    for (const t of targets) rmSync(t, { recursive: true, force: true });
    for (const t of targets) mkdirSync(t);
    const results = await Promise.all(targets.map((t) => applyLayer(layer, t)));
    expect(new Set(results.map((r) => r.diffID)).size).toBe(1);
    const packed = await Promise.all(targets.map((t, i) => packDirectory(t, join(work, `packed-${i}.tar`), { sourceDateEpoch: 0 })));
    expect(new Set(packed.map((p) => p.diffID)).size).toBe(1);
    expect(packed[0]!.diffID).toBe((await packDirectory(tree, join(work, 'source.tar'), { sourceDateEpoch: 0 })).diffID);
  }, 120_000);
});
