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

/** Set once the reader of stdout has gone (EPIPE): what is left to print is dropped. */
let stdoutGone = false;
/** Set once stdout turned out to be non-blocking: from then on everything goes through `process.stdout`, in order. */
let viaStream = false;

/**
 * Prints `text` on stdout, written at once. Not through `process.stdout`, whose first use loads Node's
 * streams (and for a pipe its net module): 4-8 ms of a command that prints one line (a digest of minbase,
 * 60 alternating runs, three times). A stdout left non-blocking by whoever opened it gets the stream after
 * all. A reader that went away (`strata ls layer | head`) ends the printing, not the command.
 */
export function print(text: string): void {
  if (stdoutGone || text === '') return;
  if (viaStream) {
    process.stdout.write(text);
    return;
  }
  const bytes = Buffer.from(text);
  let written = 0;
  try {
    while (written < bytes.length) written += writeSync(1, bytes, written);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') stdoutGone = true;
    else if (code === 'EAGAIN') {
      viaStream = true;
      process.stdout.write(bytes.subarray(written));
    } else throw error;
  }
}
