/**
 * The layer benchmarks: each names strata's work and its peers' commands for the same job on the same input.
 * strata runs as its CLI (a whole process, like its peers), as its first call in a fresh process, and embedded
 * in the harness's process (see `forms`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { applyLayer, digestLayer, packDirectory } from '@strata/core';
import type { Tree } from './inputs.js';

const CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const strata = (...args: string[]) => [process.execPath, CLI, ...args];
const PROBE = join(import.meta.dirname, 'probes', 'layer-job.mjs');
const probe = (...args: string[]) => [process.execPath, PROBE, ...args];

/**
 * A case is a whole command; a command that times part of its own work (`probe`: it prints the seconds
 * as its last line of output), for work in a fresh process without the process's start-up; or (for
 * operations that are too small to time as a process) a function timed in this process.
 */
export type Case = CommandCase | { label: string; probe: string[] } | { label: string; run: () => unknown };

/**
 * A whole command. `retryWhen`: a failure of the program's own that says nothing of the job (judged by its
 * stderr), after which the run is done again from its reset; the failed run's time is not kept.
 */
export interface CommandCase {
  label: string;
  command: string[];
  retryWhen?: (stderr: string) => boolean;
}

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
  /** Lines reported after the run beside the description (figures other than time, such as latency). */
  notes?: () => string[];
  /**
   * The labels of the peers that together do all the work strata does, hashing included, as work that can be
   * spread over the cores (extracting or archiving, and hashing, are independent): the run reports its CPU
   * floor. Not a pipeline whose extra copies (`tee`) would raise the floor.
   */
  sameWork?: readonly string[];
  /**
   * The label of a peer that only hashes the layer strata writes, read back from the page cache as strata's
   * hashing thread reads it: the run reports it as the hash floor. SHA-256 is serial, so no writer that gives
   * the diffID finishes before the hash of its last byte, however many cores it has.
   */
  hashFloor?: string;
}

/** A job timed on each input tree; named `<name>/<tree>` in results. */
export interface Benchmark {
  name: string;
  /** Runs once per run (its own input), not once per input tree. */
  once?: boolean;
  plan(tree: Tree, work: string): Promise<Plan>;
}

/**
 * What a job that writes `dir` as a layer to `out` and gives its diffID is measured against besides `tar -c`
 * (which it names by that label): `tar -c` piped through the digest, the same work, and the digest alone of
 * `layer` (a layer of the same input, made beforehand) read back from the page cache, as strata's hashing
 * thread reads what it wrote; with the floors the run reports from them.
 */
export function writerPeers(dir: string, out: string, layer: string): { peers: Case[]; sameWork: readonly string[]; hashFloor: string } {
  return {
    peers: [
      { label: 'tar -c, sha256', command: ['bash', '-c', 'set -o pipefail; tar -cf - -C "$1" . | tee "$0" | openssl dgst -sha256 > /dev/null', out, dir] },
      { label: 'sha256 alone', command: ['openssl', 'dgst', '-sha256', layer] },
    ],
    sameWork: ['tar -c', 'sha256 alone'],
    hashFloor: 'sha256 alone',
  };
}

/** A layer of a tree, made by strata once per benchmark (GNU tar reads it as well). */
function layerOf(tree: string, work: string): string {
  const layer = join(work, 'input.tar');
  execFileSync(process.execPath, [CLI, 'pack', tree, '-o', layer], { stdio: 'ignore' });
  return layer;
}

/**
 * Layers an embedded case handles untimed before it is timed: V8 has compiled the per-entry code by then
 * (about a dozen small layers on this VM; one /usr/share layer is 54,000 entries of warm-up on its own).
 */
const warmupFor = (tree: Tree) => (tree.name === 'usr-share' ? 2 : 12);

/**
 * One job in its three forms, each against the same peer commands: `strata`'s CLI (a whole process),
 * `<name>-embedded` (the library called in a running process after untimed warm-up layers, as an image
 * builder or puller embeds it) and `<name>-first-layer` (the library's first call in a fresh process,
 * module loading left out).
 */
interface Job {
  name: string;
  describe(tree: Tree): string;
  setup(tree: Tree, work: string): { cli: string[]; embedded: () => Promise<unknown>; probe: string[]; peers: Case[]; sameWork?: readonly string[]; hashFloor?: string; writeHeavy: boolean; inputs: string[]; reset?: () => void };
}

function forms(job: Job): Benchmark[] {
  const form = (suffix: string, what: string, strataCase: (s: ReturnType<Job['setup']>) => Case, warm: (tree: Tree) => number | undefined): Benchmark => ({
    name: `${job.name}${suffix}`,
    async plan(tree, work) {
      const s = job.setup(tree, work);
      const warmup = warm(tree);
      return {
        description: `${job.describe(tree)}; ${what}`,
        cases: [strataCase(s), ...s.peers],
        ...(s.sameWork !== undefined ? { sameWork: s.sameWork } : {}),
        ...(s.hashFloor !== undefined ? { hashFloor: s.hashFloor } : {}),
        writeHeavy: s.writeHeavy,
        inputs: s.inputs,
        ...(s.reset ? { reset: s.reset } : {}),
        ...(warmup !== undefined ? { warmup } : {}),
      };
    },
  });
  return [
    form('', 'strata as its CLI', (s) => ({ label: 'strata', command: s.cli }), () => undefined),
    form('-embedded', 'strata called in a running process after untimed warm-up layers', (s) => ({ label: 'strata', run: s.embedded }), warmupFor),
    form('-first-layer', "strata's first call in a fresh process, module loading left out", (s) => ({ label: 'strata', probe: s.probe }), () => undefined),
  ];
}

export const benchmarks: Benchmark[] = [
  ...forms({
    name: 'apply',
    describe: (tree) => `extract a layer of ${tree.path} into an empty directory (vs tar -x)`,
    setup(tree, work) {
      const layer = layerOf(tree.path, work);
      const target = join(work, 'target');
      return {
        cli: strata('apply', layer, target),
        embedded: () => applyLayer(layer, target),
        probe: probe('apply', layer, target),
        peers: [
          { label: 'tar -x', command: ['tar', '-xf', layer, '-C', target] },
          // strata also computes the layer's diffID while it extracts, as a puller must to verify it: tar
          // with the digest beside it, on the other core, is the peer doing the same work.
          { label: 'tar -x & sha256', command: ['sh', '-c', 'tar -xf "$0" -C "$1" & openssl dgst -sha256 "$0" > /dev/null; wait $!', layer, target] },
        ],
        sameWork: ['tar -x & sha256'],
        writeHeavy: true,
        inputs: [layer],
        reset: () => {
          rmSync(target, { recursive: true, force: true });
          mkdirSync(target); // tar needs it; strata applies in place onto an existing empty directory
        },
      };
    },
  }),
  {
    // What a puller or `docker save |` hands over: a layer on stdin, which strata reads by its path (a pipe).
    name: 'apply-stdin',
    async plan(tree, work) {
      const layer = layerOf(tree.path, work);
      const target = join(work, 'target');
      return {
        description: `extract a layer of ${tree.path} that cat pipes in: strata apply - (its CLI) vs tar -x from the same pipe`,
        cases: [
          { label: 'strata', command: ['sh', '-c', 'cat "$2" | exec "$0" "$1" apply - "$3" > /dev/null', process.execPath, CLI, layer, target] },
          { label: 'tar -x', command: ['sh', '-c', 'cat "$0" | exec tar -x -C "$1"', layer, target] },
        ],
        writeHeavy: true,
        inputs: [layer],
        reset: () => {
          rmSync(target, { recursive: true, force: true });
          mkdirSync(target);
        },
      };
    },
  },
  ...forms({
    name: 'pack',
    describe: (tree) => `write a layer of ${tree.path}, strata computing its diffID on the way (vs tar -c)`,
    setup(tree, work) {
      const out = join(work, 'out.tar');
      const layer = layerOf(tree.path, work);
      // strata's pack gives the diffID too.
      const hashing = writerPeers(tree.path, out, layer);
      return {
        cli: strata('pack', tree.path, '-o', out),
        embedded: () => packDirectory(tree.path, out),
        probe: probe('pack', tree.path, out),
        peers: [{ label: 'tar -c', command: ['tar', '-cf', out, '-C', tree.path, '.'] }, ...hashing.peers],
        sameWork: hashing.sameWork,
        hashFloor: hashing.hashFloor,
        writeHeavy: true,
        // The layer as the hashing thread finds what was just written: in the page cache.
        inputs: [tree.path, layer],
        reset: () => rmSync(out, { force: true }),
      };
    },
  }),
  ...forms({
    name: 'digest',
    describe: (tree) => `diffID of an uncompressed layer of ${tree.path} (vs openssl dgst -sha256)`,
    setup(tree, work) {
      const layer = layerOf(tree.path, work);
      return {
        cli: strata('digest', layer),
        embedded: () => digestLayer(layer),
        probe: probe('digest', layer),
        peers: [{ label: 'openssl', command: ['openssl', 'dgst', '-sha256', layer] }],
        writeHeavy: false,
        inputs: [layer],
      };
    },
  }),
];
