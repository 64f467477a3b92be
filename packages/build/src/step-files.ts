/**
 * Files a COPY or ADD makes for itself before it is planned, and reads as sources beside the context's: ADD's
 * downloads (as BuildKit's frontend fetches a URL: named by its last path segment, mode 0600, at the
 * response's `Last-Modified` or the epoch, checked against `--checksum`) and here-documents (`COPY <<EOF`:
 * named by the heredoc, mode 0644, at the time they are written). They are kept in a directory of the
 * step's own, removed once the step is over.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { download } from '@strata/registry';
import type { PickedSource } from './copy.js';
import { urlFileName } from './remote.js';
import { readChunks, type SourceNode, type SourceTree } from './sources.js';

export interface FetchOptions {
  readonly maxBytes: number;
  /** `--checksum`: what the URL's bytes must hash to. */
  readonly digest?: string;
  readonly signal?: AbortSignal;
}

export class StepFiles implements SourceTree {
  readonly label = "the step's own files";
  readonly #dir = mkdtempSync(join(tmpdir(), 'strata-step-files-'));
  readonly #sums = new Map<string, string>();
  #count = 0;

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
    const fetched = await download(url, host, { maxBytes: options.maxBytes, ...(options.digest ? { digest: options.digest } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    const mtime = fetched.lastModified === undefined ? 0 : Math.floor(fetched.lastModified.getTime() / 1000);
    utimesSync(host, mtime, mtime);
    this.#sums.set(path, fetched.sha256.slice('sha256:'.length));
    const node: SourceNode = { path, type: 'file', mode: 0o600, uid: 0, gid: 0, size: fetched.size, mtime: { sec: mtime, nsec: 0 } };
    return { tree: this, node, name, lastModified: fetched.lastModified === undefined ? null : mtime };
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
