import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../src/blob/buffer-pool.js';
import { createSha256, sha256OfFile } from '../src/blob/sha256.js';
import { MemorySha256 } from '../src/native.js';

const expected = (chunks: Uint8Array[]) => `sha256:${chunks.reduce((h, c) => h.update(c), createHash('sha256')).digest('hex')}`;
/** The addon's writing threads alive in this process (by name: V8 and libuv start threads of their own at will). */
const threads = () => readdirSync('/proc/self/task').filter((task) => readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === 'strata-writer').length;

/** Chunk sizes to hash: empty, tiny, around a MiB, and many of every size. */
const CHUNKINGS = [[0], [1, 2, 3], [1024 * 1024, 17, 1024 * 1024], Array.from({ length: 40 }, (_, i) => (i * 7919) % 300_000)];

describe('sha256 streams', () => {
  it('on the native thread: the digest of exactly the bytes given, copied or consumed, in any chunking', async () => {
    const pool = new BufferPool(1024 * 1024);
    for (const sizes of CHUNKINGS) {
      const chunks = sizes.map((n) => randomBytes(n));
      const stream = createSha256(true);
      for (const [i, chunk] of chunks.entries()) {
        // Alternate: a copy the caller may reuse (then scribbled over), and a pool buffer handed over.
        if (i % 2 === 0) {
          const scratch = Buffer.from(chunk);
          await stream.update(scratch);
          scratch.fill(0xee);
        } else {
          const owned = pool.take();
          chunk.copy(owned);
          await stream.consume(owned.subarray(0, chunk.length), pool);
        }
      }
      expect(await stream.digest()).toBe(expected(chunks));
      expect(stream.size).toBe(sizes.reduce((a, b) => a + b, 0));
    }
  });

  it('a hashing stream holds at most 4 MiB of a reader that outruns it: the pool stays a few buffers', async () => {
    const pool = new BufferPool(1024 * 1024);
    const buffers = new Set<ArrayBufferLike>();
    const stream = createSha256(true);
    for (let i = 0; i < 48; i++) {
      const owned = pool.take();
      // The same bytes in every chunk, so that a recycled buffer needs no filling: the loop outruns the hash.
      if (!buffers.has(owned.buffer)) owned.fill(0x5a);
      buffers.add(owned.buffer);
      await stream.consume(owned, pool);
    }
    expect(await stream.digest()).toBe(expected(Array.from({ length: 48 }, () => Buffer.alloc(1024 * 1024, 0x5a))));
    // Each buffer is memory a fresh process touches for the first time: 4 in flight, one being filled.
    expect(buffers.size).toBeLessThanOrEqual(6);
  });

  it('more than the in-flight bound waits for the thread, then agrees; abort leaves no thread', async () => {
    const before = threads();
    const chunk = randomBytes(1024 * 1024);
    const stream = createSha256(true);
    for (let i = 0; i < 48; i++) await stream.update(chunk);
    expect(threads()).toBe(before + 1); // the stream's own thread, named as the count expects
    expect(await stream.digest()).toBe(expected(Array.from({ length: 48 }, () => chunk)));
    const abandoned = createSha256(true);
    await abandoned.update(chunk);
    await abandoned.abort();
    expect(threads()).toBeLessThanOrEqual(before);
  });

  it('on this thread: the digest of exactly the bytes given, views of larger buffers included, in any chunking', async () => {
    const pool = new BufferPool(1024 * 1024);
    for (const sizes of CHUNKINGS) {
      const chunks = sizes.map((n) => randomBytes(n));
      const stream = createSha256(false);
      for (const [i, chunk] of chunks.entries()) {
        if (i % 2 === 0) {
          // A view into the middle of a larger buffer: only its own bytes count.
          const wide = Buffer.concat([Buffer.from('before'), chunk, Buffer.from('after')]);
          expect(stream.update(wide.subarray(6, 6 + chunk.length))).toBeUndefined();
        } else {
          const owned = pool.take();
          chunk.copy(owned);
          expect(stream.consume(owned.subarray(0, chunk.length), pool)).toBeUndefined();
        }
      }
      expect(await stream.digest()).toBe(expected(chunks));
      expect(stream.size).toBe(sizes.reduce((a, b) => a + b, 0));
    }
  });

  it('the addon\'s in-memory hash starts again after a digest and refuses what is not bytes', () => {
    const hash = new MemorySha256();
    hash.update(Buffer.from('abc'));
    expect(hash.digest()).toBe(createHash('sha256').update('abc').digest('hex'));
    expect(hash.digest()).toBe(createHash('sha256').digest('hex'));
    expect(() => hash.update('abc' as unknown as Uint8Array)).toThrow(TypeError);
  });

  it('a whole file, hashed by a thread of its own: its digest and size; a missing one is ENOENT', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-sha256-file-'));
    try {
      for (const size of [0, 1, 5 * 1024 * 1024 + 3]) {
        const bytes = randomBytes(size);
        writeFileSync(join(dir, 'f'), bytes);
        expect(await sha256OfFile(join(dir, 'f'))).toEqual({ digest: expected([bytes]), size });
      }
      await expect(sha256OfFile(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
