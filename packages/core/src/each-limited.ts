/**
 * Bounded concurrency for the packages above core: blob transfers, re-hashes, checksums of build sources.
 */

/**
 * Runs `work` on every item (with its index), at most `limit` at a time. The first failure stops new work
 * and is thrown once the work already started has settled, so nothing runs on after the call returns.
 */
export async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        await work(items[index]!, index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  });
  const results = await Promise.allSettled(runners);
  const failure = results.find((r) => r.status === 'rejected');
  if (failure) throw (failure as PromiseRejectedResult).reason;
}
