/**
 * An image's content as a graph: index → manifests → config and layers. Reading documents out of the
 * content store (checked against their descriptors), picking the manifest for a platform, and walking
 * everything an image references, for import checks, export, fsck and collection.
 */
import { ImageFormatError, NotFoundError, UnsupportedError, quote } from '@strata/core';
import { MAX_DOCUMENT_BYTES, parseConfig, parseIndex, parseManifest, type Descriptor, type ImageConfig, type Index, type Manifest } from './documents.js';
import { isForeignLayer, kindOf } from './media-types.js';
import { chooseManifests, formatPlatform, hostPlatform, type PlatformChoice } from './platform.js';

/** Where documents and blobs are read from: the content store, or an import's staged blobs over it. */
export interface BlobReader {
  has(digest: string): boolean;
  /** Bytes of a blob. Throws NOT_FOUND. */
  size(digest: string): number;
  /** A small blob whole. Throws NOT_FOUND, LIMIT_EXCEEDED past `limit`. */
  readBytes(digest: string, limit: number): Buffer;
}

/** Deepest nesting of indexes strata follows (real images nest one or two). */
const MAX_DEPTH = 8;

/** The bytes of a small document, checked against its descriptor's size and digest. */
export function documentBytes(content: BlobReader, d: Descriptor): Buffer {
  if (d.size > MAX_DOCUMENT_BYTES) throw new ImageFormatError(`${d.mediaType} ${d.digest} is ${d.size} bytes, over the ${MAX_DOCUMENT_BYTES}-byte limit for manifests and configs`);
  const bytes = content.readBytes(d.digest, MAX_DOCUMENT_BYTES);
  if (bytes.length !== d.size) throw new ImageFormatError(`${d.digest} is ${bytes.length} bytes, its descriptor says ${d.size}`);
  return bytes;
}

export function readIndex(content: BlobReader, d: Descriptor): Index {
  return parseIndex(documentBytes(content, d), `index ${d.digest}`);
}

export function readManifest(content: BlobReader, d: Descriptor): Manifest {
  return parseManifest(documentBytes(content, d), `manifest ${d.digest}`);
}

export function readConfig(content: BlobReader, d: Descriptor): ImageConfig {
  return parseConfig(documentBytes(content, d), `config ${d.digest}`);
}

/** One image of a (possibly multi-platform) target: its manifest and config. */
export interface PlatformImage {
  readonly manifestDescriptor: Descriptor;
  readonly manifest: Manifest;
  readonly config: ImageConfig;
}

/**
 * The manifests of `target` that `choice` takes, with their configs: an index is followed (nested ones
 * too); a manifest is itself. Manifests of an index that are not in the store are skipped (a partial,
 * single-platform copy of an index is normal); NOT_FOUND when nothing is left for the platform.
 */
export function platformImages(content: BlobReader, target: Descriptor, choice: PlatformChoice = { platform: hostPlatform() }): PlatformImage[] {
  const out: PlatformImage[] = [];
  const seen = new Set<string>();
  const available: string[] = [];
  const visit = (d: Descriptor, depth: number): void => {
    if (seen.has(d.digest)) throw new ImageFormatError(`${d.digest} is referenced from inside itself`);
    if (depth > MAX_DEPTH) throw new ImageFormatError(`indexes nest deeper than ${MAX_DEPTH}`);
    seen.add(d.digest);
    const kind = kindOf(d.mediaType);
    if (kind === 'index') {
      for (const child of chooseManifests(readIndex(content, d).manifests, choice)) {
        if (kindOf(child.mediaType) === 'manifest' && !content.has(child.digest)) {
          if (child.platform) available.push(formatPlatform(child.platform));
          continue;
        }
        visit(child, depth + 1);
      }
    } else if (kind === 'manifest') {
      const manifest = readManifest(content, d);
      out.push({ manifestDescriptor: d, manifest, config: readConfig(content, manifest.config) });
    } else if (depth > 0) {
      // An index may hold things that are not images (artifacts): not ours to read.
    } else throw new UnsupportedError(`media type ${quote(d.mediaType)} of ${d.digest} is not an image index or manifest`);
    seen.delete(d.digest);
  };
  visit(target, 0);
  if (out.length === 0) {
    const wanted = 'all' in choice ? 'any platform' : formatPlatform(choice.platform);
    throw new NotFoundError(`image ${target.digest} has no manifest for ${wanted} in the store${available.length ? ` (its index also lists ${available.join(', ')}, not present)` : ''}`, { path: target.digest });
  }
  return out;
}

/** The one image for a platform (the first match when an index lists several). */
export function platformImage(content: BlobReader, target: Descriptor, choice: PlatformChoice = { platform: hostPlatform() }): PlatformImage {
  return platformImages(content, target, choice)[0]!;
}

/** Layers that must be unpacked or exported: the image's layers, foreign ones included (they have diffIDs). */
export function layersOf(image: PlatformImage): readonly Descriptor[] {
  const layers = image.manifest.layers;
  const diffIDs = image.config.rootfs.diff_ids;
  if (layers.length !== diffIDs.length) {
    throw new ImageFormatError(`manifest ${image.manifestDescriptor.digest} has ${layers.length} layers but its config lists ${diffIDs.length} diff_ids`);
  }
  for (const layer of layers) if (kindOf(layer.mediaType) !== 'layer') throw new UnsupportedError(`layer ${layer.digest} has media type ${quote(layer.mediaType)}, which is not a layer strata can apply`);
  return layers;
}

/** Whether a layer may legitimately be absent from the store (non-distributable: fetched from its URLs, if at all). */
export function mayBeAbsent(d: Descriptor): boolean {
  return isForeignLayer(d.mediaType);
}

/**
 * Every descriptor `target` reaches for `choice`, each once, parents before children: what an export writes
 * and an import must have. Missing blobs are NOT_FOUND, except manifests an index lists that are not in
 * the store (other platforms) and foreign layers, which are skipped. Attestations are left out unless asked.
 */
export function reachable(content: BlobReader, target: Descriptor, choice: PlatformChoice, options: { attestations?: boolean } = {}): Descriptor[] {
  const out = new Map<string, Descriptor>();
  const need = (d: Descriptor, what: string) => {
    if (!content.has(d.digest)) throw new NotFoundError(`${what} ${d.digest} is not in the store`, { path: d.digest });
  };
  const visit = (d: Descriptor, depth: number, path: Set<string>): void => {
    if (path.has(d.digest)) throw new ImageFormatError(`${d.digest} is referenced from inside itself`);
    if (depth > MAX_DEPTH) throw new ImageFormatError(`indexes nest deeper than ${MAX_DEPTH}`);
    if (out.has(d.digest)) return;
    const kind = kindOf(d.mediaType);
    need(d, kind === 'unknown' ? 'blob' : kind);
    out.set(d.digest, d);
    path.add(d.digest);
    if (kind === 'index') {
      const listed = readIndex(content, d).manifests;
      for (const child of options.attestations ? listed : chooseManifests(listed, choice)) {
        if (kindOf(child.mediaType) === 'manifest' && !content.has(child.digest) && depth >= 0) continue;
        visit(child, depth + 1, path);
      }
    } else if (kind === 'manifest') {
      const manifest = readManifest(content, d);
      need(manifest.config, 'config');
      readConfig(content, manifest.config);
      out.set(manifest.config.digest, manifest.config);
      for (const layer of manifest.layers) {
        if (!content.has(layer.digest) && mayBeAbsent(layer)) continue;
        need(layer, 'layer');
        const size = content.size(layer.digest);
        if (size !== layer.size) throw new ImageFormatError(`layer ${layer.digest} is ${size} bytes, its descriptor says ${layer.size}`);
        out.set(layer.digest, layer);
      }
    }
    path.delete(d.digest);
  };
  visit(target, 0, new Set());
  return [...out.values()];
}
