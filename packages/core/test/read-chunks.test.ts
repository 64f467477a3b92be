import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readChunks, type ChunkRange } from '../src/index.js';
import { watchLoop } from '../../../test/helpers/event-loop.js';
import { openOn } from '../../../test/helpers/descriptors.js';

const work = mkdtempSync(join(tmpdir(), 'strata-read-chunks-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const MiB = 1024 * 1024;

function file(name: string, bytes: Buffer): string {
  const path = join(work, name);
  writeFileSync(path, bytes);
  return path;
}

/** What `readChunks` yields, each chunk copied as it comes (the reader fills its buffer again). */
async function collect(path: string, range?: ChunkRange): Promise<{ bytes: Buffer; sizes: number[] }> {
  const copies: Buffer[] = [];
  for await (const chunk of readChunks(path, range)) copies.push(Buffer.from(chunk));
  return { bytes: Buffer.concat(copies), sizes: copies.map((c) => c.length) };
}

describe('readChunks', () => {
  const content = randomBytes(3 * MiB + 12_345);
  const path = file('content', content);

  it('reads a whole file in chunks of at most 1 MiB', async () => {
    const { bytes, sizes } = await collect(path);
    expect(bytes.equals(content)).toBe(true);
    expect(sizes).toEqual([MiB, MiB, MiB, 12_345]);
  });

  it('reads a range: from an offset, to the end or for a length', async () => {
    expect((await collect(path, { start: MiB + 7 })).bytes.equals(content.subarray(MiB + 7))).toBe(true);
    expect((await collect(path, { start: 100, length: 2 * MiB })).bytes.equals(content.subarray(100, 100 + 2 * MiB))).toBe(true);
    expect((await collect(path, { start: content.length })).bytes.length).toBe(0);
    expect((await collect(path, { start: 5, length: 0 })).bytes.length).toBe(0);
    expect((await collect(file('empty', Buffer.alloc(0)))).sizes).toEqual([]);
  });

  it('fails typed when the file ends before the length asked for, and closes it', async () => {
    await expect(collect(path, { start: MiB, length: 3 * MiB })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringContaining(`ended ${MiB - 12_345} bytes early`) });
    expect(openOn(path)).toBe(0);
  });

  it('reads what the file holds as it is read, without a length: shrunk or grown since it was opened', async () => {
    const changing = file('changing', content);
    const seen: number[] = [];
    for await (const chunk of readChunks(changing)) {
      seen.push(chunk.length);
      if (seen.length === 1) truncateSync(changing, MiB + 10);
    }
    expect(seen).toEqual([MiB, 10]);
    const growing = file('growing', content.subarray(0, MiB));
    const grown: Buffer[] = [];
    for await (const chunk of readChunks(growing)) {
      grown.push(Buffer.from(chunk));
      if (grown.length === 1) appendFileSync(growing, 'tail');
    }
    expect(Buffer.concat(grown).toString('latin1', MiB)).toBe('tail');
  });

  it('fills one buffer again for each chunk, which is why a consumer copies what it keeps', async () => {
    const buffers = new Set<ArrayBufferLike>();
    for await (const chunk of readChunks(path)) buffers.add(chunk.buffer);
    expect(buffers.size).toBe(1);
  });

  it('closes the file when its reader stops early', async () => {
    for await (const chunk of readChunks(path)) {
      expect(openOn(path)).toBe(1);
      expect(chunk.length).toBe(MiB);
      break;
    }
    expect(openOn(path)).toBe(0);
    await expect(collect(join(work, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses what is not a regular file, a FIFO without waiting for a writer', async () => {
    const fifo = join(work, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(collect(fifo)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('is not a regular file') });
    await expect(collect(work)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(openOn(fifo)).toBe(0);
  });

  it('gives the event loop its turns while it reads a large file', async () => {
    const large = file('large', Buffer.alloc(128 * MiB, 1));
    let total = 0;
    const watch = await watchLoop(async () => {
      for await (const chunk of readChunks(large)) {
        total += chunk.length;
        // A consumer's synchronous work per chunk (a hash, a copy), which alone would hold the loop.
        const until = performance.now() + 1;
        while (performance.now() < until) {
          // busy
        }
      }
    });
    expect(total).toBe(128 * MiB);
    expect(watch.duration).toBeGreaterThan(128);
    expect(watch.longestGap).toBeLessThan(60);
  });
});
