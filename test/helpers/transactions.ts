/**
 * Watching a root's committed states: `observe` runs after each outermost transaction of `metadata` commits
 * (or aborts), until the returned function restores the metadata's own `transaction`.
 */
import type { Metadata } from '@strata/snapshotter';

export function afterEachTransaction(metadata: Metadata, observe: () => void): () => void {
  const transaction = metadata.transaction.bind(metadata);
  let depth = 0;
  metadata.transaction = <T>(fn: () => T): T => {
    depth++;
    try {
      return transaction(fn);
    } finally {
      if (--depth === 0) observe();
    }
  };
  return () => {
    metadata.transaction = transaction;
  };
}
