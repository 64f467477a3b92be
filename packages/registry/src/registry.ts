/**
 * One registry, over the OCI distribution protocol (distribution-spec v1.1): manifests in and out, blobs
 * checked, fetched from an offset, mounted and uploaded (monolithic or in chunks, resumable), tags listed.
 * Every call authenticates as the registry asks, and retries what is transient (see `transport.ts`).
 */
import { createHash } from 'node:crypto';
import {
  ImageFormatError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  RegistryError,
  UnauthenticatedError,
  UnsupportedError,
  quote,
  sanitize,
} from '@strata/core';
import { MAX_DOCUMENT_BYTES, mediaTypes } from '@strata/images';
import { Authorizer } from './auth.js';
import { credentialsFrom, type CredentialSource } from './credentials.js';
import { header, retriableStatus, retryAfterMs, Transport, TransientStatus, withRetries, type HttpRequest, type HttpResponse, type RetryEvent, type TransportOptions } from './transport.js';

/** How to reach a registry. */
export interface RegistryOptions extends TransportOptions {
  /** Speak plain http to this registry; default: only to localhost, 127.0.0.1 and ::1 (false: https there too). */
  readonly plainHttp?: boolean;
  /** Where credentials come from (default: strata's login file, then Docker's config and helpers). */
  readonly credentials?: CredentialSource;
  readonly signal?: AbortSignal;
  /** Told of each retry. */
  readonly onRetry?: (event: RetryEvent & { what: string }) => void;
}

/** Every manifest type strata reads, for `Accept`. */
export const MANIFEST_TYPES = [mediaTypes.OCI_INDEX, mediaTypes.OCI_MANIFEST, mediaTypes.DOCKER_MANIFEST_LIST, mediaTypes.DOCKER_MANIFEST];

/** Docker Hub's API host for `docker.io`. */
const DOCKER_HUB = 'registry-1.docker.io';

/** Whether `host` (with or without a port) is this machine. */
export function isLocalHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0]!;
  return name === 'localhost' || name === '127.0.0.1' || name === '::1' || name.endsWith('.localhost');
}

/** A manifest or index as the registry sent it, checked against its digest. */
export interface FetchedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly digest: string;
}

/** Where an upload goes on, and from which offset. */
export interface UploadSession {
  readonly location: URL;
  readonly offset: number;
  /** The registry's smallest chunk, when it says (OCI-Chunk-Min-Length). */
  readonly minChunk: number | undefined;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** What a registry's error body says (`{"errors":[{"code","message"}]}`), made safe to print. */
async function errorDetail(response: HttpResponse): Promise<string> {
  try {
    const body = JSON.parse((await Transport.read(response, 64 * 1024, 'an error body')).toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = body.errors?.[0];
    if (first === undefined) return '';
    return `: ${sanitize(String(first.code ?? ''))}${first.message ? ` (${sanitize(String(first.message)).slice(0, 200)})` : ''}`;
  } catch {
    return '';
  }
}

/** A transient status as `TransientStatus` (its body dropped), for a retry loop to try again; else nothing. */
async function throwIfTransient(response: HttpResponse): Promise<void> {
  if (!retriableStatus(response.status)) return;
  const wait = retryAfterMs(response);
  await response.dump();
  throw new TransientStatus(response.status, wait);
}

export class Registry {
  /** The registry as references name it (`docker.io`, `localhost:5000`). */
  readonly domain: string;
  readonly base: URL;
  readonly transport: Transport;
  readonly #auth: Authorizer;
  readonly #options: RegistryOptions;

  constructor(domain: string, options: RegistryOptions = {}) {
    this.domain = domain;
    const plain = options.plainHttp ?? isLocalHost(domain);
    const host = domain === 'docker.io' ? DOCKER_HUB : domain;
    try {
      this.base = new URL(`${plain ? 'http' : 'https'}://${host}/`);
    } catch {
      throw new InvalidArgumentError(`${quote(domain)} is not a registry host`);
    }
    this.transport = new Transport(options);
    this.#auth = new Authorizer(domain, plain, this.transport, options.credentials ?? credentialsFrom());
    this.#options = options;
  }

  /** What aborts every call. */
  get signal(): AbortSignal | undefined {
    return this.#options.signal;
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  #url(path: string): URL {
    return new URL(path, this.base);
  }

  /**
   * Sends a request built by `make` (again for each try), with authorization for `scopes`: a 401 teaches
   * the authorizer and is tried again once; transient statuses and network errors are retried when
   * `retry`. Other statuses are the caller's to judge.
   */
  async call(what: string, scopes: readonly string[], make: () => HttpRequest, retry = true): Promise<HttpResponse> {
    const signal = this.#options.signal;
    const once = async (): Promise<HttpResponse> => {
      for (let auth = 0; ; auth++) {
        const authorization = await this.#auth.authorization(scopes, signal);
        const req = make();
        const response = await this.transport.send({ ...req, headers: { ...(req.headers ?? {}), ...(authorization ? { authorization } : {}), 'user-agent': 'strata' }, ...(signal ? { signal } : {}) });
        if (response.status === 401) {
          this.#auth.learn(response, scopes, authorization);
          await response.dump();
          if (auth === 0) continue; // once more, as the challenge asks (a second refusal is final)
          throw new UnauthenticatedError(`${quote(this.domain)} refused ${what}: check the credentials (strata login ${this.domain})`);
        }
        if (retry) await throwIfTransient(response);
        return response;
      }
    };
    if (!retry) return once();
    const onRetry = this.#options.onRetry;
    return withRetries(this.transport.options, `${what} at ${this.domain}`, once, { ...(signal ? { signal } : {}), ...(onRetry ? { onRetry: (e: RetryEvent) => onRetry({ ...e, what }) } : {}) });
  }

  /** The response as an error: NOT_FOUND, PERMISSION_DENIED, or REGISTRY with the registry's own code. */
  async fail(response: HttpResponse, what: string): Promise<never> {
    const detail = await errorDetail(response);
    if (response.status === 404) throw new NotFoundError(`${what}: not found at ${this.domain}${detail}`);
    if (response.status === 403) throw new PermissionDeniedError(`${what}: ${this.domain} denied it${detail}`);
    throw new RegistryError(`${what}: ${this.domain} answered HTTP ${response.status}${detail}`);
  }

  /**
   * Returns when `response` has `status`; else throws: a transient status as `TransientStatus` (for the
   * caller's retry loop, these requests not being retried inside `call`), any other as `fail` does.
   */
  async #expect(response: HttpResponse, status: number, what: string): Promise<void> {
    if (response.status === status) return;
    await throwIfTransient(response);
    return this.fail(response, what);
  }

  /** `GET /v2/`: whether the registry speaks the protocol (and, as a side effect, how it authenticates). */
  async ping(): Promise<void> {
    const response = await this.call('GET /v2/', [], () => ({ method: 'GET', url: this.#url('/v2/') }));
    await response.dump();
    if (response.status !== 200) throw new RegistryError(`${this.domain} answered HTTP ${response.status} to GET /v2/: not a registry`);
  }

  /**
   * A manifest or index by tag or digest, bounded at 4 MiB and checked: against the digest asked for, and
   * against the registry's own `Docker-Content-Digest`.
   */
  async manifest(repository: string, reference: string): Promise<FetchedManifest> {
    const what = `manifest ${repository}:${reference}`;
    const response = await this.call(what, [`repository:${repository}:pull`], () => ({
      method: 'GET',
      url: this.#url(`/v2/${repository}/manifests/${reference}`),
      headers: { accept: MANIFEST_TYPES.join(', ') },
    }));
    if (response.status !== 200) return this.fail(response, what);
    const bytes = await Transport.read(response, MAX_DOCUMENT_BYTES, what).catch((error: unknown) => {
      throw new ImageFormatError(`${what}: ${(error as Error).message}`, { cause: error });
    });
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) throw new ImageFormatError(`${what}: the registry sent content whose digest is ${digest}`);
    const claimed = header(response, 'docker-content-digest');
    if (claimed !== undefined && claimed.startsWith('sha256:') && claimed !== digest) throw new ImageFormatError(`${what}: the registry says ${claimed}, but its content is ${digest}`);
    const mediaType = (header(response, 'content-type') ?? '').split(';')[0]!.trim();
    let declared: unknown;
    try {
      declared = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown } | null)?.mediaType;
    } catch {
      throw new ImageFormatError(`${what}: the registry sent something that is not JSON`);
    }
    const type = MANIFEST_TYPES.includes(mediaType) ? mediaType : typeof declared === 'string' && MANIFEST_TYPES.includes(declared) ? declared : undefined;
    if (type === undefined) throw new UnsupportedError(`${what}: media type ${quote(mediaType || String(declared))} is not an image index or manifest (Docker schema 1 is not supported)`);
    return { bytes, mediaType: type, digest };
  }

  /** `HEAD` a blob: its size when the registry has it, else undefined. */
  async blobSize(repository: string, digest: string, scopes: readonly string[] = [`repository:${repository}:pull`]): Promise<number | undefined> {
    const what = `blob ${digest} in ${repository}`;
    const response = await this.call(what, scopes, () => ({ method: 'HEAD', url: this.#url(`/v2/${repository}/blobs/${digest}`) }));
    await response.dump();
    if (response.status === 404) return undefined;
    if (response.status !== 200) return this.fail(response, what);
    const length = Number(header(response, 'content-length'));
    return Number.isSafeInteger(length) ? length : -1;
  }

  /**
   * Opens a blob from `offset` (a `Range` request when past 0). Returns the response and the offset its
   * body starts at: `offset` (206), or 0 when the registry ignored the range (200).
   */
  async openBlob(repository: string, digest: string, offset: number): Promise<{ response: HttpResponse; start: number }> {
    const what = `blob ${digest} from ${repository}`;
    const response = await this.call(what, [`repository:${repository}:pull`], () => ({
      method: 'GET',
      url: this.#url(`/v2/${repository}/blobs/${digest}`),
      ...(offset > 0 ? { headers: { range: `bytes=${offset}-` } } : {}),
    }));
    if (response.status === 200) return { response, start: 0 };
    if (response.status === 206) {
      const range = /^bytes (\d+)-/.exec(header(response, 'content-range') ?? '');
      if (range === null || Number(range[1]) !== offset) {
        response.body.destroy();
        throw new RegistryError(`${what}: asked from byte ${offset}, the registry sent another range`);
      }
      return { response, start: offset };
    }
    return this.fail(response, what);
  }

  /** Starts an upload, or mounts `digest` from `from` (same registry): `mounted`, or the upload it began instead. */
  async startUpload(repository: string, mount?: { digest: string; from: string }): Promise<'mounted' | UploadSession> {
    const what = `upload to ${repository}`;
    const scopes = [`repository:${repository}:pull,push`, ...(mount ? [`repository:${mount.from}:pull`] : [])];
    const url = this.#url(`/v2/${repository}/blobs/uploads/`);
    if (mount) {
      url.searchParams.set('mount', mount.digest);
      url.searchParams.set('from', mount.from);
    }
    const response = await this.call(what, scopes, () => ({ method: 'POST', url, headers: { 'content-length': '0' } }));
    if (response.status === 201 && mount) {
      await response.dump();
      return 'mounted';
    }
    if (response.status !== 202) return this.fail(response, what);
    await response.dump();
    return this.#session(response, what);
  }

  #session(response: HttpResponse, what: string): UploadSession {
    const location = header(response, 'location');
    if (location === undefined) throw new RegistryError(`${what}: the registry gave no upload location`);
    // `Range: 0-<last byte>`; distribution says `0-0` for an empty upload as well as for one byte. Chunks
    // are never one byte, so `0-0` is read as nothing received.
    const range = /^(?:bytes=)?0-(\d+)$/.exec(header(response, 'range') ?? '');
    const last = range ? Number(range[1]) : -1;
    const min = Number(header(response, 'oci-chunk-min-length'));
    return { location: new URL(location, this.base), offset: last > 0 ? last + 1 : 0, minChunk: Number.isSafeInteger(min) && min > 0 ? min : undefined };
  }

  /** Where an interrupted upload stands (`GET` on its location). */
  async uploadStatus(repository: string, session: UploadSession): Promise<UploadSession> {
    const what = `upload status in ${repository}`;
    const response = await this.call(what, [`repository:${repository}:pull,push`], () => ({ method: 'GET', url: session.location }));
    if (response.status !== 204) return this.fail(response, what);
    await response.dump();
    const next = this.#session(response, what);
    return { ...next, minChunk: next.minChunk ?? session.minChunk };
  }

  /**
   * Sends one chunk of `length` bytes (`PATCH` with `Content-Range`), streamed from `body` (called again should
   * the request need sending again after a challenge); not retried here (see `uploadStatus`).
   */
  async uploadChunk(repository: string, session: UploadSession, body: () => AsyncIterable<Uint8Array>, length: number): Promise<UploadSession> {
    const what = `upload chunk to ${repository}`;
    const end = session.offset + length - 1;
    const response = await this.call(
      what,
      [`repository:${repository}:pull,push`],
      () => ({ method: 'PATCH', url: session.location, headers: { 'content-type': 'application/octet-stream', 'content-range': `${session.offset}-${end}`, 'content-length': String(length) }, body: body() }),
      false,
    );
    await this.#expect(response, 202, what);
    await response.dump();
    const next = this.#session(response, what);
    return { ...next, offset: end + 1, minChunk: next.minChunk ?? session.minChunk };
  }

  /** Completes an upload as `digest` (`PUT ?digest=`), with the rest of the blob as its body when given. */
  async finishUpload(repository: string, session: UploadSession, digest: string, body?: () => AsyncIterable<Uint8Array>, size?: number): Promise<void> {
    const what = `upload of ${digest} to ${repository}`;
    const url = new URL(session.location);
    url.searchParams.set('digest', digest);
    const response = await this.call(
      what,
      [`repository:${repository}:pull,push`],
      () => ({ method: 'PUT', url, headers: { 'content-type': 'application/octet-stream', 'content-length': String(body ? size : 0) }, ...(body ? { body: body() } : {}) }),
      false,
    );
    await this.#expect(response, 201, what);
    await response.dump();
  }

  /** Puts a manifest or index under a tag or its digest; returns the digest the registry names it by. */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const what = `manifest ${repository}:${reference}`;
    const response = await this.call(what, [`repository:${repository}:pull,push`], () => ({
      method: 'PUT',
      url: this.#url(`/v2/${repository}/manifests/${reference}`),
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: bytes,
    }));
    if (response.status !== 201 && response.status !== 200) return this.fail(response, what);
    await response.dump();
    const digest = sha256(bytes);
    const claimed = header(response, 'docker-content-digest');
    if (claimed !== undefined && claimed !== digest) throw new RegistryError(`${what}: the registry stored it as ${sanitize(claimed)}, not ${digest}`);
    return digest;
  }

  /** Every tag of `repository`, page by page (`Link: <…>; rel="next"`). */
  async tags(repository: string): Promise<string[]> {
    const out: string[] = [];
    let url: URL | undefined = this.#url(`/v2/${repository}/tags/list?n=1000`);
    for (let page = 0; url !== undefined; page++) {
      if (page > 10_000) throw new RegistryError(`tags of ${repository}: more than 10,000 pages`);
      const current: URL = url;
      const response = await this.call(`tags of ${repository}`, [`repository:${repository}:pull`], () => ({ method: 'GET', url: current }));
      if (response.status !== 200) return this.fail(response, `tags of ${repository}`);
      const text = (await Transport.read(response, MAX_DOCUMENT_BYTES, `tags of ${repository}`)).toString('utf8');
      let body: { tags?: unknown };
      try {
        body = (JSON.parse(text) as { tags?: unknown } | null) ?? {};
      } catch {
        throw new RegistryError(`tags of ${repository}: the registry sent something that is not JSON`);
      }
      if (body.tags !== null && body.tags !== undefined && (!Array.isArray(body.tags) || body.tags.some((t) => typeof t !== 'string'))) {
        throw new RegistryError(`tags of ${repository}: the registry sent something that is not a list of tags`);
      }
      out.push(...((body.tags as string[] | null | undefined) ?? []));
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(response, 'link') ?? '');
      url = link ? new URL(link[1]!, current) : undefined;
      if (url !== undefined && url.origin !== this.base.origin) throw new RegistryError(`tags of ${repository}: the next page is on another host`);
    }
    return out;
  }
}
