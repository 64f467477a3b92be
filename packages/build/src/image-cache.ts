/**
 * The build cache carried in images, as BuildKit carries its own: the config of an image records the cache
 * key of the step that made each of its layers, so a root that has the image (pulled from a registry,
 * imported from an archive) takes those steps instead of running them. Two forms, one record:
 * - inline (`--cache-to type=inline`): the built image's own layers, each on the layers before it;
 * - a cache image (`--cache-to type=registry,ref=REF[,mode=max]`): an image of its own holding the layers
 *   of the steps (the final image's, or with `max` every stage's), each with the chain of layers it goes on.
 * The keys are strata's (BuildKit's are of its own graph): strata reads its own records only, under a
 * config field of its own.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AlreadyExistsError, chainID, isStrataError, quote, type LayerDescriptor } from '@strata/core';
import { layerDescriptor, stageImageDocuments, type Descriptor, type ImageConfig, type Images, type Platform, type PlatformImage } from '@strata/images';

/** The config field, beside the OCI ones (a reader ignores what it does not know). */
export const CACHE_FIELD = 'io.strata.build.cache';

/** A layer a step made: its index in `rootfs.diff_ids`, the step's cache key, and (in a cache image) what it goes on. */
interface RecordedLayer {
  readonly index: number;
  readonly key: string;
  /** The chainID of the layers below it ('' for none); absent inline, where they are the image's layers before it. */
  readonly below?: string;
}

interface CacheField {
  readonly version: 1;
  readonly layers: readonly RecordedLayer[];
}

/** The chainID of `diffIDs`, '' for none. */
export function chainOf(diffIDs: readonly string[]): string {
  return diffIDs.length === 0 ? '' : chainID(diffIDs);
}

/** The inline field of an image whose layers the steps of `stepKeys` made (null: a base image's layer). */
export function inlineCacheField(stepKeys: readonly (string | null)[]): CacheField {
  return { version: 1, layers: stepKeys.flatMap((key, index) => (key === null ? [] : [{ index, key }])) };
}

/** Where `cacheTo` puts a cache image: a registry (`ref`), or an OCI layout directory (`dest`). */
export type CacheExport = ({ readonly ref: string } | { readonly dest: string }) & { readonly mode?: 'min' | 'max' };

/** A step that gave a layer: its cache key, the layer, and the chainID of the layers it went on ('' for none). */
export interface StepLayer {
  readonly key: string;
  readonly layer: LayerDescriptor;
  readonly below: string;
}

/**
 * Makes the cache image of `steps` (an image of `platform` whose layers are theirs, each recorded with its
 * step's key and chain) and pushes it to `to.ref` through `push`, or writes it as a layout at `to.dest`;
 * then lets go of it (its layers stay as the build cache holds them). Published under `lease` meanwhile.
 */
export async function exportCacheImage(images: Images, lease: string, steps: readonly StepLayer[], options: { platform: Platform; created: string; to: CacheExport; push?: (image: string, ref: string) => Promise<void> }): Promise<void> {
  const layers: LayerDescriptor[] = [];
  const indexes = new Map<string, number>();
  const recorded: RecordedLayer[] = [];
  for (const { key, layer, below } of steps) {
    let index = indexes.get(layer.digest);
    if (index === undefined) {
      index = layers.push(layer) - 1;
      indexes.set(layer.digest, index);
    }
    recorded.push({ index, key, below });
  }
  const { platform: { os, architecture, variant }, created, to } = options;
  const config = {
    os,
    architecture,
    ...(variant ? { variant } : {}),
    created,
    config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
    history: layers.map(() => ({ created, created_by: 'strata build --cache-to (a layer of the build cache)' })),
    [CACHE_FIELD]: { version: 1, layers: recorded } satisfies CacheField,
  } as ImageConfig;
  const staged = await stageImageDocuments(images.content, { config, layers: layers.map((l) => layerDescriptor(l, false)), docker: false });
  try {
    images.root.metadata.transaction(() => {
      staged.publish(lease);
      images.images.putDangling(staged.target);
    });
  } finally {
    staged.discard();
  }
  try {
    if ('ref' in to) await options.push!(staged.target.digest, to.ref);
    else await writeLayout(images, staged.target.digest, to.dest);
  } finally {
    try {
      images.removeImages([staged.target.digest]);
    } catch {
      // Named meanwhile, or gone: it stays as it is.
    }
  }
}

/**
 * Writes image `digest` as an OCI layout at `dest`, beside it first and renamed into place, replacing a
 * layout there (the cache a CI job restores and saves); anything else at `dest` but an empty directory is
 * ALREADY_EXISTS, never removed.
 */
async function writeLayout(images: Images, digest: string, dest: string): Promise<void> {
  const there = statSync(dest, { throwIfNoEntry: false });
  if (there !== undefined) {
    const isLayout = there.isDirectory() && existsSync(join(dest, 'oci-layout')) && existsSync(join(dest, 'index.json'));
    if (!isLayout && !(there.isDirectory() && readdirSync(dest).length === 0)) throw new AlreadyExistsError(`--cache-to ${quote(dest)}: it is there and is no OCI layout, which a cache replaces`, { path: dest });
  }
  const aside = `${dest}.strata-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await images.export([digest], aside, { format: 'oci' });
    if (there !== undefined) rmSync(dest, { recursive: true, force: true });
    renameSync(aside, dest);
  } finally {
    rmSync(aside, { recursive: true, force: true });
  }
}

/** A step an image recorded: the image, its layer, and the chain it goes on. */
export interface CachedStep {
  /** The image, as the store names it (or its digest). */
  readonly ref: string;
  readonly layer: Descriptor;
  readonly diffID: string;
  /** The chainID of the layers below ('' for none): the stage must stand on exactly these. */
  readonly below: string;
  /** When the layer was made, as the image's history says (ms since the epoch), if it does. */
  readonly created?: number;
}

/** Where a `cacheFrom` image is: a reference of the store or a registry, or an OCI layout directory (`src`). */
export type CacheSource = string | { readonly src: string };

/** A source as the CLI spells it, for warnings. */
function describe(source: CacheSource): string {
  return typeof source === 'string' ? source : `type=local,src=${source.src}`;
}

/** The `cacheFrom` images of a build, read when a step first looks for itself in them. */
export class CacheSources {
  readonly #sources: readonly CacheSource[];
  readonly #resolve: (source: CacheSource) => Promise<{ ref: string; platformImage: PlatformImage }>;
  readonly #warn: (message: string) => void;
  #steps: Promise<Map<string, CachedStep[]>> | undefined;

  /** `resolve` finds (pulls, imports) a source's image; `warn` hears of one that gives nothing. */
  constructor(sources: readonly CacheSource[], resolve: (source: CacheSource) => Promise<{ ref: string; platformImage: PlatformImage }>, warn: (message: string) => void) {
    this.#sources = sources;
    this.#resolve = resolve;
    this.#warn = warn;
  }

  /** What the images recorded for the step of cache key `key`, in their order. */
  async find(key: string): Promise<readonly CachedStep[]> {
    this.#steps ??= this.#read();
    return (await this.#steps).get(key) ?? [];
  }

  async #read(): Promise<Map<string, CachedStep[]>> {
    const steps = new Map<string, CachedStep[]>();
    for (const source of this.#sources) {
      let image: { ref: string; platformImage: PlatformImage };
      try {
        image = await this.#resolve(source);
      } catch (error) {
        if (!isStrataError(error)) throw error;
        this.#warn(`--cache-from ${describe(source)}: ${error.message}; its steps run`);
        continue;
      }
      const { config, manifest } = image.platformImage;
      const diffIDs = config.rootfs.diff_ids;
      const field = parseField((config as unknown as Record<string, unknown>)[CACHE_FIELD], Math.min(diffIDs.length, manifest.layers.length));
      if (field === undefined) {
        this.#warn(`--cache-from ${describe(source)}: the image has no build cache of strata's (built without --cache-to); its steps run`);
        continue;
      }
      // The layers' times, where the history gives one per layer: a step taken from here keeps its time.
      const layerItems = (config.history ?? []).filter((h) => !h.empty_layer);
      const layerTimes = layerItems.length === diffIDs.length ? layerItems.map((h) => h.created) : [];
      for (const { index, key, below } of field.layers) {
        const made = Date.parse(layerTimes[index] ?? '');
        const step = { ref: image.ref, layer: manifest.layers[index]!, diffID: diffIDs[index]!, below: below ?? chainOf(diffIDs.slice(0, index)), ...(Number.isNaN(made) ? {} : { created: made }) };
        steps.set(key, [...(steps.get(key) ?? []), step]);
      }
    }
    return steps;
  }
}

/** The field, if `value` is one that fits an image of `layerCount` layers; anything else is none. */
function parseField(value: unknown, layerCount: number): CacheField | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { version, layers } = value as { version?: unknown; layers?: unknown };
  if (version !== 1 || !Array.isArray(layers)) return undefined;
  const valid = layers.every((l: unknown) => {
    const { index, key, below } = (l ?? {}) as { index?: unknown; key?: unknown; below?: unknown };
    return (
      Number.isSafeInteger(index) &&
      (index as number) >= 0 &&
      (index as number) < layerCount &&
      typeof key === 'string' &&
      /^[0-9a-f]{64}$/.test(key) &&
      (below === undefined || below === '' || (typeof below === 'string' && /^sha256:[0-9a-f]{64}$/.test(below)))
    );
  });
  return valid ? (value as CacheField) : undefined;
}
