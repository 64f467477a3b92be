/**
 * Image documents (descriptors, indexes, manifests, configs), parsed strictly: an import or a pull reads
 * them from archives and registries nobody here wrote, so every field used is checked for its type and
 * range, documents are bounded in size, and a failure is IMAGE_FORMAT naming what is wrong.
 */
import { createHash } from 'node:crypto';
import { ImageFormatError, LimitExceededError, UnsupportedError, quote } from '@strata/core';
import { DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST } from './media-types.js';

/** Largest manifest, index or config strata reads (registries commonly refuse more). */
export const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;

/** What an image runs on. */
export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
  readonly 'os.version'?: string;
}

/** A content descriptor, as OCI defines it. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly platform?: Platform;
  /** Where a non-distributable layer may be fetched from; strata never fetches them unless asked. */
  readonly urls?: readonly string[];
}

export interface Index {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly manifests: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface Manifest {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
}

/** One step of an image's history. */
export interface History {
  readonly created?: string;
  readonly created_by?: string;
  readonly author?: string;
  readonly comment?: string;
  readonly empty_layer?: boolean;
}

/** The parts of an image config strata reads and writes; the rest is kept as it came. */
export interface ImageConfig {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
  readonly created?: string;
  readonly author?: string;
  readonly config?: Readonly<Record<string, unknown>>;
  readonly rootfs: { readonly type: 'layers'; readonly diff_ids: readonly string[] };
  readonly history?: readonly History[];
  readonly [key: string]: unknown;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** The digest of bytes held in memory (a document). */
export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Throws unless `digest` is a sha256 digest (other algorithms: UNSUPPORTED). */
export function checkDigest(digest: unknown, where: string): string {
  if (typeof digest === 'string' && DIGEST.test(digest)) return digest;
  if (typeof digest === 'string' && !digest.startsWith('sha256:') && /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest)) {
    throw new UnsupportedError(`${where}: digest algorithm of ${quote(digest)} is not supported (sha256 is)`);
  }
  throw new ImageFormatError(`${where}: ${quote(String(digest))} is not a digest`);
}

function fail(where: string, what: string): never {
  throw new ImageFormatError(`${where}: ${what}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) fail(where, 'annotations must be an object of strings');
  for (const [k, v] of Object.entries(value)) if (typeof v !== 'string') fail(where, `annotation ${quote(k)} is not a string`);
  return value as Record<string, string>;
}

function platformOf(value: unknown, where: string): Platform | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value) || typeof value.architecture !== 'string' || typeof value.os !== 'string') fail(where, 'platform needs an os and an architecture');
  const platform: { architecture: string; os: string; variant?: string; 'os.version'?: string } = { architecture: value.architecture, os: value.os };
  if (typeof value.variant === 'string') platform.variant = value.variant;
  if (typeof value['os.version'] === 'string') platform['os.version'] = value['os.version'];
  return platform;
}

/** A descriptor from parsed JSON, checked. */
export function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) fail(where, 'a descriptor must be an object');
  if (typeof value.mediaType !== 'string' || value.mediaType === '') fail(where, 'a descriptor needs a mediaType');
  const digest = checkDigest(value.digest, where);
  const size = value.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(where, `size ${quote(String(size))} is not a byte count`);
  const out: { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: Platform; urls?: string[] } = { mediaType: value.mediaType, digest, size };
  const annotations = stringMap(value.annotations, where);
  if (annotations !== undefined) out.annotations = annotations;
  const platform = platformOf(value.platform, where);
  if (platform !== undefined) out.platform = platform;
  if (Array.isArray(value.urls) && value.urls.every((u) => typeof u === 'string')) out.urls = value.urls as string[];
  return out;
}

/** JSON from bytes of a document, bounded in size. */
export function parseJson(bytes: Uint8Array, where: string): unknown {
  if (bytes.length > MAX_DOCUMENT_BYTES) throw new LimitExceededError(`${where}: ${bytes.length} bytes, over the ${MAX_DOCUMENT_BYTES}-byte limit for manifests and configs`);
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new ImageFormatError(`${where}: not JSON (${(error as Error).message})`, { cause: error });
  }
}

function schemaTwo(value: Record<string, unknown>, where: string): void {
  if (value.schemaVersion !== 2) fail(where, `schemaVersion ${quote(String(value.schemaVersion))} is not 2 (Docker schema 1 images are not supported)`);
}

/** An image index (OCI) or manifest list (Docker). */
export function parseIndex(bytes: Uint8Array, where: string): Index {
  const value = parseJson(bytes, where);
  if (!isObject(value)) fail(where, 'an index must be an object');
  schemaTwo(value, where);
  if (value.mediaType !== undefined && value.mediaType !== OCI_INDEX && value.mediaType !== DOCKER_MANIFEST_LIST) fail(where, `mediaType ${quote(String(value.mediaType))} is not an index`);
  if (!Array.isArray(value.manifests)) fail(where, 'an index needs a manifests array');
  const manifests = value.manifests.map((m, i) => parseDescriptor(m, `${where} manifests[${i}]`));
  const annotations = stringMap(value.annotations, where);
  return { schemaVersion: 2, ...(typeof value.mediaType === 'string' ? { mediaType: value.mediaType } : {}), manifests, ...(annotations ? { annotations } : {}) };
}

/** An image manifest (OCI or Docker schema 2). */
export function parseManifest(bytes: Uint8Array, where: string): Manifest {
  const value = parseJson(bytes, where);
  if (!isObject(value)) fail(where, 'a manifest must be an object');
  schemaTwo(value, where);
  if (value.mediaType !== undefined && value.mediaType !== OCI_MANIFEST && value.mediaType !== DOCKER_MANIFEST) fail(where, `mediaType ${quote(String(value.mediaType))} is not a manifest`);
  const config = parseDescriptor(value.config, `${where} config`);
  if (config.mediaType !== OCI_CONFIG && config.mediaType !== DOCKER_CONFIG) {
    throw new UnsupportedError(`${where}: config media type ${quote(config.mediaType)} is not an image config (artifacts are not images)`);
  }
  if (!Array.isArray(value.layers)) fail(where, 'a manifest needs a layers array');
  const layers = value.layers.map((l, i) => parseDescriptor(l, `${where} layers[${i}]`));
  const annotations = stringMap(value.annotations, where);
  return { schemaVersion: 2, ...(typeof value.mediaType === 'string' ? { mediaType: value.mediaType } : {}), config, layers, ...(annotations ? { annotations } : {}) };
}

/** The layers' diffIDs a config lists, with nothing else of it checked (what collection needs of a stored one). */
export function configDiffIDs(bytes: Uint8Array, where: string): readonly string[] {
  return rootfsOf(parseJson(bytes, where), where);
}

function rootfsOf(value: unknown, where: string): readonly string[] {
  if (!isObject(value)) fail(where, 'a config must be an object');
  const rootfs = value.rootfs;
  if (!isObject(rootfs) || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) fail(where, 'a config needs rootfs.type "layers" and rootfs.diff_ids');
  rootfs.diff_ids.forEach((d, i) => checkDigest(d, `${where} rootfs.diff_ids[${i}]`));
  return rootfs.diff_ids as string[];
}

/**
 * An image config, each field the image spec (and Docker's additions) gives a type checked against it, the
 * rest kept as it came. A field of the wrong type is refused, as Go's typed decoding in containerd and
 * Docker refuses it; null stands for absent, as it does there.
 */
export function parseConfig(bytes: Uint8Array, where: string): ImageConfig {
  const config = parseJson(bytes, where);
  if (!isObject(config)) fail(where, 'a config must be an object');
  if (typeof config.architecture !== 'string' || typeof config.os !== 'string') fail(where, 'a config needs an os and an architecture');
  rootfsOf(config, where);
  checkFields(config, CONFIG_FIELDS, where, '');
  if (config.config !== undefined && config.config !== null) {
    if (!isObject(config.config)) fail(where, `config must be an object, not ${kindOf(config.config)}`);
    checkFields(config.config, RUN_CONFIG_FIELDS, where, 'config.');
    const healthcheck = config.config.Healthcheck;
    if (healthcheck !== undefined && healthcheck !== null) checkFields(healthcheck as Record<string, unknown>, HEALTHCHECK_FIELDS, where, 'config.Healthcheck.');
  }
  if (config.history !== undefined && config.history !== null) {
    if (!Array.isArray(config.history)) fail(where, `history must be an array, not ${kindOf(config.history)}`);
    for (const [i, step] of config.history.entries()) {
      if (!isObject(step)) fail(where, `history[${i}] must be an object, not ${kindOf(step)}`);
      checkFields(step, HISTORY_FIELDS, where, `history[${i}].`);
    }
  }
  return config as unknown as ImageConfig;
}

type FieldType = 'string' | 'strings' | 'boolean' | 'integer' | 'object' | 'set' | 'labels';

const CONFIG_FIELDS: Readonly<Record<string, FieldType>> = { created: 'string', author: 'string', variant: 'string', 'os.version': 'string', 'os.features': 'strings' };
const RUN_CONFIG_FIELDS: Readonly<Record<string, FieldType>> = {
  User: 'string',
  WorkingDir: 'string',
  StopSignal: 'string',
  Env: 'strings',
  Entrypoint: 'strings',
  Cmd: 'strings',
  Shell: 'strings',
  OnBuild: 'strings',
  ExposedPorts: 'set',
  Volumes: 'set',
  Labels: 'labels',
  ArgsEscaped: 'boolean',
  Healthcheck: 'object',
};
const HEALTHCHECK_FIELDS: Readonly<Record<string, FieldType>> = { Test: 'strings', Interval: 'integer', Timeout: 'integer', StartPeriod: 'integer', StartInterval: 'integer', Retries: 'integer' };
const HISTORY_FIELDS: Readonly<Record<string, FieldType>> = { created: 'string', author: 'string', created_by: 'string', comment: 'string', empty_layer: 'boolean' };

/**
 * Throws unless each of `fields` that `object` holds (null aside) has its type, naming (after `prefix`) the
 * first value that does not; a set's null members become {}.
 */
function checkFields(object: Record<string, unknown>, fields: Readonly<Record<string, FieldType>>, where: string, prefix: string): void {
  const wrong = (name: string, expected: string, value: unknown): never => fail(where, `${prefix}${name} must be ${expected}, not ${kindOf(value)}`);
  for (const [name, type] of Object.entries(fields)) {
    const value = object[name];
    if (value === undefined || value === null) continue;
    switch (type) {
      case 'string':
        if (typeof value !== 'string') wrong(name, 'a string', value);
        break;
      case 'boolean':
        if (typeof value !== 'boolean') wrong(name, 'true or false', value);
        break;
      case 'integer':
        if (!Number.isSafeInteger(value)) wrong(name, 'an integer', value);
        break;
      case 'object':
        if (!isObject(value)) wrong(name, 'an object', value);
        break;
      case 'strings':
        if (!Array.isArray(value)) wrong(name, 'an array of strings', value);
        for (const [i, v] of (value as unknown[]).entries()) if (typeof v !== 'string') wrong(`${name}[${i}]`, 'a string', v);
        break;
      case 'set':
      case 'labels':
        if (!isObject(value)) wrong(name, type === 'set' ? 'an object of objects' : 'an object of strings', value);
        for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
          if (type === 'set' ? v !== null && !isObject(v) : typeof v !== 'string') wrong(`${name}[${quote(key)}]`, type === 'set' ? 'an object' : 'a string', v);
          // A member of a set is Go's struct{}: null decodes to it, and a config written from it says {}.
          if (v === null) (value as Record<string, unknown>)[key] = {};
        }
    }
  }
}

/** What a JSON value is, for a message (never the value itself, which may be anything). */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? (Number.isSafeInteger(value) ? 'a number' : 'an integer out of range') : 'a fraction';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** The bytes of a document as strata writes them: JSON, no insignificant whitespace. */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}
