/**
 * A plain HTTP(S) download into a file (what a Dockerfile's `ADD <url>` fetches), over the registries'
 * transport: redirects never carry credentials to another origin nor go from https to http, silence times
 * out, and transient failures are tried again from the first byte. The body is hashed as it is written; a
 * body over the limit, shorter than its Content-Length, or not hashing to the digest it was promised fails,
 * and the file is removed: nothing half-fetched is left looking complete.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, rmSync } from 'node:fs';
import { DigestMismatchError, InvalidArgumentError, LimitExceededError, NotFoundError, PermissionDeniedError, UnauthenticatedError, UnavailableError, writeAll } from '@strata/core';
import { header, retriableStatus, retryAfterMs, Transport, TransientStatus, withRetries, type RetryEvent, type TransportOptions } from './transport.js';

export interface DownloadOptions extends TransportOptions {
  /** Most bytes the body may have (LIMIT_EXCEEDED past it). */
  readonly maxBytes?: number;
  /** `sha256:…`, `sha384:…` or `sha512:…`: what the bytes must hash to (DIGEST_MISMATCH otherwise). */
  readonly digest?: string;
  readonly signal?: AbortSignal;
  readonly onRetry?: (event: RetryEvent) => void;
  /**
   * What an earlier response said of the same URL: asked with `If-None-Match` (or `If-Modified-Since`
   * without an ETag), and an answer of 304 leaves nothing fetched (`notModified`).
   */
  readonly validators?: Validators;
}

/** A response's `ETag` and `Last-Modified`, as sent (what a later request can be conditional on). */
export interface Validators {
  readonly etag?: string;
  readonly lastModified?: string;
}

export interface Download {
  readonly size: number;
  /** `sha256:<hex>` of the bytes. */
  readonly sha256: string;
  /** The response's `Last-Modified`; undefined when it sent none or one that is not a date. */
  readonly lastModified?: Date;
  /** The response's validators, for a conditional request next time. */
  readonly validators: Validators;
}

const DIGEST = /^(sha256|sha384|sha512):([0-9a-f]+)$/;
const HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

/** Checks a digest a download is promised (INVALID_ARGUMENT when it is not one `download` can verify). */
export function parseDownloadDigest(digest: string): { algorithm: string; hex: string } {
  const match = DIGEST.exec(digest);
  if (match === null || match[2]!.length !== HEX_LENGTH[match[1]!]) throw new InvalidArgumentError(`${JSON.stringify(digest)} is not a sha256, sha384 or sha512 digest (algorithm:hex)`);
  return { algorithm: match[1]!, hex: match[2]! };
}

/** A URL as messages and histories may show it: a password in it replaced, as BuildKit does. */
export function redactUrl(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return String(url);
  }
  if (parsed.password === '') return parsed.href;
  parsed.password = 'xxxxx';
  return parsed.href;
}

/** The body cut short: another try may get all of it. */
class ShortBody extends Error {
  readonly code = 'ERR_STREAM_PREMATURE_CLOSE';
}

/**
 * Fetches `url` into `file` (created or truncated, mode 0600); `{ notModified: true }`, with no file, when
 * `validators` were given and the server answered 304.
 */
export async function download(url: string | URL, file: string, options: DownloadOptions = {}): Promise<Download | { readonly notModified: true }> {
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new InvalidArgumentError(`${redactUrl(target)} is not an http or https URL`);
  const shown = redactUrl(target);
  const promised = options.digest === undefined ? undefined : parseDownloadDigest(options.digest);
  const maxBytes = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
  const transport = new Transport(options);
  const fd = openSync(file, 'w', 0o600);
  let done = false;
  try {
    const { signal } = options;
    const fetched = await withRetries(
      transport.options,
      `GET ${shown}`,
      async () => {
        const known = options.validators;
        const conditional = known?.etag !== undefined ? { 'if-none-match': known.etag } : known?.lastModified !== undefined ? { 'if-modified-since': known.lastModified } : {};
        const response = await transport.send({ method: 'GET', url: target, headers: { 'user-agent': 'strata', ...conditional }, ...(signal ? { signal } : {}) });
        if (response.status === 304 && known !== undefined) {
          await response.dump();
          return undefined;
        }
        if (retriableStatus(response.status)) {
          const wait = retryAfterMs(response);
          await response.dump();
          throw new TransientStatus(response.status, wait);
        }
        if (response.status < 200 || response.status > 299 || response.status === 206) {
          await response.dump();
          throw statusError(response.status, shown);
        }
        const length = Number(header(response, 'content-length') ?? NaN);
        if (Number.isFinite(length) && length > maxBytes) {
          response.body.destroy();
          throw new LimitExceededError(`${shown} is ${length} bytes, over the limit of ${maxBytes}`);
        }
        // Each try starts the file and the hashes again.
        ftruncateSync(fd, 0);
        const sha256 = createHash('sha256');
        const check: Hash | undefined = promised && promised.algorithm !== 'sha256' ? createHash(promised.algorithm) : undefined;
        let size = 0;
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > maxBytes) {
            response.body.destroy();
            throw new LimitExceededError(`${shown} is over the limit of ${maxBytes} bytes`);
          }
          sha256.update(chunk);
          check?.update(chunk);
          writeAll(fd, chunk, size - chunk.length);
        }
        if (Number.isFinite(length) && size !== length) throw new ShortBody(`${shown} sent ${size} of the ${length} bytes it announced`);
        const modified = header(response, 'last-modified');
        const etag = header(response, 'etag');
        const lastModified = modified === undefined ? undefined : new Date(modified);
        const validators: Validators = { ...(etag !== undefined ? { etag } : {}), ...(modified !== undefined ? { lastModified: modified } : {}) };
        return { size, sha256: sha256.digest('hex'), checked: check?.digest('hex'), validators, ...(lastModified && !Number.isNaN(lastModified.getTime()) ? { lastModified } : {}) };
      },
      { ...(signal ? { signal } : {}), ...(options.onRetry ? { onRetry: options.onRetry } : {}) },
    );
    if (fetched === undefined) return { notModified: true }; // the file goes below, with nothing in it
    if (promised !== undefined) {
      const got = promised.algorithm === 'sha256' ? fetched.sha256 : fetched.checked!;
      if (got !== promised.hex) throw new DigestMismatchError(`${shown} hashes to ${promised.algorithm}:${got}, not ${options.digest}`);
    }
    done = true;
    return { size: fetched.size, sha256: `sha256:${fetched.sha256}`, validators: fetched.validators, ...(fetched.lastModified ? { lastModified: fetched.lastModified } : {}) };
  } finally {
    closeSync(fd);
    await transport.close();
    if (!done) rmSync(file, { force: true });
  }
}

/** A final status as the error it is. */
function statusError(status: number, shown: string): Error {
  const message = `GET ${shown} answered HTTP ${status}`;
  if (status === 401) return new UnauthenticatedError(message);
  if (status === 403) return new PermissionDeniedError(message);
  if (status === 404 || status === 410) return new NotFoundError(message);
  return new UnavailableError(message);
}
