/**
 * Images on a strata root: the content store, leases, the image and container records and the snapshotter,
 * all in the root's one database, and the operations users know from Docker and containerd (import,
 * export, unpack, containers, commit, squash, rmi, prune, gc, fsck) built on them.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import {
  AlreadyExistsError,
  applyLayer,
  chainID,
  chainIDs,
  eachLimited,
  FailedPreconditionError,
  flatten,
  InvalidArgumentError,
  isNotFound,
  isStrataError,
  NotFoundError,
  packDirectory,
  pathMatcher,
  processIdMap,
  quote,
  removeTree,
  sha256OfFile,
  unmount,
  type Compression,
  type IdMap,
  type LayerDescriptor,
  type ReadLimits,
  type WritableLayer,
} from '@strata/core';
import { openRoot, type FsckReport, type LayerOutput, type OpenOptions, type Root, type Snapshotter } from '@strata/snapshotter';
import { checkContainerName, ContainerStore, containerSnapshotKey, type Container } from './container-store.js';
import { ContentStore } from './content.js';
import type { Descriptor, History, ImageConfig } from './documents.js';
import { exportImages, type ExportOptions, type ExportResult } from './export.js';
import { collectGarbage, type GcResult } from './gc.js';
import { layersOf, mayBeAbsent, platformImage, platformImages, reachable, readManifest, readConfig, type PlatformImage } from './graph.js';
import { ImageStore, type Image } from './image-store.js';
import { importImages, type ImportOptions, type ImportResult } from './import.js';
import { Leases } from './leases.js';
import { kindOf } from './media-types.js';
import { nameForms } from './reference.js';
import { createdAt, foldHistory, layerLabels, sourceDateEpoch, writeNewImage } from './new-image.js';
import { formatPlatform, hostPlatform, type PlatformChoice } from './platform.js';
import { unpackImage, type UnpackOptions, type UnpackResult } from './unpack.js';

/** Blobs `fsck --content` re-hashes at once, each read and hashed by a thread of its own (a core each). */
const CONTENT_CHECKS = 2;

/** An image as `list` shows it. */
export interface ImageSummary {
  /** Full name; undefined when dangling. */
  readonly name: string | undefined;
  /** The image ID: its index or manifest digest. */
  readonly digest: string;
  /** Bytes of the host platform's manifest, config and layers as stored (compressed), or of the target alone. */
  readonly size: number;
  /** When the image was made: the host platform's config `created` (what `docker images` shows); undefined without one. */
  readonly created: Date | undefined;
  /** When the root recorded this name (or the dangling image). */
  readonly recorded: Date;
  readonly dangling: boolean;
}

/** What `list` shows, as `docker image ls --filter` chooses: an image passes every filter given. */
export interface ListOptions {
  /** Only dangling images (true), or only named ones (false). */
  readonly dangling?: boolean;
  /** Only images with a config (of any platform) whose labels pass every one of these. */
  readonly labels?: readonly LabelFilter[];
  /** Only images created before each of these (names or IDs); an image without `created` passes none. */
  readonly before?: readonly string[];
  /** Only images created after each of these (names or IDs). */
  readonly since?: readonly string[];
  /**
   * Only names that one of these Go `path.Match` patterns matches, in any of the name's four forms
   * (`alpine:latest`, `alpine`, `docker.io/library/alpine:latest`, `docker.io/library/alpine`), as Docker
   * matches them; never dangling images.
   */
  readonly references?: readonly string[];
  /** Only names (or dangling images) the root recorded before this time. */
  readonly until?: Date;
}

/** One line of `diskUsage`, as `docker system df` shows one. */
export interface UsageSummary {
  readonly total: number;
  readonly active: number;
  /** Bytes on disk, each blob and snapshot counted once. */
  readonly size: number;
  /** Bytes that removing what is not active (and collecting) would free. */
  readonly reclaimable: number;
}

/** The config's `created` as a time; undefined when missing or not a date. */
function createdOf(image: PlatformImage | undefined): Date | undefined {
  const created = image?.config.created;
  const time = created === undefined ? Number.NaN : Date.parse(created);
  return Number.isNaN(time) ? undefined : new Date(time);
}

/** What `inspect` says of an image. */
export interface ImageDetails {
  readonly names: string[];
  readonly digest: string;
  readonly mediaType: string;
  /** The platform manifest chosen (the image's own, or its index's entry for the platform). */
  readonly manifest: Descriptor;
  readonly platform: string;
  readonly config: ImageConfig;
  readonly configDigest: string;
  readonly layers: readonly Descriptor[];
  /** The top chainID, when the image is unpacked. */
  readonly unpacked: string | undefined;
}

/** One step of `history`. */
export interface HistoryStep extends History {
  /** The layer this step made, and its size as stored; undefined for steps that made none. */
  readonly layer: string | undefined;
  readonly size: number;
}

/** What `removeImages` did. */
export interface RemoveResult {
  readonly untagged: string[];
  /** Image IDs no name or container holds any more (their content goes with the next `gc`). */
  readonly deleted: string[];
}

/** A test of an image config's labels, as `docker image prune --filter label=…` takes it. */
export interface LabelFilter {
  readonly key: string;
  /** The value the label must have; without one, the label must be there. */
  readonly value?: string;
  /** The test turned round (`label!=key`, `label=key!=value`): the label absent, or another value. */
  readonly negate?: boolean;
}

/** What `prune` considers, as `docker image prune` does. */
export interface PruneOptions {
  /** Every image no container uses, not only dangling ones (`docker image prune --all`). */
  readonly all?: boolean;
  /** Only images the store recorded before this time (`--filter until=`, the time Docker's containerd store compares too). */
  readonly until?: Date;
  /** Only images with a config (of any platform) whose labels pass every one of these. */
  readonly labels?: readonly LabelFilter[];
}

/** Options of `commit`. */
export interface CommitOptions {
  /** The history step's comment (`docker commit -m`). */
  readonly message?: string;
  readonly author?: string;
  /** The history step's `created_by` (default: empty, as `docker commit` leaves it). */
  readonly createdBy?: string;
  /** Layer compression (default gzip, as containerd and BuildKit write layers). */
  readonly compression?: Compression;
  /** Times of the config and history, and the ceiling of the layer's file times (default `SOURCE_DATE_EPOCH`). */
  readonly sourceDateEpoch?: number;
}

/** Options of `squash`. */
export interface SquashOptions {
  /** Fold only the layers above this image's (whose layers must be a prefix of the squashed image's). */
  readonly base?: string;
  readonly compression?: Compression;
  readonly sourceDateEpoch?: number;
  readonly platform?: PlatformChoice;
}

/** One problem `fsck` found in the images part of a root. */
export interface ImageFsckProblem {
  readonly kind: 'corrupt-blob' | 'broken-image' | 'not-unpackable' | 'broken-container';
  readonly subject: string;
  readonly detail: string;
  repaired: boolean;
}

export interface ImageFsckReport {
  readonly snapshots: FsckReport;
  readonly blobs: number;
  /** Blobs re-hashed (with `content`). */
  readonly verified: number;
  readonly images: number;
  readonly problems: ImageFsckProblem[];
  readonly ok: boolean;
}

/** The root's images: open with `openImages`. */
export class Images {
  readonly root: Root;
  readonly snapshotter: Snapshotter;
  readonly content: ContentStore;
  readonly leases: Leases;
  readonly images: ImageStore;
  readonly containers: ContainerStore;
  /**
   * Without root, the caller is root in its containers (as in builds): what a container's layer holds as the
   * caller's is root's in the image, and the caller's own ids never reach one.
   */
  readonly #idMap: IdMap | undefined = processIdMap();

  constructor(root: Root) {
    this.root = root;
    this.snapshotter = root.snapshotter;
    this.leases = new Leases(root.metadata);
    this.content = new ContentStore(root.path, root.metadata, this.leases);
    this.images = new ImageStore(root.metadata);
    this.containers = new ContainerStore(root.metadata);
  }

  get #parts() {
    return { metadata: this.root.metadata, content: this.content, leases: this.leases, images: this.images, containers: this.containers, snapshotter: this.snapshotter, root: this.root };
  }

  close(): Promise<void> {
    return this.root.close();
  }

  // ---- images ----------------------------------------------------------------------------------

  /** The one image `text` names (a name, or an ID that only one image has). Throws NOT_FOUND. */
  image(text: string): Image {
    return this.images.resolve(text)[0]!;
  }

  /**
   * The images `options` let through, with sizes: newest `created` first (then by name), as `docker images`
   * orders them. Throws NOT_FOUND for a `before` or `since` image the root lacks, INVALID_ARGUMENT for a
   * malformed `references` pattern.
   */
  list(options: ListOptions = {}): ImageSummary[] {
    const bounds = (refs: readonly string[] = []) => refs.flatMap((ref) => createdOf(this.#hostImage(this.image(ref).target)) ?? []).map((d) => d.getTime());
    const before = bounds(options.before);
    const since = bounds(options.since);
    const patterns = (options.references ?? []).map((pattern) => pathMatcher(pattern));
    const out: ImageSummary[] = [];
    for (const image of this.images.list()) {
      const dangling = image.name === undefined;
      if (options.dangling !== undefined && options.dangling !== dangling) continue;
      if (options.until !== undefined && !(image.created < options.until)) continue;
      if (patterns.length > 0 && (dangling || !nameForms(image.name!).some((form) => patterns.some((matches) => matches(form))))) continue;
      const p = this.#hostImage(image.target);
      const created = createdOf(p);
      const time = created?.getTime() ?? Number.NaN;
      if (before.some((bound) => !(time < bound)) || since.some((bound) => !(time > bound))) continue;
      if (options.labels?.length && !this.#labelsPass(image.target, options.labels)) continue;
      const size = p ? p.manifestDescriptor.size + p.manifest.config.size + p.manifest.layers.reduce((sum, l) => sum + l.size, 0) : image.target.size;
      out.push({ name: image.name, digest: image.target.digest, size, created, recorded: image.created, dangling });
    }
    const timeOf = (i: ImageSummary) => i.created?.getTime() ?? -Infinity;
    return out.sort((a, b) => timeOf(b) - timeOf(a) || (a.name === b.name ? 0 : a.name === undefined ? 1 : b.name === undefined ? -1 : a.name < b.name ? -1 : 1));
  }

  /**
   * The space images and containers take, as `docker system df` counts it. Images by ID: the blobs they
   * reach in the store (every platform present) and the snapshots of their unpacked chains, each counted
   * once however many images share it; an image a container uses is active, and what no active image holds
   * is reclaimable (Docker counts only what each unused image holds alone, which misses a base two unused
   * images share). A container's size is its writable snapshot's; it is active while mounted.
   */
  async diskUsage(): Promise<{ images: UsageSummary; containers: UsageSummary }> {
    const targets = new Map(this.images.list().map((image) => [image.target.digest, image.target])); // refreshed: the containers' too
    const activeDigests = new Set(this.containers.usersByDigest().keys());
    /** Blob digests and snapshot keys, with their bytes and whether an active image holds them. */
    const units = new Map<string, { size: number; active: boolean }>();
    const hold = (unit: string, size: number, active: boolean) => {
      const known = units.get(unit);
      units.set(unit, { size, active: active || (known?.active ?? false) });
    };
    let activeImages = 0;
    for (const [digest, target] of targets) {
      const active = activeDigests.has(digest);
      if (active) activeImages++;
      // Keyed by kind: an uncompressed layer's digest is its diffID, the chainID of a bottom snapshot.
      if (this.content.has(digest)) hold(`blob ${digest}`, target.size, active);
      let images: PlatformImage[] = [];
      try {
        images = platformImages(this.content, target, { all: true });
      } catch (error) {
        if (!isStrataError(error)) throw error; // nothing more of it to count
      }
      for (const { manifestDescriptor, manifest, config } of images) {
        for (const blob of [manifestDescriptor, manifest.config, ...manifest.layers]) if (this.content.has(blob.digest)) hold(`blob ${blob.digest}`, blob.size, active);
        for (const key of chainIDs(config.rootfs.diff_ids)) {
          const size = units.get(`snapshot ${key}`)?.size ?? (await this.snapshotSize(key));
          if (size === undefined) break; // not unpacked from here up
          hold(`snapshot ${key}`, size, active);
        }
      }
    }
    let size = 0;
    let reclaimable = 0;
    for (const unit of units.values()) {
      size += unit.size;
      if (!unit.active) reclaimable += unit.size;
    }
    const containers = { total: 0, active: 0, size: 0, reclaimable: 0 };
    for (const container of this.containers.list()) {
      const bytes = (await this.snapshotSize(container.snapshot)) ?? 0;
      const mounted = (await this.mountPoints(container.name)).length > 0;
      containers.total++;
      containers.size += bytes;
      if (mounted) containers.active++;
      else containers.reclaimable += bytes;
    }
    return { images: { total: targets.size, active: activeImages, size, reclaimable }, containers };
  }

  /** The bytes of a snapshot (its own, not its parents'), undefined when there is none of that key. */
  async snapshotSize(key: string): Promise<number | undefined> {
    try {
      return (await this.snapshotter.usage(key)).size;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** The host platform's image of `target`, undefined where the store cannot read one. */
  #hostImage(target: Descriptor): PlatformImage | undefined {
    try {
      return platformImage(this.content, target);
    } catch (error) {
      if (isStrataError(error)) return undefined;
      throw error;
    }
  }

  /** Imports images from an OCI layout directory, an OCI archive or a docker save archive. */
  async import(source: string, options: ImportOptions = {}): Promise<ImportResult> {
    return importImages(this.#parts, source, options);
  }

  /** Exports images (names or IDs) to `output`. */
  async export(refs: readonly string[], output: string | Writable, options: ExportOptions = {}): Promise<ExportResult> {
    const chosen = refs.map((ref) => {
      const image = this.image(ref);
      return { name: image.name, target: image.target };
    });
    return exportImages(this.content, chosen, output, options);
  }

  /**
   * Writes the filesystem of `ref`'s platform image (its layers applied in order, whiteouts taken) into the
   * directory `output` (made if missing; what is there stays unless a layer replaces it), or with `tar` as
   * one tar archive into `output`: a file written aside and renamed into place, or a stream (a Writable, or
   * a path naming a symlink, FIFO or device such as `/dev/stdout`, written into as it is). With `split`,
   * every platform the image holds, each in a directory of its own named as BuildKit names them
   * (`linux_amd64`, `linux_arm_v7`). What `docker buildx build -o type=local` and `type=tar` give (split
   * for a build of several platforms). Owners are the image's as root; without root they are the caller's,
   * in the directory and the archive alike, and device nodes, which only root can make, are left out.
   */
  async exportFilesystem(ref: string, output: string | Writable, options: { tar?: boolean; platform?: PlatformChoice; split?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    if (typeof output !== 'string' && !options.tar) throw new InvalidArgumentError('a filesystem goes into a stream only as a tar archive (tar: true)');
    if (options.split && options.platform !== undefined) throw new InvalidArgumentError('split exports every platform: give no platform with it');
    const target = this.image(ref).target;
    // Named by the index's word for each platform where it has one (BuildKit's key), else the config's.
    const platformOf = (p: PlatformImage) => p.manifestDescriptor.platform ?? { os: p.config.os, architecture: p.config.architecture, ...(p.config.variant ? { variant: p.config.variant } : {}) };
    const chosen = options.split
      ? platformImages(this.content, target, { all: true }).map((p) => ({ p, under: formatPlatform(platformOf(p)).replaceAll('/', '_') }))
      : [{ p: platformImage(this.content, target, options.platform), under: '' }];
    const dir = options.tar ? this.content.temporaryPath() : (output as string);
    const asRoot = process.geteuid?.() === 0;
    mkdirSync(dir, { recursive: true });
    try {
      for (const { p, under } of chosen) {
        const into = under === '' ? dir : join(dir, under);
        mkdirSync(into, { recursive: true });
        for (const layer of p.manifest.layers) {
          // Without root, owners other than the caller's go into owner records, as in a rootless root.
          await applyLayer(this.content.path(layer.digest), into, { layout: 'plain', devices: asRoot ? 'create' : 'skip', owners: asRoot ? 'apply' : 'xattr', ...(options.signal ? { signal: options.signal } : {}) });
        }
      }
      // A file is written aside and renamed into place by the writer; a symlink or device is written into,
      // never replaced (renaming over /dev/stdout replaced the system's link with the archive).
      // Packed as a rootless commit is: the caller's files as root's, the records' owners given back.
      if (options.tar) await packDirectory(dir, output, this.#idMap ? { idMap: this.#idMap } : {});
    } finally {
      if (options.tar) removeTree(dir);
    }
  }

  /** The platform image of `ref` (host platform unless told). */
  platformImage(ref: string, platform?: PlatformChoice): PlatformImage {
    return platformImage(this.content, this.image(ref).target, platform);
  }

  inspect(ref: string, platform?: PlatformChoice): ImageDetails {
    const image = this.image(ref);
    const p = platformImage(this.content, image.target, platform);
    const config = p.config;
    const diffIDs = config.rootfs.diff_ids;
    const top = diffIDs.length > 0 ? chainID(diffIDs) : undefined;
    let unpacked: string | undefined;
    if (top !== undefined) {
      try {
        this.root.metadata.refresh();
        unpacked = [...this.root.snapshotRecords()].some((s) => s.key === top && s.kind === 'committed') ? top : undefined;
      } catch {
        unpacked = undefined;
      }
    }
    return {
      names: this.images.namesOf(image.target.digest),
      digest: image.target.digest,
      mediaType: image.target.mediaType,
      manifest: p.manifestDescriptor,
      platform: formatPlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) }),
      config,
      configDigest: p.manifest.config.digest,
      layers: p.manifest.layers,
      unpacked,
    };
  }

  /** The image's history, newest first (as `docker history`), each step with the layer it made. */
  history(ref: string, platform?: PlatformChoice): HistoryStep[] {
    const p = this.platformImage(ref, platform);
    const layers = p.manifest.layers;
    const steps: HistoryStep[] = [];
    let next = 0;
    for (const h of p.config.history ?? []) {
      const layer = h.empty_layer ? undefined : layers[next++];
      steps.push({ ...h, layer: layer?.digest, size: layer?.size ?? 0 });
    }
    return steps.reverse();
  }

  /** Names `target` (a name or ID) also `name`. */
  tag(source: string, name: string): string {
    const images = this.images.resolve(source);
    const digests = new Set(images.map((i) => i.target.digest));
    if (digests.size !== 1) throw new InvalidArgumentError(`${quote(source)} names more than one image`);
    return this.images.put(name, images[0]!.target);
  }

  /**
   * Removes images by name or ID, with Docker's rules: a name is untagged; the last name of an image a
   * container uses is refused (FAILED_PRECONDITION naming the container) unless `force`, which untags it
   * while the container keeps its content; an ID with several names needs `force`. All in one transaction:
   * a refusal removes nothing. The content goes with the next `gc`.
   */
  removeImages(refs: readonly string[], options: { force?: boolean } = {}): RemoveResult {
    const untagged: string[] = [];
    const deleted = new Set<string>();
    const resolved = refs.map((ref) => ({ ref, images: this.images.resolve(ref) }));
    this.root.metadata.transaction(() => {
      // Indexed once: a scan of every record per image would make removing n images cost n² reads.
      const namesByDigest = this.images.namesByDigest();
      const usersByDigest = this.containers.usersByDigest();
      for (const { ref, images } of resolved) {
        const digest = images[0]!.target.digest;
        const byId = images.length > 1 || images[0]!.key !== named(this.images, ref)?.key;
        const names = namesByDigest.get(digest) ?? [];
        if (byId && names.length > 1 && !options.force) {
          throw new FailedPreconditionError(`image ${digest} is named ${names.map((n) => quote(n)).join(', ')}: remove the names, or force`, { path: ref });
        }
        const doomed = (byId ? images.map((i) => i.key) : [images[0]!.key]).filter((key) => this.images.has(key)); // a ref may repeat another
        const last = doomed.length >= names.length;
        const users = usersByDigest.get(digest) ?? [];
        if (last && users.length > 0 && !options.force) {
          throw new FailedPreconditionError(`image ${quote(ref)} is used by container ${quote(users[0]!.name)}${users.length > 1 ? ` and ${users.length - 1} more` : ''}: remove the container first, or force (which untags the image and keeps its content for the container)`, { path: ref });
        }
        for (const key of doomed) {
          this.images.delete(key);
          if (!key.startsWith('dangling@')) untagged.push(key);
        }
        namesByDigest.set(digest, names.filter((name) => !doomed.includes(name)));
        if (last && users.length === 0) deleted.add(digest);
      }
    });
    return { untagged, deleted: [...deleted] };
  }

  /**
   * Removes the dangling images, or with `all` every image, that no container uses and the filters let
   * through (`docker image prune [-a] [--filter …]`); their content goes with the next `gc`. As Docker
   * decides it: the name a container was made from stays, and so does the last name of an image a container
   * uses; other names of that image go.
   */
  prune(options: PruneOptions = {}): RemoveResult {
    const untagged: string[] = [];
    const deleted: string[] = [];
    this.root.metadata.transaction(() => {
      const records = this.images.current();
      /** Records (names, or the dangling one) left per image. */
      const names = new Map<string, number>();
      for (const image of records) names.set(image.target.digest, (names.get(image.target.digest) ?? 0) + 1);
      const usersByDigest = this.containers.usersByDigest();
      const namedByContainers = new Set([...usersByDigest.values()].flat().map((c) => c.image));
      const candidates = records
        .filter((image) => (options.all || image.name === undefined) && !namedByContainers.has(image.name ?? image.target.digest))
        .filter((image) => options.until === undefined || image.created < options.until)
        .filter((image) => !options.labels?.length || this.#labelsPass(image.target, options.labels))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      for (const image of candidates) {
        const digest = image.target.digest;
        const left = names.get(digest)!;
        if (left === 1 && usersByDigest.has(digest)) continue;
        names.set(digest, left - 1);
        this.images.delete(image.key);
        if (image.name !== undefined) untagged.push(image.name);
        if (left === 1) deleted.push(digest);
      }
    });
    return { untagged, deleted };
  }

  /** Whether a config of the image at `target` (any platform present) has labels that pass every filter. */
  #labelsPass(target: Descriptor, filters: readonly LabelFilter[]): boolean {
    let images: PlatformImage[];
    try {
      images = platformImages(this.content, target, { all: true });
    } catch (error) {
      if (isStrataError(error)) return false; // nothing readable to match
      throw error;
    }
    return images.some(({ config }) => {
      const found = config.config?.['Labels'];
      const labels = typeof found === 'object' && found !== null ? (found as Record<string, unknown>) : {};
      return filters.every(({ key, value, negate = false }) => {
        const present = Object.hasOwn(labels, key);
        const passes = value === undefined ? present : present && labels[key] === value;
        return passes !== negate;
      });
    });
  }

  // ---- unpack ----------------------------------------------------------------------------------

  /** Unpacks an image into snapshots named by chainID (host platform unless told). */
  async unpack(ref: string, options: UnpackOptions & { platform?: PlatformChoice } = {}): Promise<UnpackResult> {
    return unpackImage(this.#parts, this.platformImage(ref, options.platform), options);
  }

  // ---- containers -------------------------------------------------------------------------------

  /** Makes a container: the image unpacked (if it was not), and an active snapshot on its top chainID. */
  async createContainer(ref: string, name: string, options: { platform?: PlatformChoice; labels?: Record<string, string>; limits?: ReadLimits } = {}): Promise<Container> {
    checkContainerName(name);
    if (this.containers.has(name)) throw new AlreadyExistsError(`container ${quote(name)} already exists`, { path: name });
    const image = this.image(ref);
    const p = platformImage(this.content, image.target, options.platform);
    return this.leases.with(async (lease) => {
      const unpacked = await unpackImage(this.#parts, p, { ...(options.limits ? { limits: options.limits } : {}) }, lease);
      const key = containerSnapshotKey(name);
      this.leases.add(lease.id, { type: 'snapshot', id: key });
      await this.snapshotter.prepare(key, unpacked.chainID, { labels: { 'strata.io/container': name } });
      try {
        return this.containers.put({ name, image: image.name ?? image.target.digest, target: image.target, manifest: p.manifestDescriptor, chainID: unpacked.chainID ?? '', snapshot: key, labels: options.labels ?? {} });
      } catch (error) {
        await this.snapshotter.remove(key).catch(() => {});
        throw error;
      }
    }, { 'strata.io/work': 'container' });
  }

  /** The container `name`. Throws NOT_FOUND. */
  container(name: string): Container {
    return this.containers.get(name);
  }

  /** Where a container's snapshot is mounted by the kernel, if anywhere (its upper, or its bind source, in mountinfo). */
  async mountPoints(name: string): Promise<string[]> {
    const c = this.containers.get(name);
    let mounts;
    try {
      mounts = await this.snapshotter.mounts(c.snapshot);
    } catch {
      return [];
    }
    const upper = mounts[0]?.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
    const source = mounts[0]?.type === 'bind' ? mounts[0].source : undefined;
    const out: string[] = [];
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const fields = line.split(' ');
      const dash = fields.indexOf('-');
      if (dash < 0) continue;
      const superOptions = fields[dash + 3] ?? '';
      if ((upper !== undefined && superOptions.split(',').includes(`upperdir=${upper}`)) || (source !== undefined && fields[3] === source)) out.push(unescapeMountinfo(fields[4]!));
    }
    return out;
  }

  /** Removes containers: a mounted one is refused unless `force` (which unmounts it first). */
  async removeContainer(name: string, options: { force?: boolean } = {}): Promise<void> {
    const c = this.containers.get(name);
    const mounted = await this.mountPoints(name);
    if (mounted.length > 0) {
      if (!options.force) throw new FailedPreconditionError(`container ${quote(name)} is mounted at ${quote(mounted[0]!)}: unmount it first, or force`, { path: name });
      for (const target of mounted.reverse()) unmount(target);
    }
    try {
      await this.snapshotter.remove(c.snapshot);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    this.containers.delete(name);
  }

  /** Mounts a container's tree at `target` with the kernel. */
  async mountContainer(name: string, target: string): Promise<void> {
    await this.snapshotter.mount(this.containers.get(name).snapshot, target);
  }

  /** The container's tree in strata's userspace view (writable), under any driver. */
  async openContainer(name: string): Promise<WritableLayer> {
    return this.snapshotter.open(this.containers.get(name).snapshot);
  }

  /** The container's change as a layer (without root, the caller's files as root's, unless `output` maps ids itself). */
  async diffContainer(name: string, output: LayerOutput): Promise<LayerDescriptor> {
    return this.snapshotter.diff(this.containers.get(name).snapshot, this.#asImageLayer(output));
  }

  /** `output` with this process's id map (see `#idMap`), unless it maps ids itself. */
  #asImageLayer(output: LayerOutput): LayerOutput {
    return this.#idMap === undefined ? output : { idMap: this.#idMap, ...output };
  }

  /**
   * `docker commit`: the container's change as a new layer (read from its upper directory, so it costs what
   * the change costs) on its image, with a new config (diffIDs, a history step, created) and manifest, named
   * `name`.
   */
  async commit(container: string, name: string, options: CommitOptions = {}): Promise<{ name: string; target: Descriptor; layer: LayerDescriptor }> {
    const c = this.containers.get(container);
    const base = { manifest: readManifest(this.content, c.manifest), config: undefined as ImageConfig | undefined };
    base.config = readConfig(this.content, base.manifest.config);
    const epoch = options.sourceDateEpoch ?? sourceDateEpoch();
    return this.leases.with(async (lease) => {
      const temp = this.content.temporaryPath();
      const layer = await this.snapshotter.diff(
        c.snapshot,
        this.#asImageLayer({ path: temp, compression: options.compression ?? 'gzip', durable: true, ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}) }),
      );
      await this.content.adopt(temp, layer.digest, { lease: lease.id, labels: layerLabels(layer) });
      const created = createdAt(epoch);
      const step: History = {
        created,
        created_by: options.createdBy ?? '',
        ...(options.author !== undefined ? { author: options.author } : {}),
        ...(options.message !== undefined ? { comment: options.message } : {}),
      };
      const old = base.config!;
      const config: ImageConfig = {
        ...old,
        created,
        ...(options.author !== undefined ? { author: options.author } : {}),
        rootfs: { type: 'layers', diff_ids: [...old.rootfs.diff_ids, layer.diffID] },
        history: [...(old.history ?? []), step],
      };
      const made = await writeNewImage(this.#parts, { base: base.manifest, keep: base.manifest.layers.length, config, layer }, name, lease.id);
      return { ...made, layer };
    }, { 'strata.io/work': 'commit' });
  }

  /** An image's layers (all, or those above `base`'s) folded into one, named `name`. */
  async squash(ref: string, name: string, options: SquashOptions = {}): Promise<{ name: string; target: Descriptor; layer: LayerDescriptor; folded: number }> {
    const p = this.platformImage(ref, options.platform);
    const layers = layersOf(p);
    const diffIDs = p.config.rootfs.diff_ids;
    let keep = 0;
    if (options.base !== undefined) {
      const base = this.platformImage(options.base, options.platform).config.rootfs.diff_ids;
      if (base.length > diffIDs.length || base.some((d, i) => diffIDs[i] !== d)) {
        throw new FailedPreconditionError(`${quote(options.base)} is not a base of ${quote(ref)}: its layers are not the first layers of the image`);
      }
      keep = base.length;
    }
    const folded = layers.slice(keep);
    if (folded.length === 0) throw new FailedPreconditionError(`${quote(ref)} has no layers above its base to squash`);
    const epoch = options.sourceDateEpoch ?? sourceDateEpoch();
    return this.leases.with(async (lease) => {
      for (const l of folded) if (!this.content.hold(l.digest, lease.id)) throw new NotFoundError(`layer ${l.digest} is not in the store`, { path: l.digest });
      const temp = this.content.temporaryPath();
      const layer = await flatten(folded.map((l) => this.content.path(l.digest)), temp, { compression: options.compression ?? 'gzip', durable: true, ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}) });
      await this.content.adopt(temp, layer.digest, { lease: lease.id, labels: layerLabels(layer) });
      const created = createdAt(epoch);
      const config: ImageConfig = {
        ...p.config,
        created,
        rootfs: { type: 'layers', diff_ids: [...diffIDs.slice(0, keep), layer.diffID] },
        history: foldHistory(p.config.history, keep, { created, created_by: 'strata image squash', comment: `${folded.length} layer(s) folded into one` }),
      };
      const made = await writeNewImage(this.#parts, { base: p.manifest, keep, config, layer }, name, lease.id);
      return { ...made, layer, folded: folded.length };
    }, { 'strata.io/work': 'squash' });
  }

  // ---- collection and checks -----------------------------------------------------------------------

  /** Collects what nothing holds: blobs, snapshots, abandoned ingests, expired leases. */
  gc(): Promise<GcResult> {
    return collectGarbage(this.#parts);
  }

  /**
   * Checks the root: the snapshotter's own check, every image's content (present, parsable, sizes as
   * described) and its chain (unpacked, or every layer there to unpack it again), every container's
   * snapshot and image, and with `content` every blob re-hashed. `repair` fixes the snapshotter's problems
   * and deletes corrupt blobs (content-addressed: a wrong one is worth nothing).
   */
  async fsck(options: { content?: boolean; repair?: boolean } = {}): Promise<ImageFsckReport> {
    const snapshots = await this.snapshotter.fsck({ repair: options.repair ?? false });
    const problems: ImageFsckProblem[] = [];
    const digests = this.content.digests();
    let verified = 0;
    if (options.content) {
      // Each blob read and hashed by a native thread of its own, CONTENT_CHECKS at a time; reported in order.
      const actuals: string[] = new Array(digests.length);
      await eachLimited(digests, CONTENT_CHECKS, async (digest, i) => {
        actuals[i] = (await sha256OfFile(this.content.path(digest))).digest;
      });
      for (const [i, digest] of digests.entries()) {
        const actual = actuals[i]!;
        verified++;
        if (actual === digest) continue;
        const problem: ImageFsckProblem = { kind: 'corrupt-blob', subject: digest, detail: `its bytes hash to ${actual}`, repaired: false };
        if (options.repair) {
          this.content.delete(digest);
          problem.repaired = true;
        }
        problems.push(problem);
      }
    }
    const committed = new Set<string>();
    this.root.metadata.refresh();
    for (const s of this.root.snapshotRecords()) if (s.kind === 'committed') committed.add(s.key);
    const images = this.images.list();
    for (const image of images) {
      const subject = image.name ?? image.target.digest;
      try {
        reachable(this.content, image.target, { all: true });
        for (const p of platformImages(this.content, image.target, kindOf(image.target.mediaType) === 'index' ? { all: true } : { platform: hostPlatform() })) {
          const diffIDs = p.config.rootfs.diff_ids;
          const layers = layersOf(p);
          const chain = diffIDs.length > 0 ? chainID(diffIDs) : undefined;
          if (chain === undefined || committed.has(chain)) continue;
          const missing = layers.filter((l) => !this.content.has(l.digest) && !mayBeAbsent(l)); // strata never fetches foreign layers
          if (missing.length > 0) problems.push({ kind: 'not-unpackable', subject, detail: `not unpacked, and layer ${missing[0]!.digest} is missing`, repaired: false });
        }
      } catch (error) {
        problems.push({ kind: 'broken-image', subject, detail: (error as Error).message, repaired: false });
      }
    }
    const keys = new Set([...this.root.snapshotRecords()].map((s) => s.key));
    for (const c of this.containers.list()) {
      const lacks: string[] = [];
      if (!keys.has(c.snapshot)) lacks.push(`its snapshot ${c.snapshot}`);
      if (!this.content.has(c.manifest.digest)) lacks.push(`its image's manifest ${c.manifest.digest}`);
      if (lacks.length > 0) problems.push({ kind: 'broken-container', subject: c.name, detail: `missing ${lacks.join(' and ')}`, repaired: false });
    }
    return { snapshots, blobs: digests.length, verified, images: images.length, problems, ok: snapshots.ok && problems.every((p) => p.repaired) };
  }
}

/** The image named `text`, when it is a name at all. */
function named(store: ImageStore, text: string): Image | undefined {
  try {
    return store.get(text);
  } catch {
    return undefined;
  }
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountinfo(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Opens the images of `root` (created on first use), with its snapshotter (see `openSnapshotter`). */
export async function openImages(root: string, options: OpenOptions = {}): Promise<Images> {
  return new Images(await openRoot(root, options));
}
