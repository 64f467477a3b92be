/**
 * An image with its uncompressed layers compressed, as `docker push` and skopeo send an image to a registry:
 * a build keeps its layers as plain tar in the store, where applying and diffing read them fastest, and a
 * registry should not get them so. Each `tar` layer becomes a `tar+gzip` (or `tar+zstd`) blob that
 * decompresses to the same bytes (its diffID checked as it is written), in a copy of the manifest that
 * keeps every other field, under a copy of the index. The compressed blob is remembered on the plain one
 * (a label), so a later push reuses it while the store holds it; the bytes are the same anyway (the
 * compressors' output depends only on their input), so the registry sees the same digests every time.
 */
import { createReadStream, rmSync } from 'node:fs';
import { DigestMismatchError, writeBlob } from '@strata/core';
import type { ContentStore } from './content.js';
import { MAX_DOCUMENT_BYTES, encodeJson, type Descriptor } from './documents.js';
import { DOCKER_LAYER, DOCKER_LAYER_GZIP, kindOf, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD } from './media-types.js';
import { UNCOMPRESSED_LABEL, UNCOMPRESSED_SIZE_LABEL } from './unpack.js';

export type LayerCompression = 'gzip' | 'zstd';

/** On a plain layer: the digest of its compressed form made for a push. */
const compressedLabel = (compression: LayerCompression) => `strata.io/compressed.${compression}`;

/** The media type a plain layer's compressed form has in its manifest's family (Docker's has no zstd; containerd writes OCI's). */
function compressedType(mediaType: string, compression: LayerCompression): string | undefined {
  if (mediaType !== OCI_LAYER && mediaType !== DOCKER_LAYER) return undefined;
  if (compression === 'zstd') return OCI_LAYER_ZSTD;
  return mediaType === DOCKER_LAYER ? DOCKER_LAYER_GZIP : OCI_LAYER_GZIP;
}

/**
 * `target` (a manifest or an index) with every plain layer the store holds compressed, the new blobs and
 * documents held by `lease`; `target` itself when it has none. Children of an index the store lacks stay as
 * they are. Throws DIGEST_MISMATCH when a stored layer does not read back as its digest.
 */
export async function compressLayers(content: ContentStore, target: Descriptor, compression: LayerCompression, lease: string, signal?: AbortSignal): Promise<Descriptor> {
  const kind = kindOf(target.mediaType);
  if (kind !== 'index' && kind !== 'manifest') return target;
  const document = JSON.parse(content.readBytes(target.digest, MAX_DOCUMENT_BYTES).toString()) as Record<string, unknown> & { manifests?: Descriptor[]; layers?: Descriptor[] };
  let changed = false;
  const field = kind === 'index' ? 'manifests' : 'layers';
  const entries: Descriptor[] = [];
  for (const entry of document[field] ?? []) {
    signal?.throwIfAborted();
    let replaced = entry;
    if (kind === 'index') {
      if (content.has(entry.digest)) replaced = await compressLayers(content, entry, compression, lease, signal);
    } else {
      const mediaType = compressedType(entry.mediaType, compression);
      if (mediaType !== undefined && content.has(entry.digest)) replaced = { ...entry, mediaType, ...(await compressBlob(content, entry.digest, compression, lease, signal)) };
    }
    changed ||= replaced !== entry;
    entries.push(replaced);
  }
  if (!changed) return target;
  const bytes = encodeJson({ ...document, [field]: entries });
  const staged = await content.stageDocuments([bytes]);
  try {
    staged.publish(lease);
  } finally {
    staged.discard();
  }
  return { ...target, ...staged.blobs[0]! };
}

/** The compressed form of plain blob `digest`: the one a push made before, if the store still holds it, else a new one. */
async function compressBlob(content: ContentStore, digest: string, compression: LayerCompression, lease: string, signal?: AbortSignal): Promise<{ digest: string; size: number }> {
  const known = content.info(digest).labels[compressedLabel(compression)];
  if (known !== undefined && content.has(known) && content.info(known).labels[UNCOMPRESSED_LABEL] === digest && content.hold(known, lease)) return { digest: known, size: content.size(known) };
  const temp = content.temporaryPath();
  const written = await writeBlob(createReadStream(content.path(digest), { highWaterMark: 1024 * 1024 }), temp, { compression, durable: true, ...(signal ? { signal } : {}) });
  if (written.uncompressedDigest !== digest) {
    rmSync(temp, { force: true });
    throw new DigestMismatchError(`layer ${digest} reads back as ${written.uncompressedDigest}: the store's copy is damaged (strata fsck --content)`, { path: digest });
  }
  await content.adopt(temp, written.digest, { lease, labels: { [UNCOMPRESSED_LABEL]: digest, [UNCOMPRESSED_SIZE_LABEL]: String(written.uncompressedSize) } });
  try {
    content.update(digest, { [compressedLabel(compression)]: written.digest }, [`labels.${compressedLabel(compression)}`]);
  } catch {
    // A cache only: the next push compresses it again, to the same bytes.
  }
  return { digest: written.digest, size: written.size };
}
