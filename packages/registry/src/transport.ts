/**
 * HTTP for registries, over Node's own http and https clients (keep-alive agents; their parser is native,
 * so a CLI run neither loads nor compiles a client library): one request at a time through redirects, and
 * the retry policy the operations above apply.
 *
 * Redirects are followed here, by hand: a registry sends blob GETs to storage on another host (S3, a CDN), and
 * the registry's `Authorization` must never go with them (the class of CVE-2020-15157). A redirect to another
 * origin drops it; a redirect from https to http is refused.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { finished } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { LimitExceededError, RegistryError, UnavailableError, quote } from '@strata/core';

/** How hard to try. */
export interface RetryPolicy {
  /** Tries in all, the first included (default 5). */
  readonly attempts?: number;
  /** The first pause between tries; each doubles it, with jitter (default 250 ms). */
  readonly backoffMs?: number;
  /** The longest pause, `Retry-After` included (default 30 s). */
  readonly maxBackoffMs?: number;
}

export interface TransportOptions extends RetryPolicy {
  /** Longest silence from the registry: connecting, waiting for a response, or between pieces of its body (default 30 s). */
  readonly timeoutMs?: number;
  /** PEM certificates to trust besides the system's (a private registry's CA). */
  readonly caFile?: string;
  /** Most connections per registry host (default 8). */
  readonly connections?: number;
}

export interface HttpRequest {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * What to send. Chunks of an iterable are each written to the connection before the next is asked for,
   * so its source may fill the same buffer again (see `readChunks`).
   */
  readonly body?: Buffer | AsyncIterable<Uint8Array>;
  readonly signal?: AbortSignal;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The body as it streams in; consume it, `dump` it or destroy it. */
  readonly body: IncomingMessage;
  /** Where the response came from, after redirects. */
  readonly url: URL;
  /** Reads and drops a (small) body so the connection can serve the next request; a large one closes it. */
  dump(): Promise<void>;
}

/** One header's value (the first, when repeated). */
export function header(response: HttpResponse, name: string): string | undefined {
  const value = response.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

const MAX_REDIRECTS = 5;
/** Past this many bytes a body being dropped is not worth reading: its connection goes instead. */
const DUMP_LIMIT = 256 * 1024;

/** The registry went silent for longer than the timeout. */
class TimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
}

export class Transport {
  readonly #http: HttpAgent;
  readonly #https: HttpsAgent;
  readonly options: Required<Omit<TransportOptions, 'caFile'>>;

  constructor(options: TransportOptions = {}) {
    this.options = {
      attempts: options.attempts ?? 5,
      backoffMs: options.backoffMs ?? 250,
      maxBackoffMs: options.maxBackoffMs ?? 30_000,
      timeoutMs: options.timeoutMs ?? 30_000,
      connections: options.connections ?? 8,
    };
    const pool = { keepAlive: true, maxSockets: this.options.connections, scheduling: 'lifo' as const };
    this.#http = new HttpAgent(pool);
    // A CA file adds to the system's roots (Node's `ca` would replace them).
    const ca = options.caFile === undefined ? undefined : [...rootCertificates, readFileSync(options.caFile, 'utf8')];
    this.#https = new HttpsAgent({ ...pool, ...(ca ? { ca } : {}) });
  }

  /**
   * Sends `req`, following redirects (without the credentials across origins). The caller consumes or
   * dumps the body. Network failures come back as errors (see `retriable`), never as responses.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    let url = req.url;
    let headers = { ...(req.headers ?? {}) };
    for (let hop = 0; ; hop++) {
      const response = await this.#once(req, url, headers);
      const location = response.headers.location;
      if (![301, 302, 303, 307, 308].includes(response.status) || location === undefined) return response;
      await response.dump();
      if (hop >= MAX_REDIRECTS) throw new RegistryError(`more than ${MAX_REDIRECTS} redirects from ${quote(req.url.origin)}`);
      if (req.body !== undefined && !Buffer.isBuffer(req.body)) throw new RegistryError(`${quote(url.origin)} redirected an upload, which cannot be sent again`);
      const next = new URL(location, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new RegistryError(`redirect to ${quote(next.protocol)}, which is not HTTP`);
      if (url.protocol === 'https:' && next.protocol === 'http:') throw new RegistryError(`redirect from https to plain http (${quote(next.origin)}) refused`);
      if (next.origin !== url.origin) {
        // Another host: the registry's credentials stay behind (a signed URL carries its own).
        const { authorization: _dropped, Authorization: _Dropped, ...rest } = headers as Record<string, string>;
        headers = rest;
      }
      url = next;
    }
  }

  /** One request, its response once the headers are in. Silence past the timeout fails it (ETIMEDOUT). */
  #once(req: HttpRequest, url: URL, headers: Record<string, string>): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const secure = url.protocol === 'https:';
      const send = secure ? httpsRequest : httpRequest;
      let response: IncomingMessage | undefined;
      const request = send(url, { method: req.method, headers, agent: secure ? this.#https : this.#http, timeout: this.options.timeoutMs, ...(req.signal ? { signal: req.signal } : {}) }, (res) => {
        response = res;
        res.on('error', () => {}); // a body nobody reads may fail: its reader, if any, sees the error
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url, dump: () => dump(res) });
      });
      request.on('timeout', () => {
        const error = new TimeoutError(`${url.origin} sent nothing for ${this.options.timeoutMs} ms`);
        response?.destroy(error);
        request.destroy(error);
      });
      request.on('error', reject);
      if (req.body === undefined) request.end();
      else if (Buffer.isBuffer(req.body)) request.end(req.body);
      else sendBody(request, req.body).catch((error: unknown) => request.destroy(error as Error));
    });
  }

  /** Reads a body whole, refusing one over `limit` bytes without buffering it (LIMIT_EXCEEDED). */
  static async read(response: HttpResponse, limit: number, what: string): Promise<Buffer> {
    const length = Number(header(response, 'content-length'));
    if (Number.isFinite(length) && length > limit) {
      response.body.destroy();
      throw new LimitExceededError(`${what} is ${length} bytes, over the ${limit}-byte limit`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        response.body.destroy();
        throw new LimitExceededError(`${what} is over the ${limit}-byte limit`);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    this.#http.destroy();
    this.#https.destroy();
  }
}

/**
 * Writes `body` into `request` a chunk at a time, each once the last is in the connection (its write
 * called back), then ends it. Stops when the request closes first (an answer before the whole body, an
 * error, a timeout): the source is then returned, which closes what it read from.
 */
async function sendBody(request: ClientRequest, body: AsyncIterable<Uint8Array>): Promise<void> {
  let closed = false;
  const close = new Promise<void>((resolve) =>
    request.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  for await (const chunk of body) {
    if (closed) return;
    await Promise.race([new Promise<void>((resolve, reject) => request.write(chunk, (error) => (error ? reject(error) : resolve()))), close]);
    if (closed) return;
  }
  request.end();
}

/** Drops a body: read when small (its connection is kept), else destroyed. Never fails. */
function dump(body: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    body.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > DUMP_LIMIT) body.destroy();
    });
    finished(body, () => resolve());
    body.resume();
  });
}

/** Statuses worth trying again: the registry, or something in front of it, will likely answer later. */
export function retriableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

const RETRIABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** Whether a thrown error is the network's (worth a retry) rather than ours or the caller's (an abort). */
export function retriable(error: unknown): boolean {
  if ((error as { name?: string } | undefined)?.name === 'AbortError') return false;
  const code = (error as { code?: string } | undefined)?.code;
  if (code !== undefined && RETRIABLE_CODES.has(code)) return true;
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  return cause !== undefined && cause !== error && retriable(cause);
}

/** The pause `Retry-After` asks for (seconds or an HTTP date), in ms. */
export function retryAfterMs(response: HttpResponse | undefined): number | undefined {
  const value = response === undefined ? undefined : header(response, 'retry-after');
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Waits `ms`, or until `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The pause before try `attempt` (2, 3, …): exponential with full jitter, or what the registry asked for. */
export function backoff(policy: Required<RetryPolicy>, attempt: number, asked: number | undefined): number {
  if (asked !== undefined) return Math.min(asked, policy.maxBackoffMs);
  const ceiling = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** (attempt - 2));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** What a retry loop reports (for progress and tests). */
export interface RetryEvent {
  readonly attempt: number;
  readonly reason: string;
  readonly waitMs: number;
}

/**
 * Runs `attempt` until it returns, retrying what `retriable`/`retriableStatus` call transient, with backoff.
 * `attempt` signals a transient status by throwing `TransientStatus`. After the last try: UNAVAILABLE.
 */
export async function withRetries<T>(
  policy: Required<RetryPolicy>,
  what: string,
  attempt: (n: number) => Promise<T>,
  options: { signal?: AbortSignal; onRetry?: (event: RetryEvent) => void } = {},
): Promise<T> {
  let last: unknown;
  for (let n = 1; n <= policy.attempts; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      options.signal?.throwIfAborted();
      const transient = error instanceof TransientStatus || retriable(error);
      if (!transient) throw error;
      last = error;
      if (n === policy.attempts) break;
      const wait = backoff(policy, n + 1, error instanceof TransientStatus ? error.retryAfterMs : undefined);
      options.onRetry?.({ attempt: n + 1, reason: describe(error), waitMs: wait });
      await sleep(wait, options.signal);
    }
  }
  throw new UnavailableError(`${what}: gave up after ${policy.attempts} tries (${describe(last)})`, { cause: last });
}

/** A transient HTTP status, thrown inside `withRetries` to ask for another try. */
export class TransientStatus extends Error {
  constructor(
    readonly status: number,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status}`);
  }
}

function describe(error: unknown): string {
  if (error instanceof TransientStatus) return error.message;
  const code = (error as { code?: string } | undefined)?.code;
  const message = (error as Error | undefined)?.message ?? String(error);
  return code !== undefined && !message.startsWith(code) ? `${code}: ${message}` : message;
}
