/**
 * Running buildah, and podman on a buildah store, from the tests and the benchmarks.
 *
 * buildah's re-exec of itself copies its binary to a sealed memfd, and the kernel refuses the seal with EBUSY
 * while a page of the copy is still pinned (CI saw it once in the bud corpus): a passing failure of buildah's
 * own, not of what the caller asked, so a command that failed with exactly that message runs again.
 */
import { execFileSync } from 'node:child_process';

const SEALING_BUSY = /sealing memfd copy: Device or resource busy/;

/** Runs of one command in all, the first included. */
export const BUILDAH_ATTEMPTS = 3;

/** True when `stderr` (of a failed buildah or podman command) says only that the memfd seal was refused. */
export function isSealingBusy(stderr: unknown): boolean {
  return SEALING_BUSY.test(String(stderr));
}

/**
 * `execFileSync(program, args)` for buildah or podman, its stdout as text (stderr kept for the error), run
 * again when it failed only to seal its memfd copy; every other failure is thrown at once.
 */
export function execBuildah(program: 'buildah' | 'podman', args: string[], env?: NodeJS.ProcessEnv): string {
  for (let attempt = 1; ; attempt++) {
    try {
      return execFileSync(program, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024, encoding: 'utf8', ...(env ? { env } : {}) });
    } catch (error) {
      if (attempt === BUILDAH_ATTEMPTS || !isSealingBusy((error as { stderr?: unknown }).stderr)) throw error;
    }
  }
}
