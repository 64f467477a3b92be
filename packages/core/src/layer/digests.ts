/**
 * The identities of a layer: diffID (sha256 of the uncompressed tar), digest and size of the blob as
 * given; and chainID, per the OCI image spec.
 */
import { MemorySha256 } from '../native.js';
import type { Compression } from '../blob/compression.js';
import type { DecodedDigests } from '../blob/decode.js';
import type { ByteInput } from '../blob/input.js';
import { InvalidArgumentError } from '../errors.js';
import { turn } from '../turns.js';
import { readLayer, type ReadLayerOptions } from './read-layer.js';

/** The digests of one layer blob. */
export interface LayerDigests {
  /** sha256 of the uncompressed tar stream, trailing bytes included. */
  diffID: string;
  /** Bytes of the uncompressed tar stream. */
  uncompressedSize: number;
  /** sha256 of the blob as given (equals diffID when uncompressed). */
  digest: string;
  /** Bytes of the blob as given. */
  size: number;
  compression: Compression;
}

/** A decoded blob's digests in layer terms. */
export function layerDigestsOf(d: DecodedDigests): LayerDigests {
  return { diffID: d.uncompressedDigest, uncompressedSize: d.uncompressedSize, digest: d.digest, size: d.size, compression: d.compression };
}

/**
 * Digests a layer, checking on the way that it is one: every header is parsed (content is hashed, not
 * interpreted), so a blob that `readLayer` and `applyLayer` would refuse is refused here too, with the same
 * error. For a blob of any content, use `digestBlob`.
 */
export async function digestLayer(input: ByteInput, options: Omit<ReadLayerOptions, 'hash'> = {}): Promise<LayerDigests> {
  // Nothing acts on the bytes but the parse: a large file is hashed by a thread that reads it itself.
  const reader = readLayer(input, { ...options, hash: true, hashFromFile: true });
  const entries = reader.entries();
  try {
    // Parsing is the check; bodies are passed over (hashed by that thread, or by the taps as the reader reads
    // past them). `take()`: no promise for an entry whose bytes are buffered.
    for (let next = entries.take(); next !== undefined; next = entries.take()) {
      if (next instanceof Promise && (await next) === undefined) break;
      const wait = turn();
      if (wait) await wait;
    }
  } finally {
    await entries.return();
  }
  return reader.digests();
}

/**
 * The chainID of a stack of diffIDs, bottom first: ChainID(L0) = DiffID(L0), ChainID(L0..n) =
 * sha256(ChainID(L0..n-1) + " " + DiffID(Ln)). Throws INVALID_ARGUMENT for an empty stack.
 */
export function chainID(diffIDs: readonly string[]): string {
  if (diffIDs.length === 0) throw new InvalidArgumentError('chainID of an empty stack');
  return chainIDs(diffIDs).at(-1)!;
}

/** The chainID of each stack a layer tops, bottom first (`chainIDs(d)[i]` is `chainID(d.slice(0, i + 1))`), in one pass. */
export function chainIDs(diffIDs: readonly string[]): string[] {
  const out: string[] = [];
  const hash = new MemorySha256(); // starts again empty after each digest
  for (const diffID of diffIDs) {
    const below = out.at(-1);
    if (below !== undefined) hash.update(Buffer.from(`${below} ${diffID}`));
    out.push(below === undefined ? diffID : `sha256:${hash.digest()}`);
  }
  return out;
}
