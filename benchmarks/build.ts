/**
 * Build benchmarks against buildah (`buildah bud --layers --isolation chroot`, overlay storage), both as
 * whole commands, on the same Dockerfile and context: a copy of /usr/share (54,000 files, 670 MB; of
 * /usr/share/zoneinfo in smoke runs) copied into the minbase image, then a few shell steps.
 *
 * - build-cold: nothing cached (each side's store holds only the base image);
 * - build-cached: everything cached (the same build done before);
 * - build-one-change: one source file rewritten (same size, same mtime) since the last build: the COPY and
 *   the steps after it run again.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { aptImage } from './inputs.js';
import { execBuildah, isSealingBusy } from '../test/helpers/buildah-run.js';
import type { Benchmark, Plan } from './suite.js';

const CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const run = (command: string[]) => execFileSync(command[0]!, command.slice(1), { stdio: 'ignore' });
/** An untimed buildah command on a bench store (run again when buildah only failed to seal its memfd copy). */
const buildah = (args: string[]) => execBuildah('buildah', args);
const BASE = 'example.com/base:base';

const DOCKERFILE = `FROM ${BASE}
WORKDIR /app
COPY tree /app/tree
RUN find /app/tree -type f | wc -l > /app/files && du -s /app/tree > /app/size
RUN mkdir -p /app/bin && printf '#!/bin/sh\\necho app\\n' > /app/bin/app && chmod 755 /app/bin/app
ENV APP=/app/bin/app
RUN /app/bin/app > /app/ran
`;

/** The file the one-change benchmark rewrites (same size, same mtime). */
const CHANGED = 'strata-bench-changed.txt';

interface Sides {
  context: string;
  strataRoot: string;
  buildah: string[];
  strata: string[];
  buildahBuild: string[];
  /** Empties both stores but for the base image. */
  fresh(): void;
  /** Rewrites the changed file with the same size and mtime. */
  touch(): void;
  inputs: string[];
}

function sides(treePath: string, work: string): Sides {
  const context = join(work, 'context');
  mkdirSync(context, { recursive: true });
  cpSync(treePath, join(context, 'tree'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(context, 'tree', CHANGED), 'version 0000\n');
  writeFileSync(join(context, 'Dockerfile'), DOCKERFILE);
  const layout = aptImage().layout;
  const strataRoot = join(work, 'strata-root');
  const buildahStore = ['--root', join(work, 'buildah', 'root'), '--runroot', join(work, 'buildah', 'run'), '--storage-driver', 'overlay'];
  let version = 0;
  return {
    context,
    strataRoot,
    buildah: buildahStore,
    strata: [process.execPath, CLI, '--root', strataRoot, 'build', '-q', '-t', 'example.com/bench:1', context],
    buildahBuild: ['buildah', ...buildahStore, 'bud', '--quiet', '--layers', '--isolation', 'chroot', '--pull-never', '-t', 'example.com/bench:1', context],
    fresh() {
      rmSync(strataRoot, { recursive: true, force: true });
      run([process.execPath, CLI, '--root', strataRoot, 'image', 'import', layout, '--name', 'example.com/base', '-q']);
      try {
        buildah([...buildahStore, 'rmi', '--all', '--force']);
      } catch {
        // an empty store
      }
      const id = buildah([...buildahStore, 'pull', '--quiet', `oci:${layout}:base`]).trim().split('\n').at(-1)!;
      buildah([...buildahStore, 'tag', id, BASE]);
    },
    touch() {
      const path = join(context, 'tree', CHANGED);
      const before = statSync(path);
      writeFileSync(path, `version ${String(++version).padStart(4, '0')}\n`);
      utimesSync(path, before.atime, before.mtime);
    },
    inputs: [context, layout, join(work, 'buildah', 'root'), strataRoot],
  };
}

function unmountBuildah(s: Sides): void {
  try {
    buildah([...s.buildah, 'rm', '--all']);
    buildah([...s.buildah, 'rmi', '--all', '--force']);
  } catch {
    // nothing left
  }
}

/** The tree a build copies: /usr/share, or zoneinfo in smoke runs. */
const sourceOf = (tree: { name: string; path: string }) => (tree.name === 'zoneinfo' ? tree.path : '/usr/share');

/**
 * One build benchmark: strata and buildah run the same build. `builtBefore`: both have built it once
 * (untimed); `reset` runs before each timed build.
 */
function buildBenchmark(name: string, describe: (source: string) => string, options: { builtBefore: boolean; reset?: (s: Sides) => void }): Benchmark {
  return {
    name,
    once: true,
    async plan(tree, work): Promise<Plan> {
      const s = sides(sourceOf(tree), work);
      if (options.builtBefore) {
        s.fresh();
        run(s.strata);
        buildah(s.buildahBuild.slice(1));
      }
      return {
        description: describe(sourceOf(tree)),
        cases: [
          { label: 'strata', command: s.strata },
          { label: 'buildah', command: s.buildahBuild, retryWhen: isSealingBusy },
        ],
        writeHeavy: true,
        inputs: s.inputs,
        ...(options.reset ? { reset: () => options.reset!(s) } : {}),
        cleanup: () => unmountBuildah(s),
      };
    },
  };
}

export const buildBenchmarks: Benchmark[] = [
  buildBenchmark('build-cold', (source) => `build with nothing cached: COPY of ${source} into minbase and four shell steps (strata build vs buildah bud --layers --isolation chroot)`, {
    builtBefore: false,
    reset: (s) => s.fresh(),
  }),
  buildBenchmark('build-cached', () => 'rebuild with every step cached (the same build done before; strata build vs buildah bud --layers)', { builtBefore: true }),
  buildBenchmark('build-one-change', () => 'rebuild after one source file was rewritten (same size and mtime): the COPY and the steps after it run again (strata build vs buildah bud --layers)', {
    builtBefore: true,
    // Each side sees a file it has not built yet: both run the COPY and what follows.
    reset: (s) => s.touch(),
  }),
];
