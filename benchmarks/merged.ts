/**
 * Merged-view benchmarks: strata's MergedView / WritableLayer against the same stack mounted by the kernel's
 * overlayfs, timed in this process (the operations are too small to time as whole commands). Each builds
 * its stack once per run; the `tree` argument sizes the readFile walk.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from 'node:path';
import { HostLayer, MergedView, mountOverlay, unmount, WritableLayer } from '@strata/core';
import type { Benchmark, Plan } from './suite.js';

/**
 * Mounts `lowers` (bottom first) at `target` with an empty upper (a read-only overlay needs two lowers),
 * each lower its own mount parameter: 128 lowers do not fit mount(8)'s one-page option string.
 */
function mount(lowers: string[], target: string): () => void {
  const upper = `${target}-upper`;
  const work = `${target}-work`;
  for (const d of [target, upper, work]) mkdirSync(d, { recursive: true });
  mountOverlay(target, [...lowers].reverse(), { upper, work }, ['index=off']);
  return () => unmount(target);
}

const DEPTH = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
const LOOKUPS = 2000;

/**
 * lstat of deep paths through N layers: every layer holds the same 8-deep directory chain; the deepest
 * directory's 2,000 files are spread over the layers. Each run starts from a new view over new layers
 * (nothing cached), then looks up every file: directory merging once, then per-lookup cost.
 */
function lookupBenchmark(layers: number): Benchmark {
  return {
    name: `lookup-${layers}-layers`,
    async plan(_tree, work): Promise<Plan> {
      const dirs: string[] = [];
      for (let i = 0; i < layers; i++) {
        const dir = join(work, `${i}`);
        mkdirSync(join(dir, ...DEPTH), { recursive: true });
        for (let k = i; k < LOOKUPS; k += layers) writeFileSync(join(dir, ...DEPTH, `f${k}`), 'x');
        dirs.push(dir);
      }
      const mnt = join(work, 'mnt');
      const unmount = mount(dirs, mnt);
      const paths = Array.from({ length: LOOKUPS }, (_, k) => `${DEPTH.join('/')}/f${k}`);
      return {
        description: `lstat of ${LOOKUPS} files 8 directories deep, spread over ${layers} layers, from a cold view (strata) vs lstat on the kernel mount`,
        cases: [
          {
            label: 'strata',
            run: () => {
              const view = new MergedView(dirs.map((d) => new HostLayer(d)));
              for (const path of paths) view.stat(path);
            },
          },
          { label: 'kernel overlayfs', run: () => { for (const path of paths) lstatSync(join(mnt, path)); } },
        ],
        writeHeavy: false,
        inputs: [],
        cleanup: unmount,
      };
    },
  };
}

export const mergedBenchmarks: Benchmark[] = [
  lookupBenchmark(1),
  lookupBenchmark(8),
  lookupBenchmark(64),
  lookupBenchmark(128),
  {
    name: 'readdir-10k-8-layers',
    async plan(_tree, work): Promise<Plan> {
      const dirs: string[] = [];
      for (let i = 0; i < 8; i++) {
        const dir = join(work, `${i}`, 'big');
        mkdirSync(dir, { recursive: true });
        for (let k = i; k < 10_000; k += 8) writeFileSync(join(dir, `entry-${k}`), '');
        dirs.push(join(work, `${i}`));
      }
      const mnt = join(work, 'mnt');
      const unmount = mount(dirs, mnt);
      return {
        description: 'list a 10,000-entry directory spread over 8 layers: fresh layers and view (strata) vs readdir on the kernel mount',
        cases: [
          { label: 'strata', run: () => new MergedView(dirs.map((d) => new HostLayer(d))).readdir('big') },
          { label: 'kernel overlayfs', run: () => readdirSync(join(mnt, 'big')) },
        ],
        writeHeavy: false,
        inputs: [],
        cleanup: unmount,
      };
    },
  },
  {
    name: 'copy-up-100MB',
    async plan(_tree, work): Promise<Plan> {
      const lower = join(work, 'lower');
      mkdirSync(lower);
      writeFileSync(join(lower, 'big'), Buffer.alloc(100 * 1024 * 1024, 7));
      const upper = join(work, 'upper');
      const cpTarget = join(work, 'cp');
      return {
        description: 'first write to a 100 MB lower file: strata copy-up (in process) vs cp --reflink=auto of the same file',
        cases: [
          { label: 'strata', run: () => new WritableLayer([new HostLayer(lower)], upper).chmod('/big', 0o600) },
          { label: 'cp --reflink=auto', command: ['cp', '--reflink=auto', join(lower, 'big'), join(cpTarget, 'big')] },
        ],
        writeHeavy: true,
        inputs: [join(lower, 'big')],
        reset: () => {
          for (const d of [upper, cpTarget]) {
            rmSync(d, { recursive: true, force: true });
            mkdirSync(d);
          }
        },
      };
    },
  },
  {
    name: 'readfile-walk',
    async plan(tree, work): Promise<Plan> {
      // The tree as two layers: all of it below, every second top-level directory again above.
      const lower = join(work, 'l0');
      execFileSync('cp', ['-a', tree.path, lower]);
      const upperLayer = join(work, 'l1');
      mkdirSync(upperLayer);
      readdirSync(lower).filter((_, i) => i % 2 === 0).forEach((name) => execFileSync('cp', ['-a', join(lower, name), upperLayer]));
      const dirs = [lower, upperLayer];
      const mnt = join(work, 'mnt');
      const unmount = mount(dirs, mnt);
      const walkKernel = (dir: string): number => {
        let bytes = 0;
        for (const d of readdirSync(dir, { withFileTypes: true })) {
          const p = join(dir, d.name);
          if (d.isDirectory()) bytes += walkKernel(p);
          else if (d.isFile()) bytes += readFileSync(p).length;
        }
        return bytes;
      };
      const walkStrata = async (): Promise<number> => {
        const layer = new WritableLayer(dirs.map((d) => new HostLayer(d)), join(work, 'unused-upper'));
        let bytes = 0;
        for (const node of layer.view.walk()) if (node.type === 'file') bytes += ((await layer.readFile(`/${node.path}`)) as Buffer).length;
        return bytes;
      };
      mkdirSync(join(work, 'unused-upper'));
      return {
        description: `read every file of ${tree.path} (as 2 layers) through the merged view: strata readFile walk vs node:fs on the kernel mount`,
        cases: [
          { label: 'strata', run: walkStrata },
          { label: 'kernel overlayfs', run: () => walkKernel(mnt) },
        ],
        writeHeavy: false,
        inputs: [],
        cleanup: unmount,
      };
    },
  },
];

