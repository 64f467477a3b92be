/** Reading what a command is given on standard input, and writing an archive to standard output. */
import { closeSync, createWriteStream, fstatSync, openSync, readFileSync, readSync, type WriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { isatty } from 'node:tty';
import { writeAll } from '@strata/core';
import { UsageError } from './format.js';

/**
 * Stdin as a path, when it is a pipe or a file not yet read from: read through it as a file is (plain reads
 * on this thread; a layer file by offset, its size known), where `process.stdin`'s stream takes a fresh
 * buffer for each 64 KiB: minbase's layer piped into `strata apply -` took 0.9 s that way. Undefined for
 * anything else (a socket, a terminal, a file partly read, no /proc): the stream then.
 */
export function stdinPath(): string | undefined {
  try {
    const stat = fstatSync(0);
    if (!stat.isFIFO() && !stat.isFile()) return undefined;
    // A file is reopened from its start: only where that is where stdin stands.
    const info = readFileSync('/proc/self/fdinfo/0', 'latin1');
    return stat.isFIFO() || /^pos:\s+0$/m.test(info) ? '/proc/self/fd/0' : undefined;
  } catch {
    return undefined;
  }
}

/** All of stdin as text, for `what` (named in the errors): refused from a terminal and over `limit` bytes. */
export async function readStdin(what: string, limit: number): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError(`${what} is read from a pipe, not a terminal`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new UsageError(`${what} on stdin is over ${limit / 1024} KiB`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Stdin written to a new file at `path` (mode 0600), for `what` (named in the errors): refused from a
 * terminal. A build context can be large: it streams, and never sits in memory whole.
 */
export async function spoolStdin(what: string, path: string): Promise<void> {
  const source = stdinPath();
  if (source === undefined) {
    if (process.stdin.isTTY) throw new UsageError(`${what} is read from a pipe, not a terminal`);
    await pipeline(process.stdin, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
    return;
  }
  // A pipe or a file, copied by plain reads and writes through one buffer (see `stdinPath`).
  const input = openSync(source, 'r');
  try {
    const output = openSync(path, 'wx', 0o600);
    try {
      const buffer = Buffer.allocUnsafe(1024 * 1024);
      for (let n; (n = readSync(input, buffer, 0, buffer.length, null)) > 0; ) writeAll(output, buffer.subarray(0, n));
    } finally {
      closeSync(output);
    }
  } finally {
    closeSync(input);
  }
}

/**
 * Stdout as a stream of its own on fd 1, for an archive `flag` sends there: refused for a terminal (`or`: what
 * else the user may do). Left open when done, and written from where it stands (an append redirect keeps
 * what it had). The terminal is told by `isatty`, not `process.stdout`, whose making sets a pipe on fd 1
 * non-blocking: this stream's writes then came back empty (EAGAIN) whenever the reader fell behind, and
 * `export -o - | cat > file` failed ("write failed") a few MB in.
 */
export function archiveToStdout(flag: string, or?: string): WriteStream {
  if (isatty(1)) throw new UsageError(`${flag}: an archive is not for a terminal; redirect stdout${or ? `, or ${or}` : ''}`);
  return createWriteStream('', { fd: 1, autoClose: false });
}
