/**
 * A new image from an old one and a new top layer: the config (diffIDs, history, created), the manifest in
 * the old one's family (Docker schema 2 stays Docker; OCI stays OCI), both written into the content store
 * under the caller's lease, and the name pointed at it. What `commit` and `squash` end with.
 */
import { InvalidArgumentError, type LayerDescriptor } from '@strata/core';
import type { Metadata } from '@strata/snapshotter';
import type { ContentStore } from './content.js';
import { digestOf, encodeJson, type Descriptor, type History, type ImageConfig, type Manifest } from './documents.js';
import type { ImageStore } from './image-store.js';
import type { Leases } from './leases.js';
import { DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST } from './media-types.js';
import { UNCOMPRESSED_LABEL, UNCOMPRESSED_SIZE_LABEL } from './unpack.js';

/** `SOURCE_DATE_EPOCH` (seconds), when set to a number. */
export function sourceDateEpoch(): number | undefined {
  const text = process.env.SOURCE_DATE_EPOCH;
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** The time an image records: `epoch` (seconds) when given, else now; RFC 3339 as configs write it. */
export function createdAt(epoch: number | undefined): string {
  return (epoch === undefined ? new Date() : new Date(epoch * 1000)).toISOString().replace(/\.000Z$/, 'Z');
}

/** A layer's media type in a manifest family. */
function layerType(docker: boolean, compression: LayerDescriptor['compression']): string {
  if (compression === 'zstd') return OCI_LAYER_ZSTD; // Docker's schema 2 has no zstd type; containerd uses OCI's
  if (docker) return compression === 'gzip' ? DOCKER_LAYER_GZIP : DOCKER_LAYER;
  return compression === 'gzip' ? OCI_LAYER_GZIP : OCI_LAYER;
}

export interface NewImage {
  /** The old image's manifest, whose family and base layers the new one keeps. */
  readonly base: Manifest;
  /** How many of the base's layers stay (the rest are replaced by `layer`). */
  readonly keep: number;
  /** The config: the old one with diffIDs, history and times changed by the caller. */
  readonly config: ImageConfig;
  /** The new top layer, published in the store already. */
  readonly layer: LayerDescriptor;
}

export interface NewImageParts {
  readonly metadata: Metadata;
  readonly content: ContentStore;
  readonly images: ImageStore;
  readonly leases: Leases;
}

/** Labels a layer blob with what export needs to know of it without a pass. */
export function layerLabels(layer: LayerDescriptor): Record<string, string> {
  return { [UNCOMPRESSED_LABEL]: layer.diffID, [UNCOMPRESSED_SIZE_LABEL]: String(layer.uncompressedSize) };
}

/** A layer as a manifest lists it, in the Docker (schema 2) or OCI family. */
export function layerDescriptor(layer: LayerDescriptor, docker: boolean): Descriptor {
  return { mediaType: layerType(docker, layer.compression), digest: layer.digest, size: layer.size };
}

/** An image's config and manifest, on disk and ready to be published (see `stageImageDocuments`). */
export interface StagedImage {
  /** The manifest's descriptor. */
  readonly target: Descriptor;
  /** Publishes both under `lease`, in the caller's transaction when there is one. */
  publish(lease: string): void;
  discard(): void;
}

/**
 * Writes `config` and a manifest listing `layers` (blobs the store holds already), in the Docker or OCI
 * family, to disk; the caller publishes them in the transaction that names the image. Names nothing.
 * `annotations` go on the manifest, an OCI one's only (Docker's schema 2 has none): INVALID_ARGUMENT else.
 */
export async function stageImageDocuments(content: ContentStore, image: { config: ImageConfig; layers: readonly Descriptor[]; docker: boolean; annotations?: Readonly<Record<string, string>> }): Promise<StagedImage> {
  const { docker, annotations } = image;
  const annotated = annotations !== undefined && Object.keys(annotations).length > 0;
  if (annotated && docker) throw new InvalidArgumentError('manifest annotations need an OCI manifest, and this image is of the Docker family (its base is): Docker\'s schema 2 has no annotations');
  const configBytes = encodeJson(image.config);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: docker ? DOCKER_MANIFEST : OCI_MANIFEST,
    config: { mediaType: docker ? DOCKER_CONFIG : OCI_CONFIG, digest: digestOf(configBytes), size: configBytes.length },
    layers: [...image.layers],
    ...(annotated ? { annotations: { ...annotations } } : {}),
  };
  const { blobs, publish, discard } = await content.stageDocuments([configBytes, encodeJson(manifest)]);
  return { target: { mediaType: manifest.mediaType!, ...blobs[1]! }, publish, discard };
}

/**
 * Writes `config` and a manifest listing `layers` (blobs the store holds already) into the store under
 * `lease`, in the Docker or OCI family; returns the manifest's descriptor. Names nothing.
 */
export async function writeImageDocuments(content: ContentStore, image: { config: ImageConfig; layers: readonly Descriptor[]; docker: boolean }, lease: string): Promise<Descriptor> {
  const staged = await stageImageDocuments(content, image);
  try {
    staged.publish(lease);
  } finally {
    staged.discard();
  }
  return staged.target;
}

/**
 * Writes the config and manifest (under `lease`) and names the image `name`, all in one transaction, which
 * also deletes `lease`: once named, everything the work made is reachable without it, and the deletion
 * costs no sync of its own.
 */
export async function writeNewImage(parts: NewImageParts, image: NewImage, name: string, lease: string): Promise<{ name: string; target: Descriptor }> {
  const docker = image.base.mediaType === DOCKER_MANIFEST;
  const layers = [...image.base.layers.slice(0, image.keep), layerDescriptor(image.layer, docker)];
  const staged = await stageImageDocuments(parts.content, { config: image.config, layers, docker });
  try {
    return parts.metadata.transaction(() => {
      staged.publish(lease);
      const named = parts.images.put(name, staged.target);
      parts.leases.delete(lease);
      return { name: named, target: staged.target };
    });
  } finally {
    staged.discard();
  }
}

/** The history of an image whose layers above `keep` were folded into one: theirs marked empty, then `entry`. */
export function foldHistory(history: readonly History[] | undefined, keep: number, entry: History): History[] {
  const out: History[] = [];
  let layers = 0;
  for (const h of history ?? []) {
    if (h.empty_layer) out.push(h);
    else out.push(layers++ < keep ? h : { ...h, empty_layer: true });
  }
  out.push(entry);
  return out;
}
