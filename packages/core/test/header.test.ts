import { describe, expect, it } from 'vitest';
import { decodeHeader, encodeHeader } from '../src/tar/header.js';

const enc = new TextEncoder();

describe('tar header', () => {
  it('round trips octal fields and the ustar prefix', () => {
    const block = new Uint8Array(512);
    encodeHeader(block, { name: enc.encode('name'), prefix: enc.encode('some/prefix'), mode: 0o4755, uid: 1000, gid: 100, size: 12345, mtime: 1_700_000_000, typeflag: '0' });
    const h = decodeHeader(block);
    expect([Buffer.from(h.prefix).toString(), Buffer.from(h.name).toString(), h.mode, h.uid, h.gid, h.size, h.mtime]).toEqual([
      'some/prefix', 'name', 0o4755, 1000, 100, 12345, 1_700_000_000,
    ]);
  });

  it('writes base-256 for what octal cannot hold, including negative times', () => {
    const block = new Uint8Array(512);
    encodeHeader(block, { name: enc.encode('x'), mode: 0o644, uid: 3_000_000, gid: 0, size: 9 * 1024 ** 3, mtime: -86_400, typeflag: '0' });
    const h = decodeHeader(block);
    expect([h.uid, h.size, h.mtime]).toEqual([3_000_000, 9 * 1024 ** 3, -86_400]);
  });

  it('writes zero-padded octal on both sides of 2^30, where the encoder splits a value, up to the largest a field holds', () => {
    const sizes = [0, 7, 8, 0o7777777, 2 ** 30 - 1, 2 ** 30, 2 ** 30 + 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32 + 5, 1_700_000_000, 0o77777777777];
    for (let k = 0; k < 200; k++) sizes.push(Math.floor(Math.random() * 0o77777777777));
    const block = new Uint8Array(512);
    for (const size of sizes) {
      block.fill(0);
      encodeHeader(block, { name: enc.encode('x'), mode: 0o7777, uid: 0o7777777, gid: size % 0o10000000, size, mtime: size, typeflag: '0' });
      const text = (offset: number, length: number) => Buffer.from(block.subarray(offset, offset + length)).toString('latin1');
      const octal = (value: number, digits: number) => `${value.toString(8).padStart(digits, '0')}\0`;
      expect([text(100, 8), text(108, 8), text(116, 8), text(124, 12), text(136, 12)]).toEqual([
        octal(0o7777, 7), octal(0o7777777, 7), octal(size % 0o10000000, 7), octal(size, 11), octal(size, 11),
      ]);
    }
  });

  it('refuses a checksum mismatch', () => {
    const block = new Uint8Array(512);
    encodeHeader(block, { name: enc.encode('x'), mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: '0' });
    block[0] = 0x79;
    expect(() => decodeHeader(block)).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT' }));
  });

  it('checksums every byte, whatever the block\'s alignment: high bytes everywhere, at offsets 0 to 3', () => {
    const high = (n: number) => new Uint8Array(n).fill(0xff);
    for (let shift = 0; shift < 4; shift++) {
      const buffer = new Uint8Array(512 + 4);
      const block = buffer.subarray(shift, shift + 512);
      encodeHeader(block, { name: high(100), prefix: high(155), linkname: high(100), uname: high(32), gname: high(32), mode: 0o7777, uid: 0o7777777, gid: 0o7777777, size: 0o77777777777, mtime: 0o77777777777, typeflag: '0' });
      let sum = 8 * 0x20;
      block.forEach((byte, i) => {
        if (i < 148 || i >= 156) sum += byte;
      });
      expect(parseInt(Buffer.from(block.subarray(148, 154)).toString(), 8)).toBe(sum);
      expect(decodeHeader(block).size).toBe(0o77777777777);
      block[300]! ^= 1;
      expect(() => decodeHeader(block)).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT' }));
    }
  });

  it('checksums each block in its own buffer, as buffers alternate (the word view of the last one is reused)', () => {
    const headerIn = (buffer: Uint8Array, offset: number, size: number) => {
      const block = buffer.subarray(offset, offset + 512);
      encodeHeader(block, { name: enc.encode(`f${size}`), mode: 0o644, uid: 0, gid: 0, size, mtime: 0, typeflag: '0' });
      return block;
    };
    const a = new Uint8Array(4096);
    const b = new Uint8Array(2048);
    const blocks = [headerIn(a, 0, 1), headerIn(b, 1024, 2), headerIn(a, 2048, 3), headerIn(b, 0, 4)];
    for (let round = 0; round < 2; round++) expect(blocks.map((block) => decodeHeader(block).size)).toEqual([1, 2, 3, 4]);
    blocks[1]![0]! ^= 1; // b's first header: its own sum changes, a's do not
    expect(() => decodeHeader(blocks[1]!)).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT' }));
    expect([blocks[0], blocks[2], blocks[3]].map((block) => decodeHeader(block!).size)).toEqual([1, 3, 4]);
  });
});
