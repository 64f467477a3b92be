/**
 * `pull`: an image from a registry into a root's content store, named by the reference it was pulled by (as
 * `docker pull` names it), and unpacked when asked.
 *
 * Manifests come first, checked against their digests, and the platforms are chosen from an index; then the
 * blobs, a few at a time and each once, streamed straight into ingests of the content store and verified on
 * the way. A transfer that breaks resumes with a `Range` request (and copes with a registry that sends the
 * whole blob instead); a blob that fails verification is discarded and fetched once more from the start,
 * never published. The work runs under a lease, so a collection meanwhile takes nothing it fetched.
 */
import { DigestMismatchError, eachLimited, FailedPreconditionError, ImageFormatError, NotFoundError } from '@strata/core';
import {
  chooseManifests,
  formatPlatform,
  hostPlatform,
  layersOf,
  mediaTypes,
  normalizeReference,
  parseIndex,
  parseManifest,
  parseReference,
  platformImages,
  type Descriptor,
  type Images,
  type PlatformChoice,
} from '@strata/images';
import { Registry, type RegistryOptions } from './registry.js';
import { recordSource } from './sources.js';
import { sleep, withRetries, type RetryEvent } from './transport.js';

/** What a transfer reports as it goes. */
export type TransferEvent =
  | { readonly kind: 'blob'; readonly digest: string; readonly size: number; readonly state: 'exists' | 'start' | 'done' | 'mounted' | 'uploaded' }
  | { readonly kind: 'bytes'; readonly digest: string; readonly size: number; readonly done: number }
  | { readonly kind: 'retry'; readonly what: string; readonly attempt: number; readonly waitMs: number; readonly reason: string };

export interface PullOptions extends RegistryOptions {
  /** Platforms to take from an index (default: the host's). */
  readonly platform?: PlatformChoice;
  /** Unpack the image for the platform once pulled (not with all platforms). */
  readonly unpack?: boolean;
  /** Blobs fetched at once (default 3). */
  readonly concurrency?: number;
  readonly onProgress?: (event: TransferEvent) => void;
}

export interface PullResult {
  /** The name the image is stored under: the reference as pulled, normalized. */
  readonly name: string;
  readonly target: Descriptor;
  /** Blobs fetched, and their bytes. */
  readonly fetched: number;
  readonly bytes: number;
  /** Blobs the store had already. */
  readonly present: number;
  /** Bytes received twice: after a broken transfer a registry sent again, or a blob that failed verification. */
  readonly refetched: number;
  /** The top chainID, when unpacked. */
  readonly chainID?: string;
}

/** What a retry loop over a transfer reports, and the signal that stops it. */
export function retryReports(what: string, registry: Registry, progress: ((event: TransferEvent) => void) | undefined) {
  return { ...(registry.signal ? { signal: registry.signal } : {}), ...(progress ? { onRetry: (e: RetryEvent) => progress({ kind: 'retry', what, ...e }) } : {}) };
}

/** A transfer that ended before its size: as transient as a reset connection. */
class Truncated extends Error {
  readonly code = 'ECONNRESET';
}

/** Pulls `reference` into `images`. */
export async function pullImage(images: Images, reference: string, options: PullOptions = {}): Promise<PullResult> {
  const ref = parseReference(reference);
  const name = normalizeReference(reference);
  const repository = ref.path;
  const choice = options.platform ?? { platform: hostPlatform() };
  const progress = options.onProgress;
  if (options.unpack && 'all' in choice) throw new FailedPreconditionError('unpack takes one platform: pull with --platform, or without --all-platforms');
  const registry = new Registry(ref.domain, { ...options, onRetry: (e) => progress?.({ kind: 'retry', ...e }) });
  const stats = { fetched: 0, bytes: 0, present: 0, refetched: 0 };
  const content = images.content;
  try {
    const pulled = await images.leases.with(async (lease) => {
      /** A manifest or index, fetched, checked and stored (held by the lease). */
      const document = async (reference: string, expected?: Descriptor): Promise<{ descriptor: Descriptor; bytes: Buffer }> => {
        const got = await registry.manifest(repository, reference);
        if (expected !== undefined && (got.digest !== expected.digest || got.bytes.length !== expected.size)) {
          throw new DigestMismatchError(`manifest ${expected.digest} of ${repository}: the registry sent ${got.bytes.length} bytes with digest ${got.digest}`);
        }
        await content.ingest(got.bytes, { digest: got.digest, size: got.bytes.length }, { lease: lease.id });
        return { descriptor: { mediaType: got.mediaType, digest: got.digest, size: got.bytes.length, ...(expected?.platform ? { platform: expected.platform } : {}) }, bytes: got.bytes };
      };

      const top = await document(ref.digest ?? ref.tag ?? 'latest');
      const manifests: { descriptor: Descriptor; bytes: Buffer }[] = [];
      const seen = new Set<string>();
      const walk = async (d: { descriptor: Descriptor; bytes: Buffer }, path: readonly string[]): Promise<void> => {
        if (path.length > 8 || path.includes(d.descriptor.digest)) throw new ImageFormatError(`the indexes of ${repository} nest too deep, or name themselves`);
        if (mediaTypes.kindOf(d.descriptor.mediaType) !== 'index') {
          if (!seen.has(d.descriptor.digest)) manifests.push(d); // one manifest may serve two platforms
          seen.add(d.descriptor.digest);
          return;
        }
        const index = parseIndex(d.bytes, `index ${d.descriptor.digest}`);
        for (const child of chooseManifests(index.manifests, choice)) {
          const kind = mediaTypes.kindOf(child.mediaType);
          if (kind !== 'index' && kind !== 'manifest') continue; // an artifact: not an image
          if (path.includes(child.digest) || child.digest === d.descriptor.digest) throw new ImageFormatError(`index ${d.descriptor.digest} of ${repository} names itself`);
          await walk(await document(child.digest, child), [...path, d.descriptor.digest]);
        }
      };
      await walk(top, []);
      if (manifests.length === 0) {
        const wanted = 'all' in choice ? 'any platform' : formatPlatform(choice.platform);
        throw new NotFoundError(`${name} has no image for ${wanted}`, { path: name });
      }

      // The blobs, each once, a few at a time.
      const blobs = new Map<string, Descriptor>();
      for (const m of manifests) {
        const manifest = parseManifest(m.bytes, `manifest ${m.descriptor.digest}`);
        blobs.set(manifest.config.digest, manifest.config);
        for (const layer of manifest.layers) if (!mediaTypes.isForeignLayer(layer.mediaType)) blobs.set(layer.digest, layer); // never fetched from their URLs
      }
      await eachLimited([...blobs.values()], options.concurrency ?? 3, (d) => fetchBlob(images, registry, repository, d, lease.id, stats, progress));

      // Whole and well-formed before it is named (configs parsed, layers against diffIDs).
      for (const image of platformImages(content, top.descriptor, choice)) layersOf(image);
      // Named, everything pulled is reachable without the lease: it goes in the same transaction (one sync fewer).
      images.root.metadata.transaction(() => {
        recordSource(content, [...blobs.keys(), ...manifests.map((m) => m.descriptor.digest), top.descriptor.digest], ref.domain, repository);
        images.images.put(name, top.descriptor);
        images.leases.delete(lease.id);
      });
      return top.descriptor;
    }, { 'strata.io/work': 'pull' });
    let chainID: string | undefined;
    if (options.unpack && 'platform' in choice) {
      chainID = (await images.unpack(name, { platform: choice })).chainID;
    }
    return { name, target: pulled, ...stats, ...(chainID !== undefined ? { chainID } : {}) };
  } finally {
    await registry.close();
  }
}

/**
 * One blob into the store (held by the lease): skipped when there, else streamed into an ingest from where a
 * broken transfer left it, verified, published. Another process writing the same blob is waited for.
 */
async function fetchBlob(
  images: Images,
  registry: Registry,
  repository: string,
  d: Descriptor,
  lease: string,
  stats: { fetched: number; bytes: number; present: number; refetched: number },
  progress: ((event: TransferEvent) => void) | undefined,
): Promise<void> {
  const content = images.content;
  const ref = `pull:${d.digest}`;
  let fresh = 0; // fetches from the start after a blob that failed verification
  for (;;) {
    if (content.hold(d.digest, lease)) {
      stats.present++;
      progress?.({ kind: 'blob', digest: d.digest, size: d.size, state: 'exists' });
      return;
    }
    let writer;
    try {
      writer = content.writer(ref, { digest: d.digest, size: d.size }, { lease });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'ALREADY_EXISTS') continue;
      if (code === 'FAILED_PRECONDITION') {
        await sleep(200, registry.signal); // another writer (a process pulling the same blob) has it: wait until it is published
        continue;
      }
      throw error;
    }
    progress?.({ kind: 'blob', digest: d.digest, size: d.size, state: 'start' });
    try {
      await withRetries(registry.transport.options, `blob ${d.digest}`, async () => {
        if (writer.offset >= d.size) return;
        const { response, start } = await registry.openBlob(repository, d.digest, writer.offset);
        let skip = writer.offset - start; // a registry that ignored the range sends what we have again
        stats.refetched += skip;
        // An async iterator, which lets the socket fill between turns: fewer, fuller reads than flowing mode.
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          if (skip >= chunk.length) {
            skip -= chunk.length;
            continue;
          }
          const wait = writer.append(skip > 0 ? chunk.subarray(skip) : chunk); // past the size: FAILED_PRECONDITION, the ingest goes
          if (wait) await wait;
          skip = 0;
          progress?.({ kind: 'bytes', digest: d.digest, size: d.size, done: writer.offset });
        }
        if (writer.offset < d.size) throw new Truncated(`blob ${d.digest} ended at byte ${writer.offset} of ${d.size}`);
      }, retryReports(`blob ${d.digest}`, registry, progress));
      await writer.commit();
      stats.fetched++;
      stats.bytes += d.size;
      progress?.({ kind: 'blob', digest: d.digest, size: d.size, state: 'done' });
      return;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'ALREADY_EXISTS') continue; // published meanwhile by another pull
      // A wrong blob (bytes that are not its digest, or more of them than it has) was deleted with its
      // ingest: one more try from the start, then it is the registry's fault.
      if (code === 'FAILED_PRECONDITION' && fresh++ === 0) {
        stats.refetched += writer.offset;
        continue;
      }
      writer.close(); // kept, if it can be: the next pull resumes it
      if (code === 'FAILED_PRECONDITION') throw new DigestMismatchError(`blob ${d.digest} of ${repository}: ${(error as Error).message}`, { cause: error });
      throw error;
    }
  }
}

