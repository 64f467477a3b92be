/**
 * The inline build cache (`--cache-to type=inline`, `--cache-from IMAGE`), as BuildKit keeps one in an
 * image's config: the config records the cache key of the step that made each of the image's layers, so a
 * root that has the image (pulled from a registry, imported from an archive) takes those steps from it
 * instead of running them. The keys are strata's (BuildKit's are of its own graph): strata reads its own
 * inline cache only, under a config field of its own.
 */
import { isStrataError } from '@strata/core';
import type { Descriptor, PlatformImage } from '@strata/images';

/** The config field, beside the OCI ones (a reader ignores what it does not know). */
export const INLINE_CACHE_FIELD = 'io.strata.build.cache';

interface InlineCacheRecord {
  readonly version: 1;
  /** Each layer a step made: its index in `rootfs.diff_ids`, and the step's cache key. */
  readonly layers: readonly { readonly index: number; readonly key: string }[];
}

/** The field for an image whose layers the steps of `stepKeys` made (null: a base image's layer). */
export function inlineCacheRecord(stepKeys: readonly (string | null)[]): InlineCacheRecord {
  return { version: 1, layers: stepKeys.flatMap((key, index) => (key === null ? [] : [{ index, key }])) };
}

/** A step one of the images recorded: the image, and the layer's place in it. */
export interface InlineCacheHit {
  /** The image, as the store names it (or its digest). */
  readonly ref: string;
  readonly index: number;
  readonly diffIDs: readonly string[];
  readonly layers: readonly Descriptor[];
}

/** The `cacheFrom` images of a build, read when a step first looks for itself in them. */
export class InlineCacheSources {
  readonly #refs: readonly string[];
  readonly #resolve: (reference: string) => Promise<{ ref: string; platformImage: PlatformImage }>;
  readonly #warn: (message: string) => void;
  #steps: Promise<Map<string, InlineCacheHit>> | undefined;

  /** `resolve` finds (or pulls) an image; `warn` hears of an image that gives nothing. */
  constructor(refs: readonly string[], resolve: (reference: string) => Promise<{ ref: string; platformImage: PlatformImage }>, warn: (message: string) => void) {
    this.#refs = refs;
    this.#resolve = resolve;
    this.#warn = warn;
  }

  /** Where the step of cache key `key` is recorded, in the first image that has it. */
  async find(key: string): Promise<InlineCacheHit | undefined> {
    this.#steps ??= this.#read();
    return (await this.#steps).get(key);
  }

  async #read(): Promise<Map<string, InlineCacheHit>> {
    const steps = new Map<string, InlineCacheHit>();
    for (const reference of this.#refs) {
      let image: { ref: string; platformImage: PlatformImage };
      try {
        image = await this.#resolve(reference);
      } catch (error) {
        if (!isStrataError(error)) throw error;
        this.#warn(`--cache-from ${reference}: ${error.message}; its steps run`);
        continue;
      }
      const { config, manifest } = image.platformImage;
      const record = parseRecord((config as unknown as Record<string, unknown>)[INLINE_CACHE_FIELD], config.rootfs.diff_ids.length);
      if (record === undefined) {
        this.#warn(`--cache-from ${reference}: the image has no inline cache of strata's (built without --cache-to type=inline); its steps run`);
        continue;
      }
      for (const { index, key } of record.layers) {
        if (!steps.has(key)) steps.set(key, { ref: image.ref, index, diffIDs: config.rootfs.diff_ids, layers: manifest.layers });
      }
    }
    return steps;
  }
}

/** The record, if `value` is one that fits an image of `layerCount` layers; anything else is none. */
function parseRecord(value: unknown, layerCount: number): InlineCacheRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { version, layers } = value as { version?: unknown; layers?: unknown };
  if (version !== 1 || !Array.isArray(layers)) return undefined;
  const valid = layers.every((l: unknown) => {
    const { index, key } = (l ?? {}) as { index?: unknown; key?: unknown };
    return Number.isSafeInteger(index) && (index as number) >= 0 && (index as number) < layerCount && typeof key === 'string' && /^[0-9a-f]{64}$/.test(key);
  });
  return valid ? (value as InlineCacheRecord) : undefined;
}
