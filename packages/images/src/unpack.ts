/**
 * Unpack: an image's layers into a chain of committed snapshots named by chainID, so images that share
 * base layers share snapshots, and unpacking costs only the layers not unpacked before.
 *
 * Each layer is applied into a new active snapshot on the previous chainID, its diffID computed in the same
 * pass and checked against the config before the snapshot is committed: a layer that is not what the config
 * says commits nothing. Two unpacks racing for the same chainID both apply it; the first commit wins and the
 * other drops its copy (ALREADY_EXISTS at commit is success). The work runs under a lease, so a collection
 * meanwhile keeps the snapshots it made and the blobs it reads.
 */
import { randomBytes } from 'node:crypto';
import { chainIDs, DigestMismatchError, NotFoundError, isAlreadyExists, isNotFound, type ReadLimits } from '@strata/core';
import type { Metadata, Snapshotter } from '@strata/snapshotter';
import type { ContentStore } from './content.js';
import { layersOf, mayBeAbsent, type PlatformImage } from './graph.js';
import type { Lease, Leases } from './leases.js';

/** The label containerd puts on layer blobs and snapshots: the uncompressed digest. */
export const UNCOMPRESSED_LABEL = 'containerd.io/uncompressed';
/** strata's label on layer blobs: bytes of the uncompressed tar (what an export to docker format needs up front). */
export const UNCOMPRESSED_SIZE_LABEL = 'strata.io/uncompressed-size';

export interface UnpackOptions {
  /** Limits on each layer (entries, bytes inflated, header sizes): a layer past them commits nothing. */
  readonly limits?: ReadLimits;
  /** Called as layers are read: bytes of compressed layers read so far, out of the total to unpack. */
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

/** What happened to one layer. */
export interface UnpackedLayer {
  readonly chainID: string;
  readonly diffID: string;
  readonly digest: string;
  /** True when this unpack applied it; false when its snapshot was there already (shared). */
  readonly applied: boolean;
  /** Bytes of the layer blob read (0 when shared). */
  readonly bytes: number;
}

export interface UnpackResult {
  /** The chainID of the top layer: the parent of a container's snapshot; undefined for an image without layers. */
  readonly chainID: string | undefined;
  readonly layers: UnpackedLayer[];
}

export interface UnpackParts {
  readonly metadata: Metadata;
  readonly snapshotter: Snapshotter;
  readonly content: ContentStore;
  readonly leases: Leases;
}

/** Whether the committed snapshot `key` exists. */
async function committed(sn: Snapshotter, key: string): Promise<boolean> {
  try {
    return (await sn.stat(key)).kind === 'committed';
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

/** Unpacks `image` (under `lease`, or a lease of its own). */
export async function unpackImage(parts: UnpackParts, image: PlatformImage, options: UnpackOptions = {}, lease?: Lease): Promise<UnpackResult> {
  if (lease === undefined) return parts.leases.with((own) => unpackImage(parts, image, options, own), { 'strata.io/work': 'unpack' });
  const { snapshotter: sn, content, leases, metadata } = parts;
  const layers = layersOf(image);
  const diffIDs = image.config.rootfs.diff_ids;
  const chains = chainIDs(diffIDs);

  // What is there already is held by the lease first, so the total to read is known and nothing goes meanwhile.
  leases.add(lease.id, ...chains.map((id) => ({ type: 'snapshot' as const, id })));
  const present: boolean[] = [];
  for (const chain of chains) present.push(await committed(sn, chain));
  // Above the first missing layer, every chain is made anew (its parent is new).
  const first = present.indexOf(false);
  const total = first < 0 ? 0 : layers.slice(first).reduce((sum, l) => sum + l.size, 0);
  let done = 0;

  const out: UnpackedLayer[] = [];
  for (let i = 0; i < layers.length; i++) {
    options.signal?.throwIfAborted();
    const layer = layers[i]!;
    const diffID = diffIDs[i]!;
    const chain = chains[i]!;
    const parent = i === 0 ? undefined : chains[i - 1];
    if (present[i] && (first < 0 || i < first)) {
      out.push({ chainID: chain, diffID, digest: layer.digest, applied: false, bytes: 0 });
      continue;
    }
    if (await committed(sn, chain)) {
      // Made meanwhile by another unpack.
      out.push({ chainID: chain, diffID, digest: layer.digest, applied: false, bytes: 0 });
      continue;
    }
    const key = `extract-${process.pid}-${randomBytes(6).toString('hex')}-${chain.slice(7, 19)}`;
    // One transaction: the blob held (if it is there) and the snapshot-to-be named in the lease.
    const there = metadata.transaction(() => {
      if (!content.hold(layer.digest, lease.id)) return false;
      leases.add(lease.id, { type: 'snapshot', id: key });
      return true;
    });
    if (!there) {
      const why = mayBeAbsent(layer) ? ' (a non-distributable layer: strata does not fetch it from its URLs)' : '';
      throw new NotFoundError(`layer ${i} of ${image.manifestDescriptor.digest}, ${layer.digest}, is not in the store${why}`, { path: layer.digest });
    }
    await sn.prepare(key, parent, { labels: { 'containerd.io/snapshot.ref': chain } });
    let committedHere = false;
    try {
      const onProgress = options.onProgress;
      const onRead = onProgress
        ? (n: number) => {
            done += n;
            onProgress(done, total);
          }
        : undefined;
      const applied = await sn.applyLayer(key, content.path(layer.digest), { ...options.limits, ...(onRead ? { onRead } : {}), ...(options.signal ? { signal: options.signal } : {}) });
      if (applied.digest !== layer.digest) {
        throw new DigestMismatchError(`layer ${i} of ${image.manifestDescriptor.digest}: the stored blob is ${applied.digest}, not ${layer.digest} (the store is damaged; run fsck --content)`);
      }
      if (applied.diffID !== diffID) {
        throw new DigestMismatchError(`layer ${i} of ${image.manifestDescriptor.digest} (${layer.digest}) unpacks to ${applied.diffID}, but the config's rootfs.diff_ids[${i}] is ${diffID}: nothing was committed`);
      }
      try {
        await sn.commit(chain, key, { labels: { [UNCOMPRESSED_LABEL]: diffID } });
        committedHere = true;
      } catch (error) {
        if (!isAlreadyExists(error)) throw error; // else: another unpack committed it first; ours goes below
      }
      try {
        content.update(layer.digest, { [UNCOMPRESSED_LABEL]: diffID, [UNCOMPRESSED_SIZE_LABEL]: String(applied.uncompressedSize) }, [`labels.${UNCOMPRESSED_LABEL}`, `labels.${UNCOMPRESSED_SIZE_LABEL}`]);
      } catch {
        // labels are a cache of what was learnt; losing one costs a later export a counting pass
      }
      out.push({ chainID: chain, diffID, digest: layer.digest, applied: true, bytes: layer.size });
    } finally {
      // Committed, the key is gone; else the partial snapshot goes (the lease's record of it goes with the lease).
      if (!committedHere) await sn.remove(key).catch(() => {});
    }
  }
  return { chainID: chains.at(-1), layers: out };
}
