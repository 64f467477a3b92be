/**
 * ADD's URL sources, as BuildKit's Dockerfile frontend reads them: an http or https URL is fetched (never
 * extracted, whatever it holds) into a file named by the URL's last path segment, mode 0600, its time the
 * response's `Last-Modified` (the epoch without one), checked against `--checksum` when given. The files are
 * kept in a directory of their own until the step is over, and COPY's selection reads them as a tree.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { download } from '@strata/registry';
import { readChunks, type SourceNode, type SourceTree } from './sources.js';

/**
 * Whether an ADD source is a URL strata fetches: http or https, but not a repository's (a path ending in
 * `.git`), which BuildKit clones instead.
 */
export function isUrlSource(source: string): boolean {
  return /^https?:\/\//i.test(source) && !/\.git\/?$/i.test(source.replace(/[?#].*$/s, ''));
}

/** Whether a source names something remote at all (a URL of any scheme, or a git remote). */
export function isRemoteSource(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source) || source.startsWith('git@');
}

/** Text with the password of every URL in it replaced (a step's progress line, its history). */
export function redactUrls(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^@\s/]*@/gi, '$1xxxxx@');
}

/**
 * The name a download takes: the URL path's last segment, decoded, as BuildKit's frontend names it, or
 * `__unnamed__` where the path has none (or one that could not be a file's name).
 */
export function urlFileName(url: URL): string {
  let base = posix.basename(url.pathname);
  try {
    base = decodeURIComponent(base);
  } catch {
    // not percent-encoding: the segment as written
  }
  // eslint-disable-next-line no-control-regex
  if (base === '' || base === '.' || base === '..' || base.includes('/') || /[\x00-\x1f\x7f]/.test(base)) return '__unnamed__';
  return base;
}

/** One fetched URL as a COPY source. */
export interface FetchedSource {
  readonly tree: SourceTree;
  readonly node: SourceNode;
  readonly name: string;
  /** The response's `Last-Modified` in seconds, or null (part of the step's key, as in BuildKit's). */
  readonly lastModified: number | null;
}

export interface FetchOptions {
  readonly maxBytes: number;
  /** `--checksum`: what every URL of the step must hash to. */
  readonly digest?: string;
  readonly signal?: AbortSignal;
}

/** The files a step fetched, in a directory of their own until `dispose`. */
export class Downloads implements SourceTree {
  readonly label = 'the downloads';
  readonly #dir = mkdtempSync(join(tmpdir(), 'strata-add-url-'));
  readonly #sums = new Map<string, string>();
  #count = 0;

  /** Fetches `source` (an http or https URL). Errors are the download's: typed, the file gone. */
  async fetch(source: string, options: FetchOptions): Promise<FetchedSource> {
    const url = new URL(source);
    const name = urlFileName(url);
    // A directory per URL: two URLs may end in the same name.
    const path = `${this.#count++}/${name}`;
    mkdirSync(join(this.#dir, posix.dirname(path)));
    const host = join(this.#dir, path);
    const fetched = await download(url, host, { maxBytes: options.maxBytes, ...(options.digest ? { digest: options.digest } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    const mtime = fetched.lastModified === undefined ? 0 : Math.floor(fetched.lastModified.getTime() / 1000);
    utimesSync(host, mtime, mtime);
    this.#sums.set(path, fetched.sha256.slice('sha256:'.length));
    const node: SourceNode = { path, type: 'file', mode: 0o600, uid: 0, gid: 0, size: fetched.size, mtime: { sec: mtime, nsec: 0 } };
    return { tree: this, node, name, lastModified: fetched.lastModified === undefined ? null : mtime };
  }

  // A download is selected as it is, never by pattern or below a directory.
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

  /** Removes what was fetched. */
  dispose(): void {
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
