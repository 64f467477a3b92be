/**
 * Small images for tests, built without strata's code: layers from the naive tar builder, documents as
 * plain JSON, written as OCI layouts, OCI archives and legacy `docker save` archives, hostile ones included
 * (every document can be replaced by raw bytes).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { rawTar, sha256, type RawEntry } from './raw-tar.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

export interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

/** A layer of `files` (path → content; a trailing / makes a directory). */
export function layer(files: Record<string, string>, mtime = 1_700_000_000): Buffer {
  const entries: RawEntry[] = Object.entries(files).map(([name, data]) => (name.endsWith('/') ? { name, type: '5', mode: 0o755, mtime } : { name, data, mode: 0o644, mtime }));
  return rawTar(entries);
}

export function gzip(bytes: Uint8Array): Buffer {
  return gzipSync(bytes);
}

/** An image as plain parts: layers (tar, maybe gzipped), and the config and manifest they make. */
export interface Built {
  blobs: Map<string, Buffer>;
  config: Buffer;
  manifest: Buffer;
  manifestDescriptor: Desc;
  diffIDs: string[];
}

export interface ImageSpec {
  /** Uncompressed layer tars. */
  layers: Buffer[];
  /** gzip the layers (default true). */
  gzip?: boolean;
  /** Changes to the config before it is encoded. */
  config?: (config: Record<string, unknown>) => void;
  /** Changes to the manifest before it is encoded. */
  manifest?: (manifest: Record<string, unknown>) => void;
  architecture?: string;
  /** A distinguishing field, so otherwise equal images differ. */
  label?: string;
}

/** Builds an image's blobs. */
export function buildImage(spec: ImageSpec): Built {
  const blobs = new Map<string, Buffer>();
  const put = (bytes: Buffer) => {
    const digest = sha256(bytes);
    blobs.set(digest, bytes);
    return { digest, size: bytes.length };
  };
  const diffIDs = spec.layers.map((l) => sha256(l));
  const layerDescs = spec.layers.map((l) => ({ mediaType: spec.gzip === false ? OCI_LAYER : OCI_LAYER_GZIP, ...put(spec.gzip === false ? l : gzip(l)) }));
  const config: Record<string, unknown> = {
    architecture: spec.architecture ?? 'amd64',
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    config: { Env: ['PATH=/usr/bin:/bin'], ...(spec.label ? { Labels: { test: spec.label } } : {}) },
    rootfs: { type: 'layers', diff_ids: diffIDs },
    history: spec.layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `step ${i}` })),
  };
  spec.config?.(config);
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDesc = { mediaType: OCI_CONFIG, ...put(configBytes) };
  const manifest: Record<string, unknown> = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc, layers: layerDescs };
  spec.manifest?.(manifest);
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDescriptor: Desc = { mediaType: OCI_MANIFEST, ...put(manifestBytes), platform: { architecture: spec.architecture ?? 'amd64', os: 'linux' } };
  return { blobs, config: configBytes, manifest: manifestBytes, manifestDescriptor, diffIDs };
}

/** An index of several built images (one per platform). */
export function buildIndex(images: Built[]): { blobs: Map<string, Buffer>; descriptor: Desc } {
  const blobs = new Map<string, Buffer>();
  for (const image of images) for (const [d, b] of image.blobs) blobs.set(d, b);
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: images.map((i) => i.manifestDescriptor) }));
  const digest = sha256(bytes);
  blobs.set(digest, bytes);
  return { blobs, descriptor: { mediaType: OCI_INDEX, digest, size: bytes.length } };
}

/** The files of an OCI layout: `entries` go into index.json as they are. */
export function layoutFiles(blobs: Map<string, Buffer>, entries: Desc[], indexJson?: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  files.set('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  files.set('index.json', indexJson ?? Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries })));
  for (const [digest, bytes] of blobs) files.set(`blobs/sha256/${digest.slice(7)}`, bytes);
  return files;
}

/** Writes files as a directory. */
export function writeDirectory(dir: string, files: Map<string, Buffer>): string {
  for (const [path, bytes] of files) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), bytes);
  }
  return dir;
}

/** Writes files (and extra raw entries) as a tar archive. */
export function writeArchive(path: string, files: Map<string, Buffer>, extra: RawEntry[] = []): string {
  const entries: RawEntry[] = [...files].map(([name, data]) => ({ name, data, mode: 0o644 }));
  writeFileSync(path, rawTar([...entries, ...extra]));
  return path;
}

/** The name annotations index.json entries carry. */
export function named(d: Desc, name: string, tag?: string): Desc {
  return { ...d, annotations: { 'io.containerd.image.name': name, ...(tag ? { 'org.opencontainers.image.ref.name': tag } : {}) } };
}

/**
 * The files of a legacy `docker save` archive of `images` (uncompressed layers at `<n>/layer.tar`, configs
 * at `<hex>.json`); `edit` may change manifest.json before it is written.
 */
export function dockerSaveFiles(images: { built: Built; tags: string[]; layers: Buffer[] }[], edit?: (manifest: Record<string, unknown>[]) => void): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const manifest: Record<string, unknown>[] = [];
  for (const { built, tags, layers } of images) {
    const configName = `${sha256(built.config).slice(7)}.json`;
    files.set(configName, built.config);
    const paths = layers.map((l) => {
      const id = sha256(l).slice(7);
      files.set(`${id}/layer.tar`, l);
      files.set(`${id}/VERSION`, Buffer.from('1.0'));
      files.set(`${id}/json`, Buffer.from(`{"id":"${id}"}`));
      return `${id}/layer.tar`;
    });
    manifest.push({ Config: configName, RepoTags: tags, Layers: paths });
  }
  edit?.(manifest);
  files.set('manifest.json', Buffer.from(JSON.stringify(manifest)));
  return files;
}
