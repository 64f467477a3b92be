/**
 * `push`: an image of a root to a registry. Blobs first, a few at a time: skipped when the repository has
 * them (`HEAD`), mounted when the registry holds them in another repository strata knows of (pulled from or
 * pushed to before: the blob's `containerd.io/distribution.source.<registry>` label), else uploaded. Blobs up
 * to a chunk go in one `PUT`; larger ones in `PATCH` chunks of at least the registry's minimum, and an
 * upload that breaks resumes from the offset the registry reports. Manifests last, children before the index
 * that names them, so a tag never names something incomplete.
 */
import { eachLimited, FailedPreconditionError, NotFoundError, quote, readChunks } from '@strata/core';
import { compressLayers, DEFAULT_LEASE_TTL_MS, hostPlatform, MAX_DOCUMENT_BYTES, mediaTypes, normalizeReference, parseReference, platformImages, readIndex, readManifest, type Descriptor, type Images, type LayerCompression, type PlatformChoice } from '@strata/images';
import { retryReports, type TransferEvent } from './pull.js';
import { Registry, type RegistryOptions, type UploadSession } from './registry.js';
import { recordSource, sourcesOf } from './sources.js';
import { withRetries } from './transport.js';

export interface PushOptions extends RegistryOptions {
  /** Push only this platform of an index (default: the whole index when the store holds all of it). */
  readonly platform?: PlatformChoice;
  /**
   * What plain (uncompressed) layers become on the way, as `docker push` and skopeo send them: compressed
   * into new blobs under a new manifest (and index), which is what the registry gets and the result names.
   * Undefined: everything as stored. A push to a digest goes as stored (the digest names those bytes).
   */
  readonly compression?: LayerCompression;
  /** Blobs sent at once (default 3). */
  readonly concurrency?: number;
  /** Blobs up to this size go in one request; larger ones in chunks of this size (default 128 MiB; streamed from the file either way). */
  readonly chunkSize?: number;
  readonly onProgress?: (event: TransferEvent) => void;
}

export interface PushResult {
  /** Where it went: `registry/repository:tag` (or `@digest`). */
  readonly name: string;
  /** The digest of what the tag names (with `compression`, of the compressed copy, not the local image). */
  readonly digest: string;
  /** The media type and size of what the tag names. */
  readonly mediaType: string;
  readonly size: number;
  readonly uploaded: number;
  readonly mounted: number;
  readonly existed: number;
  /** Bytes uploaded. */
  readonly bytes: number;
}

/** Whether the store holds all an index lists (then it is pushed as it is). */
function complete(images: Images, d: Descriptor): boolean {
  return readIndex(images.content, d).manifests.every((m) => images.content.has(m.digest) && (mediaTypes.kindOf(m.mediaType) !== 'index' || complete(images, m)));
}

/** Pushes the image `source` (a name or ID) to `destination` (default: its own name). */
export async function pushImage(images: Images, source: string, destination?: string, options: PushOptions = {}): Promise<PushResult> {
  const image = images.image(source);
  const target = destination ?? image.name;
  if (target === undefined) throw new FailedPreconditionError(`image ${quote(source)} has no name: say where to push it`);
  const ref = parseReference(target);
  const name = normalizeReference(target);
  const repository = ref.path;
  const progress = options.onProgress;
  const registry = new Registry(ref.domain, { ...options, onRetry: (e) => progress?.({ kind: 'retry', ...e }) });
  const content = images.content;
  const stats = { uploaded: 0, mounted: 0, existed: 0, bytes: 0 };
  // The compressed documents and layers are held while they go; a later push finds the layers again by label.
  const lease = options.compression !== undefined && ref.digest === undefined ? images.leases.create({ expiresInMs: DEFAULT_LEASE_TTL_MS, labels: { 'strata.io/push': name } }) : undefined;
  try {
    // What goes: the index as it is when whole (and no platform was asked), else the platform's manifest.
    let top = image.target;
    const whole = mediaTypes.kindOf(top.mediaType) === 'index' && options.platform === undefined && complete(images, top);
    if (!whole) {
      const chosen = platformImages(content, top, options.platform ?? { platform: hostPlatform() });
      if (mediaTypes.kindOf(top.mediaType) === 'index' && chosen.length > 1) throw new FailedPreconditionError(`${quote(source)} is part of an index: push one platform (--platform), or pull the rest first`);
      if (mediaTypes.kindOf(top.mediaType) === 'index') top = chosen[0]!.manifestDescriptor;
    }
    if (lease !== undefined) top = await compressLayers(content, top, options.compression!, lease.id, options.signal);
    const manifests: Descriptor[] = [];
    if (whole) {
      const collect = (d: Descriptor) => {
        for (const child of readIndex(content, d).manifests) {
          if (mediaTypes.kindOf(child.mediaType) === 'index') collect(child);
          manifests.push(child);
        }
      };
      collect(top);
    } else manifests.push(top);

    const blobs = new Map<string, Descriptor>();
    for (const m of manifests) {
      if (mediaTypes.kindOf(m.mediaType) !== 'manifest') continue;
      const manifest = readManifest(content, m);
      blobs.set(manifest.config.digest, manifest.config);
      for (const layer of manifest.layers) {
        if (content.has(layer.digest)) blobs.set(layer.digest, layer);
        else if (!mediaTypes.isForeignLayer(layer.mediaType)) throw new NotFoundError(`layer ${layer.digest} of ${quote(source)} is not in the store`, { path: layer.digest });
      }
    }
    // Learn how the registry authenticates before the blobs go in parallel (else each meets a 401 first).
    await registry.ping();
    await eachLimited([...blobs.values()], options.concurrency ?? 3, async (d) => {
      if ((await registry.blobSize(repository, d.digest, [`repository:${repository}:pull,push`])) !== undefined) {
        stats.existed++;
        progress?.({ kind: 'blob', digest: d.digest, size: d.size, state: 'exists' });
        return;
      }
      const from = sourcesOf(content, d.digest, ref.domain).find((r) => r !== repository);
      let session: UploadSession | 'mounted' | undefined;
      if (from !== undefined) session = await registry.startUpload(repository, { digest: d.digest, from });
      if (session === 'mounted') {
        stats.mounted++;
        progress?.({ kind: 'blob', digest: d.digest, size: d.size, state: 'mounted' });
        return;
      }
      progress?.({ kind: 'blob', digest: d.digest, size: d.size, state: 'start' });
      await upload(registry, repository, images, d, session, options.chunkSize ?? 128 * 1024 * 1024, progress);
      stats.uploaded++;
      stats.bytes += d.size;
      progress?.({ kind: 'blob', digest: d.digest, size: d.size, state: 'uploaded' });
    });

    // Manifests: the children by digest, then what the tag names.
    for (const m of manifests) if (m.digest !== top.digest) await registry.putManifest(repository, m.digest, content.readBytes(m.digest, MAX_DOCUMENT_BYTES), m.mediaType);
    const digest = await registry.putManifest(repository, ref.digest ?? ref.tag ?? 'latest', content.readBytes(top.digest, MAX_DOCUMENT_BYTES), top.mediaType);

    // The registry holds these now: later pushes to its other repositories mount them.
    images.root.metadata.transaction(() => recordSource(content, [...blobs.keys(), ...manifests.map((m) => m.digest), top.digest], ref.domain, repository));
    return { name, digest, mediaType: top.mediaType, size: top.size, ...stats };
  } finally {
    await registry.close();
    if (lease !== undefined) images.leases.delete(lease.id);
  }
}

/** Uploads one blob: in one request up to `chunkSize`, else in chunks that resume where the registry says. */
async function upload(
  registry: Registry,
  repository: string,
  images: Images,
  d: Descriptor,
  begun: UploadSession | undefined,
  chunkSize: number,
  progress: ((event: TransferEvent) => void) | undefined,
): Promise<void> {
  const path = images.content.path(d.digest);
  let session = begun;
  const policy = registry.transport.options;
  const what = `upload of ${d.digest}`;
  const reports = retryReports(what, registry, progress);
  /** The file's bytes from `start` as they go, reported. */
  async function* sent(chunks: AsyncIterable<Uint8Array>, start: number): AsyncIterable<Uint8Array> {
    let done = start;
    for await (const chunk of chunks) {
      yield chunk;
      done += chunk.length;
      progress?.({ kind: 'bytes', digest: d.digest, size: d.size, done });
    }
  }
  if (d.size <= chunkSize) {
    // One PUT; a broken one starts over in a new upload (its stream cannot be sent again).
    await withRetries(policy, what, async (attempt) => {
      const current = attempt === 1 && session !== undefined ? session : ((await registry.startUpload(repository)) as UploadSession);
      session = undefined;
      await registry.finishUpload(repository, current, d.digest, () => sent(readChunks(path), 0), d.size);
    }, reports);
    return;
  }
  let current = session ?? ((await withRetries(policy, what, () => registry.startUpload(repository), reports)) as UploadSession);
  await withRetries(policy, what, async (attempt) => {
    if (attempt > 1) {
      // After a failure: on from where the registry says the upload stands, or anew when it has let the
      // session go (distribution does once an answer was lost: its location then names a stale offset).
      current = await registry.uploadStatus(repository, current).catch(async (error: unknown) => {
        if ((error as { code?: string }).code !== 'NOT_FOUND') throw error;
        return (await registry.startUpload(repository)) as UploadSession;
      });
    }
    const size = Math.max(chunkSize, current.minChunk ?? 0);
    while (current.offset < d.size) {
      const length = Math.min(size, d.size - current.offset);
      const from = current.offset;
      current = await registry.uploadChunk(repository, current, () => sent(readChunks(path, { start: from, length }), from), length);
    }
    await registry.finishUpload(repository, current, d.digest);
  }, reports);
}
