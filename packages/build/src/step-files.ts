/**
 * Files a COPY or ADD makes for itself before it is planned, and reads as sources beside the context's: ADD's
 * downloads (as BuildKit's frontend fetches a URL: named by its last path segment, mode 0600, at the
 * response's `Last-Modified` or the epoch, checked against `--checksum`) and here-documents (`COPY <<EOF`:
 * named by the heredoc, mode 0644, at the time they are written). They are kept in a directory of the
 * step's own in the root's file system (a temporary path of its content store, which collection removes
 * if the process dies first), removed once the step is over. A URL whose server says it has not changed since a record of
 * it was made is not fetched: the record stands for its bytes in the step's key, and `materialize` fetches
 * them only if the step has to run.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DigestMismatchError } from '@strata/core';
import { download, redactUrl } from '@strata/registry';
import type { PickedSource } from './copy.js';
import { urlFileName } from './remote.js';
import { readChunks, type SourceNode, type SourceTree } from './sources.js';
import type { UrlRecord, UrlRecords } from './url-records.js';

export interface FetchOptions {
  readonly maxBytes: number;
  /** `--checksum`: what the URL's bytes must hash to. */
  readonly digest?: string;
  readonly signal?: AbortSignal;
  /** The bytes are read when the step is planned (`ADD --unpack` looks for an archive): always fetched. */
  readonly needBytes?: boolean;
}

export class StepFiles implements SourceTree {
  readonly label = "the step's own files";
  readonly #dir: string;
  readonly #sums = new Map<string, string>();
  /** Files a record stands for, by path: fetched by `materialize`. */
  readonly #unfetched = new Map<string, { readonly source: string; readonly record: UrlRecord; readonly options: FetchOptions }>();
  #count = 0;

  /** `dir`: a path that does not exist yet (made here, mode 0700). */
  constructor(dir: string, readonly records?: UrlRecords) {
    mkdirSync(dir, { mode: 0o700 });
    this.#dir = dir;
  }

  /** A new file's path in the tree: a directory each, as two sources may have one name. */
  #place(name: string): { path: string; host: string } {
    const dir = String(this.#count++);
    mkdirSync(join(this.#dir, dir));
    const path = `${dir}/${name}`;
    return { path, host: join(this.#dir, path) };
  }

  /**
   * Fetches `source` (an http or https URL); with the response's `Last-Modified` in seconds, or null (part
   * of the step's key, as in BuildKit's). Errors are the download's: typed, the file gone.
   */
  async fetch(source: string, options: FetchOptions): Promise<PickedSource & { readonly lastModified: number | null }> {
    const url = new URL(source);
    const name = urlFileName(url);
    const { path, host } = this.#place(name);
    // With --checksum the digest is checked on the bytes, so they are always fetched.
    const known = options.digest === undefined && !options.needBytes ? this.records?.get(source) : undefined;
    const fetched = await download(url, host, { maxBytes: options.maxBytes, ...(options.digest ? { digest: options.digest } : {}), ...(options.signal ? { signal: options.signal } : {}), ...(known ? { validators: known.validators } : {}) });
    let record: UrlRecord;
    if ('notModified' in fetched) {
      record = known!;
      this.#unfetched.set(path, { source, record, options });
    } else {
      const lastModified = fetched.lastModified === undefined ? null : Math.floor(fetched.lastModified.getTime() / 1000);
      record = { validators: fetched.validators, sha256: fetched.sha256.slice('sha256:'.length), size: fetched.size, lastModified };
      this.records?.set(source, record);
      utimesSync(host, lastModified ?? 0, lastModified ?? 0);
    }
    this.#sums.set(path, record.sha256);
    const mtime = record.lastModified ?? 0;
    const node: SourceNode = { path, type: 'file', mode: 0o600, uid: 0, gid: 0, size: record.size, mtime: { sec: mtime, nsec: 0 } };
    return { tree: this, node, name, lastModified: record.lastModified };
  }

  /** Whether some file is only a record yet (its server said it had not changed). */
  get unfetched(): boolean {
    return this.#unfetched.size > 0;
  }

  /**
   * Fetches the files records stood for, for a step that has to run. Bytes other than the record's (the
   * server changed them after saying it had not) are DIGEST_MISMATCH: the step's key was made from the record.
   */
  async materialize(): Promise<void> {
    for (const [path, { source, record, options }] of this.#unfetched) {
      const host = join(this.#dir, path);
      const fetched = await download(source, host, { maxBytes: options.maxBytes, ...(options.signal ? { signal: options.signal } : {}) });
      // (No validators were sent, so the answer is bytes.)
      if ('notModified' in fetched || fetched.sha256 !== `sha256:${record.sha256}`) {
        rmSync(host, { force: true });
        throw new DigestMismatchError(`${redactUrl(source)} changed while the build ran (its server had said it had not): build again`);
      }
      utimesSync(host, record.lastModified ?? 0, record.lastModified ?? 0);
      this.#unfetched.delete(path);
    }
  }

  /** A here-document's file: `content` under `name`, mode 0644, at the present time. */
  write(name: string, content: string): PickedSource {
    const { path, host } = this.#place(name);
    const bytes = Buffer.from(content);
    writeFileSync(host, bytes, { mode: 0o644, flag: 'wx' });
    this.#sums.set(path, createHash('sha256').update(bytes).digest('hex'));
    const now = Date.now();
    const node: SourceNode = { path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: bytes.length, mtime: { sec: Math.floor(now / 1000), nsec: (now % 1000) * 1_000_000 } };
    utimesSync(host, now / 1000, now / 1000);
    return { tree: this, node, name };
  }

  // These files are selected as they are, never by pattern or below a directory.
  async match(): Promise<string[]> {
    return [];
  }

  async resolve(): Promise<SourceNode | undefined> {
    return undefined;
  }

  async children(): Promise<SourceNode[]> {
    return [];
  }

  read(node: SourceNode): AsyncIterable<Uint8Array> {
    return readChunks(join(this.#dir, node.path), node.size);
  }

  async checksum(node: SourceNode): Promise<string> {
    return this.#sums.get(node.path)!;
  }

  /** Removes the files. */
  dispose(): void {
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
