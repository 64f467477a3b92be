/**
 * Turns of the event loop for strata's long loops (apply, the tar encoder behind pack and the diffs, digest).
 * They run on the thread of the process that embeds strata, in system calls and parsing that never wait on
 * the loop by themselves: each job gives way once it has run a slice (5 ms), and concurrent jobs wait in line,
 * one slice per turn of the loop, so timers and I/O wait about one slice however many jobs run.
 */

/** How long a job runs before it gives way: well under the 20 ms a UI or a transfer notices. */
const SLICE_MS = 5;

/**
 * The clock: `Date.now()`, as cheap as `performance.now()` per call (about 40 ns) without the global
 * `performance`, whose first touch loads perf_hooks and ten internal modules (0.7-1 ms of every command's
 * start). Milliseconds are fine grain for a 5 ms slice; a wall clock set back makes the elapsed time
 * negative, which ends the slice rather than stretching it.
 */
const now = Date.now;

let sliceStart = now();
const waiting: Array<() => void> = [];
let scheduled = false;

/** Gives the next job in line the slice starting now (one per loop turn: a setImmediate per job). */
function nextInLine(): void {
  sliceStart = now();
  const resume = waiting.shift();
  scheduled = waiting.length > 0;
  if (scheduled) setImmediate(nextInLine);
  resume?.();
}

/**
 * A promise when the caller has run its slice and should wait its turn; undefined (nearly every call)
 * otherwise. Costs a clock read.
 */
export function turn(): Promise<void> | undefined {
  const elapsed = now() - sliceStart;
  if (elapsed >= 0 && elapsed < SLICE_MS) return undefined;
  return new Promise((resolve) => {
    waiting.push(resolve);
    if (!scheduled) {
      scheduled = true;
      setImmediate(nextInLine);
    }
  });
}
