/** What the event loop saw while a job ran: shared by the event-loop benchmark and the tests of turns. */

/** The job's run, and the longest gap between ticks of a 1 ms interval beside it (milliseconds). */
export interface LoopWatch {
  longestGap: number;
  duration: number;
}

/** Runs `job` with a 1 ms interval ticking beside it. */
export async function watchLoop(job: () => Promise<unknown>): Promise<LoopWatch> {
  const started = performance.now();
  let last = started;
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  try {
    await job();
  } finally {
    clearInterval(timer);
  }
  const end = performance.now();
  return { longestGap: Math.max(longest, end - last), duration: end - started };
}
