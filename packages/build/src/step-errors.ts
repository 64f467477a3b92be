/**
 * A step's errors with its line in front: what its sources, its words and its downloads throw, keeping each
 * error's type so callers still tell one kind from another.
 */
import { atWordsLine, lineError, withPrefix, type Instruction } from './dockerfile.js';
import { SourceError } from './sources.js';

/** A download's typed error with the step's line in front (the same class, so callers still tell a 404 from a bad digest). */
export function withLine(step: Instruction, error: unknown): unknown {
  return withPrefix(`Dockerfile line ${step.line}: ${step.keyword} `, error);
}

/** `fn`'s result; a source's problem (SourceError) or a word it could not process (WordError) becomes the step's error, naming its line. */
export async function atLine<T>(step: Instruction, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof SourceError) throw lineError(step.line, `${step.keyword} ${error.message}`);
    throw atWordsLine(step, error);
  }
}
