/** Reading what a command is given on standard input, and writing an archive to standard output. */
import { createWriteStream, type WriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { UsageError } from './format.js';

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
  if (process.stdin.isTTY) throw new UsageError(`${what} is read from a pipe, not a terminal`);
  await pipeline(process.stdin, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
}

/**
 * Stdout as a stream of its own on fd 1, for an archive `flag` sends there: refused for a terminal (`or`: what
 * else the user may do). Left open when done, and written from where it stands (an append redirect keeps
 * what it had).
 */
export function archiveToStdout(flag: string, or?: string): WriteStream {
  if (process.stdout.isTTY) throw new UsageError(`${flag}: an archive is not for a terminal; redirect stdout${or ? `, or ${or}` : ''}`);
  return createWriteStream('', { fd: 1, autoClose: false });
}
