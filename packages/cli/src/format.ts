/**
 * How the command reports failures: one line, `strata: <CODE>: <message>`, whatever threw it. Messages
 * are sanitised (a layer controls names, and a name may hold a newline or an escape sequence).
 */
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
