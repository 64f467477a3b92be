/**
 * readLayer: any real layer tarball (ustar, POSIX/PAX, GNU long names; plain, gzip or zstd) as an async
 * sequence of entries, with its diffID, digest and size computed on the way. The blob side (input,
 * decompression, hashing) is `blob/decode.ts`; the entry parser is `tar/reader.ts`.
 */
import { LayerFormatError } from '../errors.js';
import { decodeInput, type DecodedInput, type DecodeOptions } from '../blob/decode.js';
import type { ByteInput } from '../blob/input.js';
import { ByteSource } from '../tar/byte-source.js';
import { DEFAULT_LIMITS, TarEntryReader, type ReadLimits, type TarEntry, type TarSource } from '../tar/reader.js';
import { layerDigestsOf, type LayerDigests } from './digests.js';

export type { ReadLimits } from '../tar/reader.js';

/** Options of `readLayer`. */
export interface ReadLayerOptions extends ReadLimits, DecodeOptions {
  signal?: AbortSignal;
}

/** One entry of a layer and its content (see `TarEntry` for how long a body chunk stays valid). */
export type LayerEntry = TarEntry;

/** A layer opened for reading: its entries, then its digests once they have all been read. */
export interface LayerReader extends AsyncIterable<LayerEntry> {
  /**
   * The entries as iterating gives them, with `take()` besides: each entry at once while the bytes it
   * needs are buffered, a promise only when the parse waits for a read (see `TarEntryReader`). Who stops
   * before the end calls its `return()`.
   */
  entries(): TarEntryReader;
  /** Digests of the whole blob, trailing bytes included; available after iteration finished. */
  digests(): Promise<LayerDigests>;
}

/** What iterating a layer leaves its reader: the digests, valid once every entry was read. */
interface ReadState {
  digests?: () => Promise<LayerDigests>;
  finished: boolean;
}

/**
 * Opens a layer for reading. Entries come in archive order with clean paths (see `cleanLayerPath`; a
 * leading `/` in a name starts at the layer root, as containerd and Docker read it).
 *
 * Throws, while iterating: LAYER_FORMAT (corrupt tar or compressed stream; see `TarEntryReader`),
 * UNSAFE_PATH, LIMIT_EXCEEDED, UNSUPPORTED (unknown entry types, xz/bzip2).
 */
export function readLayer(input: ByteInput, options: ReadLayerOptions = {}): LayerReader {
  const limits: Required<ReadLimits> = {
    maxEntries: options.maxEntries ?? DEFAULT_LIMITS.maxEntries,
    maxTotalBytes: options.maxTotalBytes ?? DEFAULT_LIMITS.maxTotalBytes,
    maxPathBytes: options.maxPathBytes ?? DEFAULT_LIMITS.maxPathBytes,
    maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_LIMITS.maxHeaderBytes,
    maxXattrBytes: options.maxXattrBytes ?? DEFAULT_LIMITS.maxXattrBytes,
  };
  const state: ReadState = { finished: false };
  return {
    async digests() {
      if (!state.finished || !state.digests) throw new LayerFormatError('layer digests are known only after reading every entry');
      return state.digests();
    },
    entries: () => entries(input, options, limits, state),
    [Symbol.asyncIterator]: () => entries(input, options, limits, state),
  };
}

function entries(input: ByteInput, options: ReadLayerOptions, limits: Required<ReadLimits>, state: ReadState): TarEntryReader {
  let decoded: DecodedInput | undefined;
  const source: TarSource = {
    open: async () => {
      decoded = await decodeInput(input, options);
      const opened = decoded;
      state.digests = async () => layerDigestsOf(await opened.digests());
      return new ByteSource(opened.stream, opened.skip);
    },
    close: async (finished) => {
      state.finished = finished;
      if (!finished) await decoded?.abort(); // failed or abandoned: its hashing threads are not needed
    },
  };
  return new TarEntryReader(source, limits, options.signal);
}
