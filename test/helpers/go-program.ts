/**
 * Small Go programs as oracles, built with the machine's Go toolchain (Debian's golang-go, standard library
 * only, nothing fetched): what Go's own packages, the ones under containerd, moby and BuildKit, make of an
 * input.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const built = new Map<string, string>();

/** Go's environment for a build that writes only under `dir` and fetches nothing. */
function goEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, HOME: dir, GOCACHE: join(dir, 'cache'), GOPATH: join(dir, 'gopath'), GOPROXY: 'off', GOFLAGS: '', GO111MODULE: 'off' };
}

/**
 * The binary of `source` (a `package main`), built once per source and toolchain (a few seconds) into
 * `<tmpdir>/strata-<name>-<hash>`, which every later test file and run reuses: a directory per process was
 * left behind by each test file (its exit hook does not run in vitest's workers). Built aside and renamed in,
 * so concurrent builds cannot mix.
 */
export function goProgram(name: string, source: string): string {
  const known = built.get(name);
  if (known !== undefined && existsSync(known)) return known;
  const key = createHash('sha256').update(source).update(execFileSync('go', ['version'])).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `strata-${name}-${key}`);
  const binary = join(dir, name);
  if (!existsSync(binary)) {
    const build = mkdtempSync(join(tmpdir(), `strata-${name}-build-`));
    try {
      mkdirSync(join(build, 'src'));
      writeFileSync(join(build, 'src', 'main.go'), source);
      execFileSync('go', ['build', '-o', join(build, name), join(build, 'src', 'main.go')], { env: goEnv(build), stdio: ['ignore', 'ignore', 'pipe'] });
      for (const scratch of ['src', 'cache', 'gopath']) rmSync(join(build, scratch), { recursive: true, force: true });
      renameSync(build, dir);
    } catch (error) {
      rmSync(build, { recursive: true, force: true });
      // Another worker renamed its build in first: use that one.
      if (!existsSync(binary)) throw error;
    }
  }
  built.set(name, binary);
  return binary;
}

/** The root of the machine's Go toolchain, whose sources carry Go's own test tables. */
export function goRoot(): string {
  return execFileSync('go', ['env', 'GOROOT'], { encoding: 'utf8' }).trim();
}
