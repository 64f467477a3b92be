/**
 * Export: images to an OCI image layout (a directory), an OCI archive (a tar of one), or a `docker save`
 * archive, as newer Docker writes it: `manifest.json` with `RepoTags`, uncompressed layers, and an OCI
 * index beside it, so Docker, podman and the OCI tools (skopeo, umoci) all load it.
 *
 * Blobs go out as stored (an OCI layout keeps them byte for byte; a directory gets reflinked copies where
 * the file system can), except in docker archives, whose layers are decompressed on the way out and checked
 * against the config's diffIDs as they are written. Every output is made whole or not at all: archives are
 * written under a temporary name and renamed, a directory is built beside its place and renamed in.
 */
import { randomBytes } from 'node:crypto';
import { constants, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import {
  AlreadyExistsError,
  decodeBlob,
  DigestMismatchError,
  digestBlob,
  InvalidArgumentError,
  NotFoundError,
  quote,
  writeEntries,
  type Entry,
  type WriteItem,
} from '@strata/core';
import type { ContentStore } from './content.js';
import { digestOf, encodeJson, type Descriptor, type Index, type Manifest } from './documents.js';
import { layersOf, platformImages, reachable, readIndex, type PlatformImage } from './graph.js';
import { kindOf, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_LAYOUT_VERSION, OCI_MANIFEST } from './media-types.js';
import { hostPlatform, type PlatformChoice } from './platform.js';
import { parseReference } from './reference.js';
import { UNCOMPRESSED_LABEL, UNCOMPRESSED_SIZE_LABEL } from './unpack.js';

export type ExportFormat = 'oci' | 'oci-archive' | 'docker';

export interface ExportOptions {
  readonly format?: ExportFormat;
  /**
   * Which platforms: by default an image goes whole when the store holds all of it, else its host-platform
   * manifest; a docker archive holds one platform per image (the host's unless told).
   */
  readonly platform?: PlatformChoice;
  /** mtime of the archive's entries, in seconds since the epoch (default `SOURCE_DATE_EPOCH`, else 0). */
  readonly sourceDateEpoch?: number;
  /** Called as blobs are written: bytes so far, of the total. */
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

/** One image to export: its name (none: exported by digest only) and its target. */
export interface ExportImage {
  readonly name: string | undefined;
  readonly target: Descriptor;
}

export interface ExportResult {
  readonly format: ExportFormat;
  /** The index.json entries written. */
  readonly manifests: Descriptor[];
  /** Bytes of blobs written. */
  readonly bytes: number;
}

/** `docker.io/library/alpine:3` → `alpine:3`, as Docker writes names into `RepoTags`. */
export function familiarName(name: string): string {
  const ref = parseReference(name);
  let path = ref.path;
  if (ref.domain === 'docker.io' && path.startsWith('library/')) path = path.slice('library/'.length);
  const repo = ref.domain === 'docker.io' ? path : `${ref.domain}/${path}`;
  return ref.tag !== undefined ? `${repo}:${ref.tag}` : repo;
}

/** index.json annotations naming an image, as containerd and Docker write them. */
function nameAnnotations(name: string | undefined): Record<string, string> {
  if (name === undefined) return {};
  const tag = parseReference(name).tag;
  return { 'io.containerd.image.name': name, ...(tag !== undefined ? { 'org.opencontainers.image.ref.name': tag } : {}) };
}

/** A blob the export writes: from the store as is, new bytes, or a layer decompressed. */
type OutBlob =
  | { readonly kind: 'stored'; readonly digest: string; readonly size: number }
  | { readonly kind: 'bytes'; readonly digest: string; readonly bytes: Buffer }
  /** `size` is -1 until `prepare` counted it. */
  | { readonly kind: 'decompressed'; readonly digest: string; readonly size: number; readonly from: string };

export class Exporter {
  readonly #content: ContentStore;
  readonly #options: ExportOptions;
  readonly #blobs = new Map<string, OutBlob>();
  readonly #entries: Descriptor[] = [];
  readonly #docker: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  /** The docker archive's images, by manifest: each with the names it goes by (one `RepoTags` list, as `docker save` writes). */
  readonly #pendingDocker = new Map<string, { names: (string | undefined)[]; p: PlatformImage }>();

  constructor(content: ContentStore, options: ExportOptions) {
    this.#content = content;
    this.#options = options;
  }

  #addStored(d: Descriptor): void {
    if (!this.#blobs.has(d.digest)) this.#blobs.set(d.digest, { kind: 'stored', digest: d.digest, size: this.#content.size(d.digest) });
  }

  #addBytes(bytes: Buffer): { digest: string; size: number } {
    const digest = digestOf(bytes);
    if (!this.#blobs.has(digest)) this.#blobs.set(digest, { kind: 'bytes', digest, bytes });
    return { digest, size: bytes.length };
  }

  /** Plans one image of an OCI layout: the whole target, or the manifests of the platforms chosen. */
  addOci(image: ExportImage): void {
    const choice = this.#options.platform;
    let top: Descriptor | undefined;
    if (kindOf(image.target.mediaType) === 'index' && choice === undefined && this.#complete(image.target)) top = image.target;
    else if (kindOf(image.target.mediaType) !== 'index') top = image.target;
    if (top !== undefined) {
      for (const d of reachable(this.#content, top, { all: true }, { attestations: true })) this.#addStored(d);
      this.#entries.push({ ...top, annotations: { ...(top.annotations ?? {}), ...nameAnnotations(image.name) } });
      return;
    }
    // Part of an index: its chosen manifests, under an index of their own when there are several.
    const chosen = platformImages(this.#content, image.target, choice ?? { platform: hostPlatform() });
    for (const p of chosen) for (const d of reachable(this.#content, p.manifestDescriptor, { all: true })) this.#addStored(d);
    if (chosen.length === 1) {
      const d = chosen[0]!.manifestDescriptor;
      this.#entries.push({ ...d, annotations: { ...(d.annotations ?? {}), ...nameAnnotations(image.name) } });
      return;
    }
    const index: Index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: chosen.map((p) => p.manifestDescriptor) };
    const blob = this.#addBytes(encodeJson(index));
    this.#entries.push({ mediaType: OCI_INDEX, ...blob, annotations: nameAnnotations(image.name) });
  }

  /** Whether the store holds everything an index lists, attestations included (then it can go as it is). */
  #complete(d: Descriptor): boolean {
    return readIndex(this.#content, d).manifests.every((m) => this.#content.has(m.digest) && (kindOf(m.mediaType) !== 'index' || this.#complete(m)));
  }

  /** Plans one image of a docker archive: one platform, its layers uncompressed (written by `prepare`). */
  addDocker(image: ExportImage): void {
    const choice = this.#options.platform ?? { platform: hostPlatform() };
    const p: PlatformImage = platformImages(this.#content, image.target, 'all' in choice ? { platform: hostPlatform() } : choice)[0]!;
    const layers = layersOf(p);
    const diffIDs = p.config.rootfs.diff_ids;
    this.#addStored(p.manifest.config);
    layers.forEach((layer, i) => {
      const diffID = diffIDs[i]!;
      if (!this.#content.has(layer.digest)) throw new NotFoundError(`layer ${layer.digest} of ${image.name ?? image.target.digest} is not in the store; a docker archive needs every layer`, { path: layer.digest });
      if (this.#blobs.has(diffID)) return;
      if (layer.digest === diffID) this.#blobs.set(diffID, { kind: 'stored', digest: diffID, size: this.#content.size(diffID) });
      else this.#blobs.set(diffID, { kind: 'decompressed', digest: diffID, size: this.#knownSize(layer, diffID), from: layer.digest });
    });
    const pending = this.#pendingDocker.get(p.manifestDescriptor.digest);
    if (pending === undefined) this.#pendingDocker.set(p.manifestDescriptor.digest, { names: [image.name], p });
    else pending.names.push(image.name);
  }

  /** Bytes of a layer uncompressed as unpack recorded them, or -1 (counted in `prepare`). */
  #knownSize(layer: Descriptor, diffID: string): number {
    const labels = this.#content.info(layer.digest).labels;
    const known = labels[UNCOMPRESSED_SIZE_LABEL];
    return labels[UNCOMPRESSED_LABEL] === diffID && known !== undefined && /^\d+$/.test(known) ? Number(known) : -1;
  }

  /**
   * Counts the uncompressed sizes nothing recorded (one decompressing pass each, checking the diffIDs), then
   * writes the docker images' manifests, which name those sizes.
   */
  async prepare(): Promise<void> {
    for (const [digest, blob] of this.#blobs) {
      if (blob.kind !== 'decompressed' || blob.size >= 0) continue;
      this.#options.signal?.throwIfAborted();
      const d = await digestBlob(this.#content.path(blob.from));
      if (d.uncompressedDigest !== digest) throw new DigestMismatchError(`layer ${blob.from} unpacks to ${d.uncompressedDigest}, but its config says ${digest}`);
      this.#blobs.set(digest, { ...blob, size: d.uncompressedSize });
      try {
        this.#content.update(blob.from, { [UNCOMPRESSED_LABEL]: digest, [UNCOMPRESSED_SIZE_LABEL]: String(d.uncompressedSize) }, [`labels.${UNCOMPRESSED_LABEL}`, `labels.${UNCOMPRESSED_SIZE_LABEL}`]);
      } catch {
        // a cache only
      }
    }
    const path = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;
    for (const { names, p } of this.#pendingDocker.values()) {
      const diffIDs = p.config.rootfs.diff_ids;
      const layers = diffIDs.map((diffID) => ({ mediaType: OCI_LAYER, digest: diffID, size: (this.#blobs.get(diffID) as { size: number }).size }));
      const manifest: Manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: p.manifest.config.digest, size: p.manifest.config.size }, layers };
      const blob = this.#addBytes(encodeJson(manifest));
      const platform = { architecture: p.config.architecture, os: p.config.os, ...(p.config.variant ? { variant: p.config.variant } : {}) };
      for (const name of names) this.#entries.push({ mediaType: OCI_MANIFEST, ...blob, platform, annotations: nameAnnotations(name) });
      const tags = [...new Set(names.flatMap((name) => (name !== undefined && parseReference(name).tag !== undefined ? [familiarName(name)] : [])))];
      this.#docker.push({ Config: path(p.manifest.config.digest), RepoTags: tags, Layers: diffIDs.map(path) });
    }
    this.#pendingDocker.clear();
  }

  get entries(): Descriptor[] {
    return this.#entries;
  }

  #indexJson(): Buffer {
    return encodeJson({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: this.#entries });
  }

  #total(): number {
    let total = 0;
    for (const blob of this.#blobs.values()) total += blob.kind === 'bytes' ? blob.bytes.length : blob.size;
    return total;
  }

  /** Writes an OCI layout directory at `output` (which must not exist, or be empty). */
  writeLayout(output: string): number {
    if (existsSync(output) && readdirSync(output).length > 0) throw new AlreadyExistsError(`${quote(output)} exists and is not empty`, { path: output });
    const staging = join(dirname(output), `.${randomBytes(6).toString('hex')}.partial`);
    const blobs = join(staging, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    try {
      let done = 0;
      const total = this.#total();
      for (const blob of this.#blobs.values()) {
        this.#options.signal?.throwIfAborted();
        const target = join(blobs, blob.digest.slice('sha256:'.length));
        if (blob.kind === 'bytes') writeFileSync(target, blob.bytes);
        else if (blob.kind === 'stored') copyFileSync(this.#content.path(blob.digest), target, constants.COPYFILE_FICLONE);
        else throw new InvalidArgumentError('an OCI layout keeps layers as stored');
        done += blob.kind === 'bytes' ? blob.bytes.length : blob.size;
        this.#options.onProgress?.(done, total);
      }
      writeFileSync(join(staging, 'oci-layout'), JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }));
      writeFileSync(join(staging, 'index.json'), this.#indexJson());
      if (existsSync(output)) rmSync(output, { recursive: true }); // empty, checked above
      renameSync(staging, output);
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
    return this.#total();
  }

  /** Writes the plan as a tar archive at `output` (OCI archive, or docker archive with `manifest.json`). */
  async writeArchive(output: string | Writable, docker: boolean): Promise<number> {
    const epoch = this.#options.sourceDateEpoch ?? epochFromEnvironment() ?? 0;
    const total = this.#total();
    const entry = (path: string, type: 'file' | 'directory', size: number): Entry => ({
      path,
      type,
      mode: type === 'directory' ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      size,
      mtime: { sec: epoch, nsec: 0 },
      xattrs: new Map(),
    });
    const content = this.#content;
    const options = this.#options;
    const blobs = [...this.#blobs.values()];
    const small: [string, Buffer][] = [
      ['oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }))],
      ['index.json', this.#indexJson()],
      ...(docker ? ([['manifest.json', encodeJson(this.#docker)]] as [string, Buffer][]) : []),
    ];
    async function* items(): AsyncGenerator<WriteItem> {
      yield { entry: entry('blobs', 'directory', 0) };
      yield { entry: entry('blobs/sha256', 'directory', 0) };
      let done = 0;
      for (const blob of blobs) {
        options.signal?.throwIfAborted();
        const path = `blobs/sha256/${blob.digest.slice('sha256:'.length)}`;
        if (blob.kind === 'bytes') yield { entry: entry(path, 'file', blob.bytes.length), content: { kind: 'bytes', bytes: blob.bytes } };
        else if (blob.kind === 'stored') yield { entry: entry(path, 'file', blob.size), content: { kind: 'path', path: content.path(blob.digest) } };
        else yield { entry: entry(path, 'file', blob.size), content: { kind: 'stream', stream: checkedLayer(content.path(blob.from), blob.digest) } };
        done += blob.kind === 'bytes' ? blob.bytes.length : blob.size;
        options.onProgress?.(done, total);
      }
      for (const [path, bytes] of small) yield { entry: entry(path, 'file', bytes.length), content: { kind: 'bytes', bytes } };
    }
    await writeEntries(items(), output, {});
    return total;
  }
}

/** A layer's uncompressed bytes, failing at the end when they are not `diffID` (the archive is then not published). */
async function* checkedLayer(path: string, diffID: string): AsyncGenerator<Uint8Array> {
  const decoded = await decodeBlob(path);
  try {
    yield* decoded.stream;
  } catch (error) {
    await decoded.abort();
    throw error;
  }
  const digests = await decoded.digests();
  if (digests.uncompressedDigest !== diffID) throw new DigestMismatchError(`layer ${digests.digest} unpacks to ${digests.uncompressedDigest}, but its config says ${diffID}`);
}

function epochFromEnvironment(): number | undefined {
  const text = process.env.SOURCE_DATE_EPOCH;
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

/**
 * Exports `images` to `output` in `options.format` (default `oci-archive`): a layout directory (`oci`), or
 * an archive at a path or into a stream (a Writable, or a path naming a symlink, FIFO or device).
 */
export async function exportImages(content: ContentStore, images: readonly ExportImage[], output: string | Writable, options: ExportOptions = {}): Promise<ExportResult> {
  if (images.length === 0) throw new InvalidArgumentError('nothing to export: name at least one image');
  const format = options.format ?? 'oci-archive';
  if (!['oci', 'oci-archive', 'docker'].includes(format)) throw new InvalidArgumentError(`export format ${quote(String(format))} is not oci, oci-archive or docker`);
  if (format === 'oci' && typeof output !== 'string') throw new InvalidArgumentError('an OCI layout is a directory: export it to a path, or as oci-archive into a stream');
  const exporter = new Exporter(content, options);
  for (const image of images) (format === 'docker' ? exporter.addDocker(image) : exporter.addOci(image));
  await exporter.prepare();
  const bytes = format === 'oci' ? exporter.writeLayout(output as string) : await exporter.writeArchive(output, format === 'docker');
  return { format, manifests: exporter.entries, bytes };
}
