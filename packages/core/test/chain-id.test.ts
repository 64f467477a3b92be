/**
 * chainIDs as the OCI image spec defines them: ChainID(L0) = DiffID(L0), ChainID(L0..n) =
 * sha256(ChainID(L0..n-1) + " " + DiffID(Ln)), worked out here with Node's hash, every prefix of a stack.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chainID, chainIDs } from '../src/index.js';

const sha256 = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

describe('chainIDs', () => {
  it('gives the chainID of every prefix, bottom first', () => {
    const diffIDs = ['a', 'b', 'c'].map(sha256);
    const second = sha256(`${diffIDs[0]} ${diffIDs[1]}`);
    const third = sha256(`${second} ${diffIDs[2]}`);
    expect(chainIDs(diffIDs)).toEqual([diffIDs[0], second, third]);
    expect(chainIDs(diffIDs).map((_, i) => chainID(diffIDs.slice(0, i + 1)))).toEqual(chainIDs(diffIDs));
    expect(chainIDs([])).toEqual([]);
    expect(() => chainID([])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
