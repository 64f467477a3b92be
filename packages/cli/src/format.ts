/**
 * How the command reports: results on stdout (`print`), a failure as one line, `strata: <CODE>: <message>`,
 * whatever threw it. Messages are sanitised (a layer controls names, and a name may hold a newline or an
 * escape sequence).
 */
import { writeSync } from 'node:fs';
import { isStrataError, sanitize } from '@strata/core';

export { sanitize };

/** The one line for an error: its code (strata's or Node's errno) once, then its message. */
export function formatError(error: unknown): string {
  if (!(error instanceof Error)) return `strata: ${sanitize(String(error))}`;
  const code = (error as { code?: unknown }).code;
  // strata's messages are one line; another library's may run on (a stack of requires): keep its first line.
  let message = isStrataError(error) ? error.message : error.message.split('\n')[0]!;
  // Node's errno messages already start with their code ("ENOENT: no such file or directory, open 'x'").
  if (typeof code === 'string' && message.startsWith(`${code}: `)) message = message.slice(code.length + 2);
  return `strata: ${typeof code === 'string' ? `${code}: ` : ''}${sanitize(message)}`;
}

/** A usage mistake the parser could not see: exit 2, like the parser's own. */
export class UsageError extends Error {}

/** Where the command's output goes: stdout (1) or stderr (2), and how far writing to it has got. */
interface Sink {
  readonly fd: 1 | 2;
  /** Set once its reader has gone (EPIPE): what is left to write is dropped. */
  gone: boolean;
  /** Set once the descriptor turned out to be non-blocking: from then on everything goes through Node's stream, in order. */
  viaStream: boolean;
}

const stdout: Sink = { fd: 1, gone: false, viaStream: false };
const stderr: Sink = { fd: 2, gone: false, viaStream: false };

/**
 * Writes `text` to a sink at once. Not through `process.stdout` or `process.stderr`, whose first use loads
 * Node's streams (and for a pipe its net module): 4-8 ms of a command that prints one line (a digest of
 * minbase, 60 alternating runs, three times). A descriptor left non-blocking by whoever opened it gets the
 * stream after all. A reader that went away (`strata ls layer | head`) ends the writing, not the command.
 */
function write(sink: Sink, text: string): void {
  if (sink.gone || text === '') return;
  const stream = () => (sink.fd === 1 ? process.stdout : process.stderr);
  if (sink.viaStream) {
    stream().write(text);
    return;
  }
  const bytes = Buffer.from(text);
  let written = 0;
  try {
    while (written < bytes.length) written += writeSync(sink.fd, bytes, written);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') sink.gone = true;
    else if (code === 'EAGAIN') {
      sink.viaStream = true;
      stream().write(bytes.subarray(written));
    } else throw error;
  }
}

/** Prints `text` on stdout. */
export function print(text: string): void {
  write(stdout, text);
}

/** Writes `text` on stderr: warnings, errors, a layer's descriptor when the layer goes to stdout. */
export function printError(text: string): void {
  write(stderr, text);
}

/**
 * Whether some output went through Node's streams, which write what they hold on later turns of the event
 * loop: until the loop has let them, the process must not be ended.
 */
export function outputPending(): boolean {
  return stdout.viaStream || stderr.viaStream;
}
