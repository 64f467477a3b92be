/**
 * A compressed layer tarball, or one read from a pipe, made readable by offset: decompressed (gzip or zstd
 * have no random access) or copied into an unnamed temporary file, byte for byte. The file is unlinked as
 * soon as it is open, so nothing is left behind however the process ends; it is read through its
 * descriptor's path under /proc/self/fd, which opens the same file.
 */
import { closeSync, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LimitExceededError, UnsupportedError } from '../errors.js';
import { decodeInput } from '../blob/decode.js';
import { turn } from '../turns.js';
import { writeAll } from '../host/write-all.js';

/** A plain tarball in an unnamed file: `path` opens it until `close` is called. */
export interface LayerSpool {
  readonly path: string;
  close(): void;
}

/** An unnamed file open for reading and writing in `dir`, and the path that reopens it. */
function unnamedFile(dir: string): { fd: number; path: string } {
  const made = mkdtempSync(join(dir, 'strata-layer-'));
  let fd: number;
  try {
    fd = openSync(join(made, 'layer.tar'), 'wx+', 0o600);
  } finally {
    rmSync(made, { recursive: true, force: true });
  }
  const path = `/proc/self/fd/${fd}`;
  if (!existsSync(path)) {
    closeSync(fd);
    throw new UnsupportedError('reading a compressed layer tarball as a tree needs /proc mounted');
  }
  return { fd, path };
}

/**
 * The layer at `source` decompressed into an unnamed file in `dir` (default: the OS's temporary directory),
 * of at most `maxBytes` (a compression bomb stops there, not at a full disk). Throws LAYER_FORMAT for a
 * corrupt compressed stream, UNSUPPORTED for xz and bzip2, LIMIT_EXCEEDED past `maxBytes`; on any failure
 * the file is gone.
 */
export async function spoolLayer(source: string, maxBytes: number, dir = tmpdir()): Promise<LayerSpool> {
  const { fd, path } = unnamedFile(dir);
  try {
    const decoded = await decodeInput(source, { hash: false });
    let written = 0;
    try {
      for await (const chunk of decoded.stream) {
        written += chunk.length;
        if (written > maxBytes) throw new LimitExceededError(`${source}: decompressed, the tarball is over ${maxBytes} bytes (the limits of what it may hold)`);
        writeAll(fd, chunk);
        const wait = turn();
        if (wait) await wait;
      }
    } catch (error) {
      await decoded.abort();
      throw error;
    }
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  let open = true;
  return {
    path,
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}
