/**
 * The benchmarks: each names strata's command and its peers' commands for the same job on the same input.
 * strata runs as its CLI (a whole process, like its peers).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Tree } from './inputs.js';

const CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const strata = (...args: string[]) => [process.execPath, CLI, ...args];

/**
 * A case is a whole command; a command that times part of its own work (`probe`: it prints the seconds
 * as its last line of output), for work in a fresh process without the process's start-up; or (for
 * operations that are too small to time as a process) a function timed in this process.
 */
export type Case = { label: string; command: string[] } | { label: string; probe: string[] } | { label: string; run: () => unknown };

export interface Plan {
  description: string;
  /** `strata` and one or more peers. */
  cases: Case[];
  /** Drop caches before each run and re-read these inputs. */
  writeHeavy: boolean;
  inputs: string[];
  /** Restores the starting state before each run (e.g. removes the previous run's output). */
  reset?: () => void;
  /**
   * Untimed runs of each in-process case before the timed ones, so that they measure a running process's
   * steady state (V8 compiles hot code over the first dozen layers, on helper threads that take the cores
   * the job needs), as in an image builder that has written layers before. A cold process is what the
   * command cases measure.
   */
  warmup?: number;
  /** Undoes what the plan set up outside its work directory (mounts). */
  cleanup?: () => void;
}

/** A job timed on each input tree; named `<name>/<tree>` in results. */
export interface Benchmark {
  name: string;
  /** Runs once per run (its own input), not once per input tree. */
  once?: boolean;
  plan(tree: Tree, work: string): Promise<Plan>;
}

/** A layer of a tree, made by strata once per benchmark (GNU tar reads it as well). */
function layerOf(tree: string, work: string): string {
  const layer = join(work, 'input.tar');
  execFileSync(process.execPath, [CLI, 'pack', tree, '-o', layer], { stdio: 'ignore' });
  return layer;
}

export const benchmarks: Benchmark[] = [
  {
    name: 'apply',
    async plan(tree, work) {
      const layer = layerOf(tree.path, work);
      const target = join(work, 'target');
      return {
        description: `extract a layer of ${tree.path} into an empty directory (strata apply vs tar -x)`,
        cases: [
          { label: 'strata', command: strata('apply', layer, target) },
          { label: 'tar -x', command: ['tar', '-xf', layer, '-C', target] },
        ],
        writeHeavy: true,
        inputs: [layer],
        reset: () => {
          rmSync(target, { recursive: true, force: true });
          mkdirSync(target); // tar needs it; strata applies in place onto an existing empty directory
        },
      };
    },
  },
  {
    name: 'pack',
    async plan(tree, work) {
      const out = join(work, 'out.tar');
      return {
        description: `write a layer of ${tree.path}, strata computing its diffID on the way (strata pack vs tar -c)`,
        cases: [
          { label: 'strata', command: strata('pack', tree.path, '-o', out) },
          { label: 'tar -c', command: ['tar', '-cf', out, '-C', tree.path, '.'] },
        ],
        writeHeavy: true,
        inputs: [tree.path],
        reset: () => rmSync(out, { force: true }),
      };
    },
  },
  {
    name: 'digest',
    async plan(tree, work) {
      const layer = layerOf(tree.path, work);
      return {
        description: `diffID of an uncompressed layer of ${tree.path} (strata digest vs openssl dgst -sha256)`,
        cases: [
          { label: 'strata', command: strata('digest', layer) },
          { label: 'openssl', command: ['openssl', 'dgst', '-sha256', layer] },
        ],
        writeHeavy: false,
        inputs: [layer],
      };
    },
  },
];
