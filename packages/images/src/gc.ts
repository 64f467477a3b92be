/**
 * Garbage collection, with containerd's model: mark from the roots, along references, and sweep the rest,
 * content and snapshots alike.
 *
 * Roots: images (named and dangling), containers (their image's content and their own snapshot), leases
 * that have not expired (what they hold), and anything labelled `containerd.io/gc.root`. References: an
 * index → its manifests; a manifest → its config and layers; a config → the snapshots of its layers'
 * chainIDs (an unpacked image keeps its chain); a snapshot → its parent; and the labels
 * `containerd.io/gc.ref.content.<any>` (→ a blob) and `containerd.io/gc.ref.snapshot.<any>` (→ a
 * snapshot) on blobs and snapshots.
 *
 * Marking, deciding and forgetting (blob files unlinked, snapshot records dropped) happen in one write
 * transaction of the root's database: a publish, a lease or an image written by another process lands
 * wholly before or wholly after it, never in between. Snapshot directories go afterwards with the
 * snapshotter's cleanup (as containerd leaves them to its backend), and a removal that fails is reported
 * and does not stop the sweep.
 */
import { chainIDs, removeTree } from '@strata/core';
import type { Root, SnapshotEntry } from '@strata/snapshotter';
import type { ContainerStore } from './container-store.js';
import type { ContentStore } from './content.js';
import { MAX_DOCUMENT_BYTES, configDiffIDs, parseIndex, parseManifest, type Descriptor } from './documents.js';
import type { ImageStore } from './image-store.js';
import type { Leases } from './leases.js';
import { kindOf } from './media-types.js';

/** What a collection freed. */
export interface GcResult {
  /** Blobs deleted. */
  readonly blobs: string[];
  /** Snapshots forgotten (their directories removed). */
  readonly snapshots: string[];
  /** Abandoned ingests and temporary files removed. */
  readonly ingests: number;
  /** Expired leases deleted. */
  readonly leases: string[];
  /** Bytes of the blobs and of committed snapshots' own layers freed. */
  readonly bytes: number;
  /** Removals that failed (the rest of the sweep went on). */
  readonly errors: string[];
}

export const GC_ROOT = 'containerd.io/gc.root';
const REF_CONTENT = 'containerd.io/gc.ref.content.';
const REF_SNAPSHOT = 'containerd.io/gc.ref.snapshot.';
/** An ingest nobody holds is left alone this long after its last write: it may be one being opened. */
const INGEST_GRACE_MS = 60_000;

/** What collection needs of a root. */
export interface GcParts {
  readonly root: Root;
  readonly content: ContentStore;
  readonly leases: Leases;
  readonly images: ImageStore;
  readonly containers: ContainerStore;
}

/** The label references of one object. */
function labelRefs(labels: Readonly<Record<string, string>>, markContent: (digest: string) => void, markSnapshot: (key: string) => void): void {
  for (const [key, value] of Object.entries(labels)) {
    if (key.startsWith(REF_CONTENT)) markContent(value);
    else if (key.startsWith(REF_SNAPSHOT)) markSnapshot(value);
  }
}

/** The children of a document, read from the store; a malformed or oversized one has none (it is not ours to judge here). */
function references(content: ContentStore, d: Descriptor, markContent: (d: Descriptor) => void, markSnapshot: (key: string) => void): void {
  const kind = kindOf(d.mediaType);
  if (kind === 'layer' || kind === 'unknown') return;
  let bytes: Buffer;
  try {
    bytes = content.readBytes(d.digest, MAX_DOCUMENT_BYTES);
  } catch {
    return;
  }
  try {
    if (kind === 'index') for (const m of parseIndex(bytes, d.digest).manifests) markContent(m);
    else if (kind === 'manifest') {
      const manifest = parseManifest(bytes, d.digest);
      markContent(manifest.config);
      for (const layer of manifest.layers) markContent(layer);
    } else {
      const diffIDs = configDiffIDs(bytes, d.digest);
      for (const chain of chainIDs(diffIDs)) markSnapshot(chain);
    }
  } catch {
    // unreadable documents reference nothing
  }
}

/** Collects everything unreachable from the roots. */
export async function collectGarbage(parts: GcParts): Promise<GcResult> {
  const { root, content, leases, images, containers } = parts;
  const errors: string[] = [];
  const now = Date.now();
  const swept = root.metadata.transaction(() => {
    const { alive, expired } = leases.split(now);
    for (const id of expired) leases.delete(id);

    const snapshots = new Map<string, SnapshotEntry>();
    for (const entry of root.snapshotRecords()) snapshots.set(entry.key, entry);
    const markedContent = new Set<string>();
    const markedSnapshots = new Set<string>();
    const leasedIngests = new Set<string>();
    const contentQueue: Descriptor[] = [];
    const snapshotQueue: string[] = [];
    const markContent = (d: Descriptor) => {
      if (markedContent.has(d.digest)) return;
      markedContent.add(d.digest);
      contentQueue.push(d);
    };
    const markDigest = (digest: string) => markContent({ mediaType: 'application/octet-stream', digest, size: 0 });
    const markSnapshot = (key: string) => {
      if (markedSnapshots.has(key)) return;
      markedSnapshots.add(key);
      snapshotQueue.push(key);
    };

    for (const target of images.targets()) markContent(target);
    for (const c of containers.roots()) {
      markContent(c.target);
      markContent(c.manifest);
      markSnapshot(c.snapshot);
    }
    for (const id of alive) {
      for (const r of leases.resources(id)) {
        if (r.type === 'content') markDigest(r.id);
        else if (r.type === 'snapshot') markSnapshot(r.id);
        else leasedIngests.add(r.id);
      }
    }
    const allDigests = content.digests();
    const labelsOf = new Map<string, Readonly<Record<string, string>>>();
    for (const digest of allDigests) {
      let labels: Readonly<Record<string, string>>;
      try {
        labels = content.info(digest).labels;
      } catch {
        continue;
      }
      labelsOf.set(digest, labels);
      if (labels[GC_ROOT] !== undefined) markDigest(digest);
    }
    for (const entry of snapshots.values()) if (entry.labels[GC_ROOT] !== undefined) markSnapshot(entry.key);

    // Both queues feed each other (configs name snapshots; labels name blobs): run until both are empty.
    while (contentQueue.length > 0 || snapshotQueue.length > 0) {
      const d = contentQueue.pop();
      if (d !== undefined) {
        const labels = labelsOf.get(d.digest);
        if (labels === undefined) continue; // not in the store: nothing to keep or follow
        labelRefs(labels, markDigest, markSnapshot);
        references(content, d, markContent, markSnapshot);
        continue;
      }
      const entry = snapshots.get(snapshotQueue.pop()!);
      if (entry === undefined) continue;
      if (entry.parent !== undefined) markSnapshot(entry.parent);
      labelRefs(entry.labels, markDigest, markSnapshot);
    }

    const blobs: string[] = [];
    let bytes = 0;
    for (const digest of allDigests) {
      if (markedContent.has(digest)) continue;
      try {
        const size = content.info(digest).size;
        if (content.sweep(digest)) {
          blobs.push(digest);
          bytes += size;
        }
      } catch (error) {
        errors.push(`blob ${digest}: ${(error as Error).message}`);
      }
    }
    // Unmarked snapshots have only unmarked children (a marked child marks its parent): they go together.
    const doomed = [...snapshots.values()].filter((s) => !markedSnapshots.has(s.key));
    if (doomed.length > 0) root.forgetSnapshots(doomed.map((s) => s.key));
    for (const s of doomed) bytes += s.size ?? 0;
    return { blobs, snapshots: doomed.map((s) => s.key), leases: expired, leasedIngests, bytes };
  });

  let bytes = swept.bytes;
  if (swept.snapshots.length > 0) {
    try {
      await root.snapshotter.cleanup();
    } catch (error) {
      errors.push(`snapshot directories: ${(error as Error).message}`);
    }
  }
  let ingests = 0;
  for (const leftover of content.leftovers()) {
    if (leftover.locked || (leftover.ref !== undefined && swept.leasedIngests.has(leftover.ref))) continue;
    if (leftover.pid === undefined && now - leftover.mtimeMs < INGEST_GRACE_MS) continue;
    try {
      removeTree(leftover.path);
      ingests++;
    } catch (error) {
      errors.push(`ingest ${leftover.path}: ${(error as Error).message}`);
    }
  }
  return { blobs: swept.blobs, snapshots: swept.snapshots, ingests, leases: swept.leases, bytes, errors };
}
