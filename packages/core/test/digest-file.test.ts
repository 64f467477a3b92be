import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { digestLayer, packDirectory } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'strata-digest-file-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
/** The addon's hashing threads alive in this process (by name). */
const hashers = () => readdirSync('/proc/self/task').filter((task) => readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === 'strata-hasher').length;

/** A layer past the size hashed on a thread: large files among small ones, so the parse seeks past bodies. */
async function largeLayer(name: string): Promise<string> {
  const tree = join(work, `${name}-tree`);
  mkdirSync(join(tree, 'small'), { recursive: true });
  for (let i = 0; i < 3; i++) writeFileSync(join(tree, `big-${i}`), randomBytes(5 * 1024 * 1024 + i * 777));
  for (let i = 0; i < 300; i++) writeFileSync(join(tree, 'small', `f${i}`), `file ${i}\n`);
  const layer = join(work, `${name}.tar`);
  await packDirectory(tree, layer);
  return layer;
}

describe('digestLayer of a file hashed by a thread that reads it itself', () => {
  it('gives the digests of the file as given, plain and gzip, and leaves no thread', async () => {
    const before = hashers();
    const layer = await largeLayer('plain');
    const bytes = readFileSync(layer);
    const plain = await digestLayer(layer);
    expect(plain).toMatchObject({ diffID: sha256(bytes), digest: sha256(bytes), size: bytes.length, uncompressedSize: bytes.length, compression: 'none' });
    const gzipped = join(work, 'plain.tar.gz');
    const compressed = gzipSync(bytes, { level: 1 });
    writeFileSync(gzipped, compressed);
    expect(await digestLayer(gzipped)).toMatchObject({ diffID: sha256(bytes), digest: sha256(compressed), size: compressed.length, uncompressedSize: bytes.length, compression: 'gzip' });
    expect(hashers()).toBe(before);
  });

  it('a file that grows or shrinks while it is digested fails the digest, and leaves no thread', async () => {
    const before = hashers();
    const grown = await largeLayer('grown');
    // The call opens the file and takes its size before it returns; the zeros come after the archive's end.
    const growing = digestLayer(grown);
    appendFileSync(grown, Buffer.alloc(1024 * 1024));
    await expect(growing).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });

    const shrunk = await largeLayer('shrunk');
    const shrinking = digestLayer(shrunk);
    truncateSync(shrunk, 4 * 1024 * 1024);
    await expect(shrinking).rejects.toThrow();
    expect(hashers()).toBe(before);
  });

  it('a corrupt header fails the digest: the parse still checks every header it seeks between', async () => {
    const layer = await largeLayer('corrupt');
    const bytes = readFileSync(layer);
    // The header after the first large file's body (its name at a block's start): a checksum that no longer matches.
    let header = bytes.indexOf('big-1');
    while (header % 512 !== 0) header = bytes.indexOf('big-1', header + 1);
    bytes[header + 10] = bytes[header + 10]! ^ 0x40;
    writeFileSync(layer, bytes);
    await expect(digestLayer(layer)).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
  });
});
