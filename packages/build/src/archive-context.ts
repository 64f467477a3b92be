/**
 * A build context given as one file, what `docker build - < FILE` reads (or an http(s) URL, downloaded): a tar archive (plain, gzip, zstd,
 * bzip2 or xz) whose contents are the context, or else a Dockerfile with no context at all, as Docker tells
 * them apart. The archive is extracted as a layer is applied (nothing outside the directory it goes into,
 * the build's limits on what it inflates to), its `.dockerignore` applied; the Dockerfile is read from it
 * (`dockerfile` a path in it, `Dockerfile` by default), never through a symlink leading out. What was
 * extracted goes with the build, however it ends.
 */
import { closeSync, createReadStream, lstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyLayer, detectFileCompression, InvalidArgumentError, type ByteInput } from '@strata/core';
import type { Images } from '@strata/images';
import { download } from '@strata/registry';
import type { BuildOptions } from './builder.js';
import { FileChecksums } from './checksums.js';
import { dockerfileNames, withPrefix } from './dockerfile.js';
import { externalFormat, inflate } from './external-decompress.js';
import { redactUrls } from './remote.js';
import { ContextTree, readFirstTreeFile, readTreeFile, SourceError } from './sources.js';

/** What an archive context gives the build: the directory of its files, the Dockerfile's text, whether `.dockerignore` applies. */
export interface ArchiveContext {
  readonly dir: string;
  readonly dockerfileText: string;
  /** False for a Dockerfile given alone: its context is empty. */
  readonly archive: boolean;
}

/** The largest Dockerfile given alone (as `-f -` takes one). */
const MAX_DOCKERFILE = 16 * 1024 * 1024;

/** Whether `file` (its first bytes `head`) is a tar archive, compressed or not, as Docker tells one from a Dockerfile. */
function isArchive(file: string, head: Uint8Array): boolean {
  if (externalFormat(head) !== undefined || detectFileCompression(file) !== 'none') return true;
  return head.length >= 262 && Buffer.from(head.subarray(257, 262)).toString('latin1') === 'ustar';
}

/**
 * A context at an http(s) URL (`docker build https://host/ctx.tar.gz`, BuildKit's http context): downloaded
 * into the root's ingest directory (the build's byte limit on it; redirects, retries and a body cut short as
 * ADD's downloads meet them), then read as a context file is; the download goes with the build.
 */
export async function withUrlContext<T>(images: Images, options: BuildOptions, limits: { readonly maxEntries: number; readonly maxBytes: number }, build: (context: ArchiveContext) => Promise<T>): Promise<T> {
  const file = images.content.temporaryPath();
  try {
    try {
      await download(options.context, file, { maxBytes: limits.maxBytes, ...(options.signal ? { signal: options.signal } : {}) });
    } catch (error) {
      throw withPrefix(`the build context ${redactUrls(options.context)}: `, error);
    }
    return await withArchiveContext(images, options, file, limits, build);
  } finally {
    rmSync(file, { force: true });
  }
}

/** Reads the context in `file`, hands `build` its directory, then removes what it extracted. */
export async function withArchiveContext<T>(images: Images, options: BuildOptions, file: string, limits: { readonly maxEntries: number; readonly maxBytes: number }, build: (context: ArchiveContext) => Promise<T>): Promise<T> {
  const prefix = 'the build context: ';
  const head = Buffer.alloc(512);
  const fd = openSync(file, 'r');
  let length: number;
  try {
    length = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const scratch = images.content.temporaryPath();
  mkdirSync(scratch, { mode: 0o700 });
  try {
    const dir = join(scratch, 'context');
    let context: ArchiveContext;
    try {
      if (!isArchive(file, head.subarray(0, length))) {
        if (statSync(file).size > MAX_DOCKERFILE) throw new InvalidArgumentError(`neither a tar archive nor a Dockerfile (over ${MAX_DOCKERFILE / 1024 / 1024} MiB)`);
        mkdirSync(dir);
        context = { dir, dockerfileText: options.dockerfileText ?? readFileSync(file, 'utf8'), archive: false };
      } else {
        const format = externalFormat(head.subarray(0, length));
        const input: ByteInput = format ? inflate(format, createReadStream(file)) : file;
        // Device nodes are no context's: refused, never made in the root's ingest directory.
        await applyLayer(input, dir, { layout: 'plain', devices: 'refuse', maxEntries: limits.maxEntries, maxTotalBytes: limits.maxBytes });
        const tree = new ContextTree(dir, () => false, false, new FileChecksums(images.root.metadata));
        settleIgnoreFile(dir, await readTreeFile(tree, '.dockerignore'));
        const dockerfile = options.dockerfile ?? 'Dockerfile';
        const text = options.dockerfileText ?? (await readFirstTreeFile(tree, dockerfileNames(dockerfile)));
        if (text === undefined) throw new InvalidArgumentError(`no Dockerfile ${JSON.stringify(dockerfile)} in the archive`);
        context = { dir, dockerfileText: text, archive: true };
      }
    } catch (error) {
      throw error instanceof SourceError ? new InvalidArgumentError(`${prefix}${error.message}`) : withPrefix(prefix, error);
    }
    return await build(context);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * The archive's `.dockerignore` as a plain file holding what it resolved to inside the context (`text`), or
 * none: the build reads it by path, where a symlink would be followed out of the context and a FIFO would
 * never end.
 */
function settleIgnoreFile(dir: string, text: string | undefined): void {
  const path = join(dir, '.dockerignore');
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st === undefined || st.isFile()) return;
  rmSync(path, { recursive: true, force: true });
  if (text !== undefined) writeFileSync(path, text);
}
