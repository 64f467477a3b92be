/**
 * The event loop while strata works in the process that embeds it: three applies (or packs) at once, against
 * the same three in a row, in this process, and the longest gap of a 1 ms `setInterval` during each (what a
 * progress UI or a download waiting on the loop would see). Three at once on two cores should take less than
 * three in a row.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { applyLayer, packDirectory } from '@strata/core';
import type { Benchmark } from './suite.js';
import { watchLoop } from '../test/helpers/event-loop.js';

const WARMUP = 4;

/** The longest gap of a 1 ms interval while `work` runs, in milliseconds. */
const longestGap = async (work: () => Promise<unknown>) => (await watchLoop(work)).longestGap;

/** A job run three times, each into its own output: `run(i)` does the i-th, `reset` clears all three. */
interface ThreeJobs {
  description: string;
  inputs: string[];
  run(i: number): Promise<unknown>;
  reset(): void;
}

/** `<name>-concurrent`: three of a job at once against three in a row, with the loop's longest gaps in notes. */
function concurrent(name: string, nouns: [one: string, many: string], setup: (tree: { path: string }, work: string) => Promise<ThreeJobs>): Benchmark {
  return {
    name: `${name}-concurrent`,
    once: true,
    async plan(tree, work) {
      const jobs = await setup(tree, work);
      const three = [0, 1, 2];
      const gaps = { together: [] as number[], alone: [] as number[] };
      const runs = { together: 0, alone: 0 };
      // Each case's warm-up runs come before its timed ones and are not reported.
      const timed = (which: 'together' | 'alone') => ++runs[which] > WARMUP;
      return {
        description: `${jobs.description} at once in one process ('strata') vs the same three in a row ('in a row')`,
        cases: [
          {
            label: 'strata',
            run: async () => {
              const gap = await longestGap(() => Promise.all(three.map((i) => jobs.run(i))));
              if (timed('together')) gaps.together.push(gap);
            },
          },
          {
            label: 'in a row',
            run: async () => {
              const alone = [];
              for (const i of three) alone.push(await longestGap(() => jobs.run(i)));
              if (timed('alone')) gaps.alone.push(...alone);
            },
          },
        ],
        writeHeavy: true,
        inputs: jobs.inputs,
        warmup: WARMUP,
        reset: jobs.reset,
        notes: () => {
          const worst = (xs: number[]) => (xs.length > 0 ? `${Math.max(...xs).toFixed(1)} ms` : 'n/a');
          const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]?.toFixed(1) ?? 'n/a';
          return [
            `longest event-loop gap (1 ms interval) during one ${nouns[0]}: median ${median(gaps.alone)} ms, worst ${worst(gaps.alone)}`,
            `longest event-loop gap during three concurrent ${nouns[1]}: median ${median(gaps.together)} ms, worst ${worst(gaps.together)}`,
          ];
        },
      };
    },
  };
}

export const eventLoopBenchmarks: Benchmark[] = [
  concurrent('apply', ['apply', 'applies'], async (tree, work) => {
    const layer = join(work, 'input.tar');
    await packDirectory(tree.path, layer);
    const targets = [0, 1, 2].map((i) => join(work, `target-${i}`));
    return {
      description: `three applies of a layer of ${tree.path}`,
      inputs: [layer],
      run: (i) => applyLayer(layer, targets[i]!),
      reset: () => {
        for (const t of targets) rmSync(t, { recursive: true, force: true });
        for (const t of targets) mkdirSync(t);
      },
    };
  }),
  concurrent('pack', ['pack', 'packs'], async (tree, work) => {
    const outputs = [0, 1, 2].map((i) => join(work, `layer-${i}.tar`));
    return {
      description: `three packs of ${tree.path} (layer and diffID)`,
      inputs: [tree.path],
      run: (i) => packDirectory(tree.path, outputs[i]!),
      reset: () => {
        for (const out of outputs) rmSync(out, { force: true });
      },
    };
  }),
];
