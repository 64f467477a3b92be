/**
 * The tests' and benchmarks' way of running buildah: a command that failed only because buildah could not
 * seal its memfd copy runs again, and nothing else does. Checked with a stand-in `buildah` on PATH that
 * fails as told a number of times, counting its runs.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILDAH_ATTEMPTS, execBuildah } from './helpers/buildah-run.js';

const SEALING = 'Error: buildah refused it: Close_Fd sealing memfd copy: Device or resource busy';

describe('execBuildah', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'strata-buildah-run-'));
    // Fails with $FAIL_WITH on its first $FAILURES runs, then prints its arguments.
    writeFileSync(
      join(dir, 'buildah'),
      `#!/bin/sh
n=$(($(cat "$COUNT" 2>/dev/null || echo 0) + 1))
echo "$n" > "$COUNT"
if [ "$n" -le "$FAILURES" ]; then echo "$FAIL_WITH" >&2; exit 125; fi
echo "ran $*"
`,
    );
    chmodSync(join(dir, 'buildah'), 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (failures: number, failWith: string) => {
    const count = join(dir, `count-${Math.random().toString(36).slice(2)}`);
    const env = { ...process.env, PATH: `${dir}:${process.env.PATH}`, COUNT: count, FAILURES: String(failures), FAIL_WITH: failWith };
    const runs = () => Number(readFileSync(count, 'utf8'));
    try {
      return { output: execBuildah('buildah', ['images', '-q'], env), runs: runs() };
    } catch (error) {
      return { error: error as Error & { stderr?: string }, runs: runs() };
    }
  };

  it('runs once when buildah succeeds', () => {
    expect(run(0, SEALING)).toEqual({ output: 'ran images -q\n', runs: 1 });
  });

  it('runs again after a refused memfd seal, up to its attempts', () => {
    expect(run(BUILDAH_ATTEMPTS - 1, SEALING)).toEqual({ output: 'ran images -q\n', runs: BUILDAH_ATTEMPTS });
    const gaveUp = run(BUILDAH_ATTEMPTS, SEALING);
    expect(gaveUp.runs).toBe(BUILDAH_ATTEMPTS);
    expect(gaveUp.error?.stderr).toContain('sealing memfd copy');
  });

  it('throws any other failure at once', () => {
    const failed = run(1, 'Error: no such image');
    expect(failed.runs).toBe(1);
    expect(failed.error?.stderr).toContain('no such image');
  });
});
