/**
 * Import: an OCI image layout (a directory), an OCI archive (a tar of one), or a `docker save` archive (the
 * legacy layout of `manifest.json`, `repositories` and `<id>/layer.tar`, and the OCI-flavoured one newer
 * Docker writes), plain or compressed.
 *
 * An archive is read once, front to back: blobs stream into ingests, verified against their names as they
 * arrive; small files (`manifest.json`, configs) are held in memory. Then the image is checked whole (every
 * document parsed strictly, every blob the chosen platforms need present with the size its descriptor says,
 * layers against the config) and only then published, blobs and names in one transaction. A failure
 * publishes nothing; a killed import leaves its ingests, which the next run of the same import resumes.
 *
 * Paths an archive names (in `manifest.json`, or through its own symlinks) are resolved inside the archive
 * and never on the host: `..`, absolute names and links that leave the archive are UNSAFE_PATH.
 */
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import {
  cleanLayerPath,
  DigestMismatchError,
  detectFileCompression,
  ImageFormatError,
  InvalidArgumentError,
  NotFoundError,
  readChunks,
  readLayer,
  UnsafePathError,
  UnsupportedError,
  quote,
  type ReadLimits,
} from '@strata/core';
import type { Metadata } from '@strata/snapshotter';
import type { ContentStore, ContentWriter } from './content.js';
import { checkDigest, encodeJson, MAX_DOCUMENT_BYTES, parseDescriptor, parseIndex, parseJson, type Descriptor } from './documents.js';
import { layersOf, platformImages, reachable, readIndex, readManifest } from './graph.js';
import type { ImageStore } from './image-store.js';
import type { Leases } from './leases.js';
import { DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, isForeignLayer, kindOf, OCI_LAYER_ZSTD, OCI_LAYOUT_VERSION } from './media-types.js';
import { chooseManifests, hostPlatform, type PlatformChoice } from './platform.js';
import { normalizeReference, parseReference } from './reference.js';
import { Staging } from './staging.js';

/** Options of `importImages`. */
export interface ImportOptions {
  /**
   * The name to give: with one image in the source, its name; with several, the repository their tags
   * (`org.opencontainers.image.ref.name`) are joined to.
   */
  readonly name?: string;
  /** Which platforms to take from a multi-platform image (default: the host's). */
  readonly platform?: PlatformChoice;
  /**
   * One image of a layout directory, imported without a name (dangling, found by its digest), as buildx
   * reads an `oci-layout://` context: by `digest`, of a descriptor index.json lists or of a manifest or
   * index among the layout's blobs; else by `tag` (`org.opencontainers.image.ref.name`), `latest` by default.
   */
  readonly pick?: { readonly tag?: string; readonly digest?: string };
  /** Limits on reading the archive itself (entries, bytes, header sizes). */
  readonly limits?: ReadLimits;
  /** Called as the source is read: bytes so far, and the total when known. */
  readonly onProgress?: (done: number, total: number | undefined) => void;
  readonly signal?: AbortSignal;
}

/** One image an import named (or left dangling). */
export interface ImportedImage {
  /** The full name, or undefined for an image the source did not name (kept dangling, by ID). */
  readonly name: string | undefined;
  readonly target: Descriptor;
}

export interface ImportResult {
  readonly images: ImportedImage[];
  /** Blobs the import added to the store, and their bytes. */
  readonly blobs: number;
  readonly bytes: number;
  /** Bytes an earlier, interrupted run of the same import had written, taken up instead of written again. */
  readonly resumed: number;
}

/** What import needs of a root. */
export interface ImportParts {
  readonly metadata: Metadata;
  readonly content: ContentStore;
  readonly leases: Leases;
  readonly images: ImageStore;
}

/** An image the source lists, before it is named. */
interface Candidate {
  readonly target: Descriptor;
  /** `io.containerd.image.name`, or a name from `RepoTags`. */
  readonly names: string[];
  /** `org.opencontainers.image.ref.name` when it is only a tag. */
  readonly tag?: string;
}

/** Files of an archive held in memory: small ones, up to a budget. */
const MEMORY_FILE_BYTES = 1024 * 1024;
const MEMORY_BUDGET_BYTES = 64 * 1024 * 1024;
/** Files always read into memory whatever their size (up to the document limit): the layouts' indexes. */
const INDEX_FILES = new Set(['index.json', 'manifest.json', 'oci-layout', 'repositories']);
const BLOB_PATH = /^blobs\/sha256\/([0-9a-f]{64})$/;
const MAX_LINK_HOPS = 16;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Writes a source's bytes into a writer, skipping the first `skip` (written by an earlier, killed run). */
async function fill(writer: ContentWriter, chunks: AsyncIterable<Uint8Array>, skip: number, signal: AbortSignal | undefined): Promise<void> {
  for await (const chunk of chunks) {
    signal?.throwIfAborted();
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    await writer.write(skip > 0 ? chunk.subarray(skip) : chunk);
    skip = 0;
  }
}

/** Passes chunks through, reporting the running byte count. */
async function* reporting(chunks: AsyncIterable<Uint8Array>, report: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  let bytes = 0;
  for await (const chunk of chunks) {
    bytes += chunk.length;
    report(bytes);
    yield chunk;
  }
}

/** A blob's digest disagreeing with its name is the source's fault: DIGEST_MISMATCH naming where. */
async function sealOrMismatch(staging: Staging, writer: ContentWriter, where: string): Promise<{ digest: string; size: number }> {
  try {
    return await staging.seal(writer);
  } catch (error) {
    if ((error as { code?: string }).code === 'FAILED_PRECONDITION') throw new DigestMismatchError(`${where}: ${(error as Error).message}`, { cause: error });
    throw error;
  }
}

/** The members of an archive after one pass: staged blobs, files in memory, and links. */
class ArchiveMembers {
  readonly staged = new Map<string, { digest: string; size: number }>();
  readonly memory = new Map<string, Buffer>();
  readonly links = new Map<string, { hard: boolean; target: string }>();
  memoryBytes = 0;

  /**
   * The member `name` names (in `manifest.json`), its symlinks followed inside the archive. Throws
   * UNSAFE_PATH for names or links that leave the archive, IMAGE_FORMAT for a member that is not there.
   */
  resolve(name: string, what: string): string {
    if (typeof name !== 'string' || name === '') throw new ImageFormatError(`${what}: an empty path`);
    if (name.startsWith('/')) throw new UnsafePathError(`${what} names ${quote(name)}, an absolute path outside the archive`, { path: name });
    let path = cleanLayerPath(name); // `..` anywhere: UNSAFE_PATH
    for (let hops = 0; hops <= MAX_LINK_HOPS; hops++) {
      if (this.staged.has(path) || this.memory.has(path)) return path;
      const parts = path.split('/');
      let replaced = false;
      for (let i = 1; i <= parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        const link = this.links.get(prefix);
        if (link === undefined) continue;
        const rest = parts.slice(i).join('/');
        let target: string;
        if (link.hard) target = link.target;
        else {
          if (link.target.startsWith('/')) throw new UnsafePathError(`${what}: ${quote(prefix)} is a symlink to ${quote(link.target)}, outside the archive`, { path: prefix });
          const joined = posix.normalize(posix.join(posix.dirname(prefix), link.target));
          if (joined === '..' || joined.startsWith('../')) throw new UnsafePathError(`${what}: ${quote(prefix)} is a symlink to ${quote(link.target)}, outside the archive`, { path: prefix });
          target = joined;
        }
        path = rest === '' ? target : `${target}/${rest}`;
        replaced = true;
        break;
      }
      if (!replaced) throw new ImageFormatError(`${what} names ${quote(name)}, which the archive does not hold`);
    }
    throw new ImageFormatError(`${what}: ${quote(name)} goes through more than ${MAX_LINK_HOPS} links`);
  }
}

export class Importer {
  readonly #parts: ImportParts;
  readonly #options: ImportOptions;
  readonly #choice: PlatformChoice;
  #resumed = 0;

  constructor(parts: ImportParts, options: ImportOptions) {
    this.#parts = parts;
    this.#options = options;
    this.#choice = options.platform ?? { platform: hostPlatform() };
  }

  /** Imports `source` (a layout directory or an archive). */
  async run(source: string): Promise<ImportResult> {
    const { leases } = this.#parts;
    let st;
    try {
      st = statSync(source);
    } catch {
      throw new NotFoundError(`${quote(source)} does not exist`, { path: source });
    }
    if (this.#options.pick !== undefined && !st.isDirectory()) throw new InvalidArgumentError(`${quote(source)} is no layout directory, of which one image can be picked`);
    return leases.with(async (lease) => {
      const staging = new Staging(this.#parts.content, lease.id);
      try {
        const candidates = st.isDirectory() ? await this.#fromLayout(source, staging) : await this.#fromArchive(source, st.size, st.mtimeMs, staging);
        return await this.#finish(candidates, staging, lease.id);
      } catch (error) {
        staging.discard();
        throw error;
      }
    }, { 'strata.io/work': 'import' });
  }

  // ---- OCI layout directories -------------------------------------------------------------------

  async #fromLayout(dir: string, staging: Staging): Promise<Candidate[]> {
    checkLayoutVersion(readSmall(join(dir, 'oci-layout'), 'oci-layout'));
    const index = parseIndex(readSmall(join(dir, 'index.json'), 'index.json'), 'index.json');
    const pick = this.#options.pick;
    const candidates = pick === undefined ? this.#candidatesOf(index.manifests) : [this.#picked(dir, index.manifests, pick)];
    const total = { done: 0 };
    for (const c of candidates) await this.#stageTree(dir, c.target, staging, 0, total);
    return candidates;
  }

  /** The one image `pick` names in a layout (see ImportOptions.pick), to be kept nameless. Throws NOT_FOUND. */
  #picked(dir: string, manifests: readonly Descriptor[], pick: { readonly tag?: string; readonly digest?: string }): Candidate {
    if (pick.digest !== undefined) {
      const digest = checkDigest(pick.digest, 'the digest picked');
      const listed = manifests.find((d) => d.digest === digest);
      if (listed !== undefined) return { target: stripNames(listed), names: [] };
      // A manifest or index below the listed ones (a platform's manifest of a multi-platform image).
      const path = join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
      const st = statSync(path, { throwIfNoEntry: false });
      if (st === undefined || !st.isFile()) throw new NotFoundError(`the layout has no image ${digest}`, { path: dir });
      if (st.size > MAX_DOCUMENT_BYTES) throw new ImageFormatError(`blob ${digest} is ${st.size} bytes, more than an image's document may be`);
      const mediaType = (parseJson(readFileSync(path), `blob ${digest}`) as { mediaType?: unknown }).mediaType;
      if (typeof mediaType !== 'string' || (kindOf(mediaType) !== 'manifest' && kindOf(mediaType) !== 'index')) throw new ImageFormatError(`blob ${digest} of the layout is no image manifest or index`);
      return { target: { mediaType, digest, size: st.size }, names: [] };
    }
    const tag = pick.tag ?? 'latest';
    const tagged = manifests.filter((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);
    if (tagged.length === 0) throw new NotFoundError(`the layout has no image tagged ${quote(tag)}`, { path: dir });
    if (tagged.length > 1) throw new ImageFormatError(`the layout lists ${tagged.length} images tagged ${quote(tag)}`);
    return { target: stripNames(tagged[0]!), names: [] };
  }

  /** Stages `d` from the layout and, for indexes and manifests, what the chosen platforms need under it. */
  async #stageTree(dir: string, d: Descriptor, staging: Staging, depth: number, total: { done: number }): Promise<void> {
    if (depth > 8) throw new ImageFormatError('indexes nest deeper than 8');
    const kind = kindOf(d.mediaType);
    const path = join(dir, 'blobs', 'sha256', checkDigest(d.digest, 'layout').slice('sha256:'.length));
    if (!staging.has(d.digest)) {
      const st = statSync(path, { throwIfNoEntry: false });
      if (st === undefined) {
        if (kind === 'layer' && isForeignLayer(d.mediaType)) return; // not distributed: kept as a descriptor
        throw new ImageFormatError(`the layout has no blob ${d.digest} (${d.mediaType})`);
      }
      if (!st.isFile()) throw new ImageFormatError(`blob ${d.digest} of the layout is not a regular file`);
      const size = st.size;
      if (size !== d.size) throw new ImageFormatError(`blob ${d.digest} is ${size} bytes, its descriptor says ${d.size}`);
      const writer = staging.open(`import:${d.digest}`, { digest: d.digest, size: d.size });
      if (writer !== undefined) {
        this.#resumed += Math.min(writer.offset, d.size);
        try {
          // Read from where an earlier, killed run stopped: the bytes before are in the ingest already.
          await fill(writer, readChunks(path, { start: Math.min(writer.offset, d.size) }), 0, this.#options.signal);
        } catch (error) {
          writer.close();
          throw error;
        }
        await sealOrMismatch(staging, writer, `blob ${d.digest}`);
      }
      total.done += d.size;
      this.#options.onProgress?.(total.done, undefined);
    }
    if (kind === 'index') {
      for (const child of chooseManifests(readIndex(staging, d).manifests, this.#choice)) await this.#stageTree(dir, child, staging, depth + 1, total);
    } else if (kind === 'manifest') {
      const manifest = readManifest(staging, d);
      await this.#stageTree(dir, manifest.config, staging, depth + 1, total);
      for (const layer of manifest.layers) await this.#stageTree(dir, layer, staging, depth + 1, total);
    }
  }

  // ---- archives ----------------------------------------------------------------------------------

  async #fromArchive(path: string, size: number, mtimeMs: number, staging: Staging): Promise<Candidate[]> {
    const members = await this.#readArchive(path, size, mtimeMs, staging);
    if (members.memory.has('index.json') && members.memory.has('oci-layout')) {
      checkLayoutVersion(members.memory.get('oci-layout')!);
      const index = parseIndex(members.memory.get('index.json')!, 'index.json');
      // A docker save of the OCI flavour lists names in index.json and manifest.json: index.json has them all.
      return this.#candidatesOf(index.manifests);
    }
    if (members.memory.has('manifest.json')) return this.#dockerCandidates(members, staging);
    throw new ImageFormatError(`${quote(path)} is neither an OCI archive (oci-layout, index.json) nor a docker save archive (manifest.json)`);
  }

  /** One pass over the archive: blobs staged, small files kept, links noted. */
  async #readArchive(path: string, size: number, mtimeMs: number, staging: Staging): Promise<ArchiveMembers> {
    const members = new ArchiveMembers();
    const identity = `${realpathSync(path)}\u0000${size}\u0000${mtimeMs}`;
    const signal = this.#options.signal;
    let done = 0;
    const progress = this.#options.onProgress;
    for await (const { entry, body: entryBody } of readLayer(path, { ...this.#options.limits, hash: false, ...(signal ? { signal } : {}) })) {
      if (entry.type === 'symlink' || entry.type === 'hardlink') {
        members.links.set(entry.path, { hard: entry.type === 'hardlink', target: entry.linkname ?? '' });
        continue;
      }
      if (entry.type !== 'file') continue;
      const before = done;
      done += entry.size + 512;
      // Progress within a large member, not only between members.
      const body = progress === undefined ? entryBody : reporting(entryBody, (n) => progress(Math.min(before + n, size), size));
      const blob = BLOB_PATH.exec(entry.path);
      if (blob) {
        const expected = { digest: `sha256:${blob[1]}`, size: entry.size };
        const writer = staging.open(`import:${expected.digest}`, expected);
        if (writer !== undefined) {
          await this.#write(writer, body);
          members.staged.set(entry.path, await sealOrMismatch(staging, writer, `archive member ${entry.path}`));
        } else members.staged.set(entry.path, expected);
      } else if (entry.size <= (INDEX_FILES.has(entry.path) ? MAX_DOCUMENT_BYTES : MEMORY_FILE_BYTES) && members.memoryBytes + entry.size <= MEMORY_BUDGET_BYTES) {
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(Buffer.from(chunk)); // a copy: the reader reuses its buffers
        members.memory.set(entry.path, Buffer.concat(chunks));
        members.memoryBytes += entry.size;
      } else {
        // A file by another name (a legacy layer.tar): staged under a ref this archive and member name fix.
        const writer = staging.open(`import:${sha256(`${identity}\u0000${entry.path}`)}`, { size: entry.size });
        await this.#write(writer!, body);
        members.staged.set(entry.path, await sealOrMismatch(staging, writer!, `archive member ${entry.path}`));
      }
      progress?.(Math.min(done, size), size);
    }
    progress?.(size, size);
    return members;
  }

  async #write(writer: ContentWriter, body: AsyncIterable<Uint8Array>): Promise<void> {
    this.#resumed += writer.offset;
    try {
      await fill(writer, body, writer.offset, this.#options.signal);
    } catch (error) {
      writer.close(); // kept: a run after this one resumes it
      throw error;
    }
  }

  /** The images of a `docker save` archive's manifest.json, each given a Docker schema 2 manifest. */
  async #dockerCandidates(members: ArchiveMembers, staging: Staging): Promise<Candidate[]> {
    const list = parseJson(members.memory.get('manifest.json')!, 'manifest.json');
    if (!Array.isArray(list)) throw new ImageFormatError('manifest.json: not an array of images');
    const candidates: Candidate[] = [];
    for (const [i, item] of list.entries()) {
      const where = `manifest.json[${i}]`;
      if (typeof item !== 'object' || item === null) throw new ImageFormatError(`${where}: not an object`);
      const { Config, RepoTags, Layers, LayerSources } = item as Record<string, unknown>;
      if (typeof Config !== 'string') throw new ImageFormatError(`${where}: Config is not a path`);
      if (!Array.isArray(Layers) || Layers.some((l) => typeof l !== 'string')) throw new ImageFormatError(`${where}: Layers is not a list of paths`);
      if (RepoTags !== undefined && RepoTags !== null && (!Array.isArray(RepoTags) || RepoTags.some((t) => typeof t !== 'string'))) throw new ImageFormatError(`${where}: RepoTags is not a list of names`);
      const sources = new Map<string, Descriptor>();
      if (LayerSources !== undefined && LayerSources !== null) {
        if (typeof LayerSources !== 'object') throw new ImageFormatError(`${where}: LayerSources is not an object`);
        for (const [diffID, d] of Object.entries(LayerSources)) sources.set(checkDigest(diffID, `${where} LayerSources`), parseDescriptor(d, `${where} LayerSources`));
      }

      const config = await this.#member(members, staging, members.resolve(Config, `${where} Config`));
      const configBytes = staging.readBytes(config.digest, MAX_DOCUMENT_BYTES);
      const configJson = parseJson(configBytes, `${where} config`) as { rootfs?: { diff_ids?: unknown } };
      const diffIDs = Array.isArray(configJson?.rootfs?.diff_ids) ? (configJson.rootfs!.diff_ids as unknown[]) : undefined;
      if (diffIDs === undefined) throw new ImageFormatError(`${where}: its config has no rootfs.diff_ids`);
      if (diffIDs.length !== Layers.length) throw new ImageFormatError(`${where}: ${Layers.length} layers, but the config lists ${diffIDs.length} diff_ids`);

      const layers: Descriptor[] = [];
      for (const [l, name] of (Layers as string[]).entries()) {
        const diffID = checkDigest(diffIDs[l], `${where} config rootfs.diff_ids[${l}]`);
        const foreign = sources.get(diffID);
        let member: string;
        try {
          member = members.resolve(name, `${where} Layers[${l}]`);
        } catch (error) {
          if (foreign === undefined || !(error instanceof ImageFormatError)) throw error;
          layers.push(foreign); // not distributed: kept as a descriptor
          continue;
        }
        const blob = await this.#member(members, staging, member);
        const compression = detectFileCompression(staging.path(blob.digest));
        if (compression === 'none' && blob.digest !== diffID) {
          throw new DigestMismatchError(`${where}: layer ${quote(name)} is ${blob.digest}, but the config's rootfs.diff_ids[${l}] is ${diffID}`);
        }
        const mediaType = compression === 'none' ? DOCKER_LAYER : compression === 'gzip' ? DOCKER_LAYER_GZIP : OCI_LAYER_ZSTD;
        layers.push({ mediaType, digest: blob.digest, size: blob.size });
      }
      const manifest = { schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { mediaType: DOCKER_CONFIG, digest: config.digest, size: config.size }, layers };
      const staged = await staging.stageBytes(`import:manifest:${sha256(JSON.stringify(manifest))}`, encodeJson(manifest));
      const names = ((RepoTags as string[] | undefined | null) ?? []).map((tag) => normalizeName(tag, `${where} RepoTags`));
      candidates.push({ target: { mediaType: DOCKER_MANIFEST, digest: staged.digest, size: staged.size }, names });
    }
    return candidates;
  }

  /** A member as a staged blob (small ones staged from memory now). */
  async #member(members: ArchiveMembers, staging: Staging, path: string): Promise<{ digest: string; size: number }> {
    const staged = members.staged.get(path);
    if (staged !== undefined) return staged;
    const bytes = members.memory.get(path)!;
    const blob = await staging.stageBytes(`import:bytes:${createHash('sha256').update(bytes).digest('hex')}`, bytes);
    members.staged.set(path, blob);
    return blob;
  }

  // ---- both ----------------------------------------------------------------------------------------

  /** The images an index lists (attestations are not images). */
  #candidatesOf(manifests: readonly Descriptor[]): Candidate[] {
    const out: Candidate[] = [];
    for (const d of manifests) {
      if (kindOf(d.mediaType) !== 'index' && kindOf(d.mediaType) !== 'manifest') {
        throw new UnsupportedError(`index.json lists ${d.digest} of media type ${quote(d.mediaType)}, which is not an image index or manifest`);
      }
      if (chooseManifests([d], { all: true }).length === 0) continue;
      const full = d.annotations?.['io.containerd.image.name'];
      const ref = d.annotations?.['org.opencontainers.image.ref.name'];
      const names: string[] = [];
      let tag: string | undefined;
      if (full !== undefined) names.push(normalizeName(full, 'io.containerd.image.name'));
      else if (ref !== undefined) {
        // A full reference, or (as skopeo and umoci write it) a tag alone.
        if (/[/:@]/.test(ref)) names.push(normalizeName(ref, 'org.opencontainers.image.ref.name'));
        else tag = ref;
      }
      out.push({ target: stripNames(d), names, ...(tag !== undefined ? { tag } : {}) });
    }
    if (out.length === 0) throw new ImageFormatError('index.json lists no image');
    return out;
  }

  /** Checks every image whole, then publishes blobs and names in one transaction. */
  async #finish(candidates: Candidate[], staging: Staging, lease: string): Promise<ImportResult> {
    const { metadata, images, leases } = this.#parts;
    const keep = new Set<string>();
    for (const c of candidates) {
      for (const image of platformImages(staging, c.target, this.#choice)) layersOf(image);
      for (const d of reachable(staging, c.target, this.#choice)) keep.add(d.digest);
    }
    const named = this.#names(candidates);
    const before = new Set([...keep].filter((d) => this.#parts.content.has(d)));
    let bytes = 0;
    for (const d of keep) if (!before.has(d)) bytes += staging.size(d);
    await staging.settle();
    return metadata.transaction(() => {
      staging.publish(keep);
      const out: ImportedImage[] = [];
      for (const { target, names } of named) {
        if (names.length === 0) {
          images.putDangling(target);
          out.push({ name: undefined, target });
        }
        for (const name of names) out.push({ name: images.put(name, target), target });
      }
      leases.delete(lease);
      return { images: out, blobs: keep.size - before.size, bytes, resumed: this.#resumed };
    });
  }

  /**
   * The names each candidate gets: `--name` for a lone image (with its own tag when `--name` has none), else
   * its own name, else its tag on `--name`'s repository.
   */
  #names(candidates: Candidate[]): { target: Descriptor; names: string[] }[] {
    if (this.#options.pick !== undefined) return candidates.map((c) => ({ target: c.target, names: [] }));
    const given = this.#options.name;
    if (given !== undefined && candidates.length === 1) {
      const only = candidates[0]!;
      const tagged = /[:@][^/]*$/.test(given);
      return [{ target: only.target, names: [normalizeName(!tagged && only.tag !== undefined ? `${given}:${only.tag}` : given, '--name')] }];
    }
    return candidates.map((c) => {
      if (c.names.length > 0) return { target: c.target, names: c.names };
      if (c.tag !== undefined && given !== undefined) {
        const repo = parseReference(given);
        return { target: c.target, names: [normalizeName(`${repo.domain}/${repo.path}:${c.tag}`, 'the tag')] };
      }
      return { target: c.target, names: [] };
    });
  }
}

/** A descriptor without the naming annotations of index.json (names live in the image store). */
function stripNames(d: Descriptor): Descriptor {
  if (d.annotations === undefined) return d;
  const { 'io.containerd.image.name': _full, 'org.opencontainers.image.ref.name': _ref, ...rest } = d.annotations;
  const { annotations: _all, ...plain } = d;
  return Object.keys(rest).length > 0 ? { ...plain, annotations: rest } : plain;
}

function normalizeName(text: string, where: string): string {
  try {
    return normalizeReference(text);
  } catch (error) {
    throw new ImageFormatError(`${where}: ${(error as Error).message}`, { cause: error });
  }
}

function readSmall(path: string, what: string): Buffer {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new ImageFormatError(`the layout has no ${what}`);
  }
  if (size > MAX_DOCUMENT_BYTES) throw new ImageFormatError(`${what} is ${size} bytes, over the ${MAX_DOCUMENT_BYTES}-byte limit`);
  return readFileSync(path);
}

function checkLayoutVersion(bytes: Buffer): void {
  const value = parseJson(bytes, 'oci-layout') as { imageLayoutVersion?: unknown } | null;
  if (value?.imageLayoutVersion !== OCI_LAYOUT_VERSION) throw new UnsupportedError(`oci-layout: imageLayoutVersion ${quote(String(value?.imageLayoutVersion))} is not ${OCI_LAYOUT_VERSION}`);
}

/** Imports images from `source`. See the module comment. */
export function importImages(parts: ImportParts, source: string, options: ImportOptions = {}): Promise<ImportResult> {
  return new Importer(parts, options).run(source);
}
