/**
 * Diff benchmarks on a real change: the upper left by `apt-get install python3 curl` in a chroot on a
 * kernel overlay over the minbase rootfs (benchmarks/inputs/apt-upper.sh). The tiny run uses a small
 * change the kernel makes over a copy of /usr/share/zoneinfo.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from 'node:path';
import { diffUpper, HostLayer, writeChanges } from '@strata/core';
import { aptChange } from './inputs.js';
import { writerPeers, type Benchmark, type Plan } from './suite.js';
import { Containerd } from '../test/helpers/containerd.js';

const CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const strata = (...args: string[]) => [process.execPath, CLI, ...args];
const PROBE = join(import.meta.dirname, 'probes', 'diff-upper.mjs');
/** Layers written before the embedded case is timed: V8 has compiled the hot paths by then (about 13 on this VM). */
const EMBEDDED_WARMUP = 20;

/**
 * A writer's peers for a change (see `writerPeers`), the layer they hash made once, untimed, by strata; and the
 * inputs to warm for them: that layer.
 */
function hashPeers(change: Change, work: string, out: string): ReturnType<typeof writerPeers> & { inputs: string[] } {
  const layer = join(work, 'change.tar');
  execFileSync(process.execPath, [CLI, 'diff', '--upper', change.upper, '--lower', change.lower, '-o', layer], { stdio: 'ignore' });
  return { ...writerPeers(change.upper, out, layer), inputs: [layer] };
}

/** A change: its lower, the upper a kernel overlay left, and the merged tree copied out. */
export interface Change {
  lower: string;
  upper: string;
  merged: string;
}

export function tinyChange(work: string): Change {
  const dir = join(work, 'tiny-change');
  const [lower, upper, wdir, mnt, merged] = ['lower', 'upper', 'work', 'mnt', 'merged'].map((d) => join(dir, d)) as [string, string, string, string, string];
  if (existsSync(merged)) return { lower, upper, merged };
  mkdirSync(dir, { recursive: true });
  execFileSync('cp', ['-a', '/usr/share/zoneinfo', lower]);
  for (const d of [upper, wdir, mnt]) mkdirSync(d);
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${wdir}`, mnt]);
  try {
    execFileSync('sh', ['-c', 'rm -r Europe && echo changed > Etc/UTC && mkdir -p new/dir && cp -a America/New_York new/dir/ && chmod 600 Asia/Tokyo'], { cwd: mnt });
    execFileSync('cp', ['-a', mnt, merged]);
  } finally {
    execFileSync('umount', [mnt]);
  }
  return { lower, upper, merged };
}

/** The change for this run: the apt change in full runs, the tiny one in smoke runs. */
function changeFor(tree: { name: string }, work: string): Change {
  return tree.name === 'zoneinfo' ? tinyChange(work) : aptChange();
}

export const diffBenchmarks: Benchmark[] = [
  {
    name: 'diff-upper',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const change = changeFor(tree, work);
      const out = join(work, 'out.tar');
      const containerd = await Containerd.start(join(work, 'containerd'));
      try {
        const key = containerd.stageChange(change.lower, change.upper);
        const hash = hashPeers(change, work, out);
        return {
          description: `the change in ${change.upper} as a layer: strata diff --upper (diff + serialise + diffID) vs tar -c of the upper alone, and vs containerd's snapshot diff of the same change (ctr snapshots diff: its daemon mounts the snapshot and its parent and walks both; the daemon runs throughout, its start untimed); beside them tar -c piped through the digest (strata's work) and the digest of the layer alone (the hash floor)`,
          cases: [
            { label: 'strata', command: strata('diff', '--upper', change.upper, '--lower', change.lower, '-o', out) },
            { label: 'tar -c', command: ['tar', '-cf', out, '-C', change.upper, '.'] },
            { label: 'containerd', command: containerd.diffCommand(key) },
            ...hash.peers,
          ],
          sameWork: hash.sameWork,
          hashFloor: hash.hashFloor,
          writeHeavy: true,
          // The lower too: strata reads its metadata where the upper touched it, and a container that just
          // ran over it has it in cache. containerd's copies of both, and its daemon's program, likewise.
          inputs: [change.upper, change.lower, join(work, 'containerd', 'root'), containerd.program, ...hash.inputs],
          reset: () => {
            rmSync(out, { force: true });
            containerd.clearContent();
          },
          cleanup: () => containerd.stop(),
        };
      } catch (error) {
        containerd.stop();
        throw error;
      }
    },
  },
  {
    name: 'diff-upper-embedded',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const change = changeFor(tree, work);
      const out = join(work, 'out.tar');
      const hash = hashPeers(change, work, out);
      return {
        description: `the same change as a layer by diffUpper + writeChanges called in a running process, as an image builder embeds it: no process start, modules loaded, after ${EMBEDDED_WARMUP} untimed layers (hot code compiled) vs tar -c of the upper, tar -c piped through the digest and the digest alone`,
        cases: [
          { label: 'strata', run: () => writeChanges(diffUpper([new HostLayer(change.lower)], change.upper), out) },
          { label: 'tar -c', command: ['tar', '-cf', out, '-C', change.upper, '.'] },
          ...hash.peers,
        ],
        sameWork: hash.sameWork,
        hashFloor: hash.hashFloor,
        writeHeavy: true,
        inputs: [change.upper, change.lower, ...hash.inputs],
        warmup: EMBEDDED_WARMUP,
        reset: () => rmSync(out, { force: true }),
      };
    },
  },
  {
    name: 'diff-upper-first-layer',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const change = changeFor(tree, work);
      const out = join(work, 'out.tar');
      const hash = hashPeers(change, work, out);
      return {
        description: `the same call in a fresh process, timed from after its modules load: the first layer a builder writes, while V8 still compiles the hot code (no warm-up) vs tar -c of the upper, tar -c piped through the digest and the digest alone`,
        cases: [
          { label: 'strata', probe: [process.execPath, PROBE, change.upper, change.lower, out] },
          { label: 'tar -c', command: ['tar', '-cf', out, '-C', change.upper, '.'] },
          ...hash.peers,
        ],
        sameWork: hash.sameWork,
        hashFloor: hash.hashFloor,
        writeHeavy: true,
        inputs: [change.upper, change.lower, ...hash.inputs],
        reset: () => rmSync(out, { force: true }),
      };
    },
  },
  {
    name: 'diff-trees',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const change = changeFor(tree, work);
      // umoci's view of the same change: a bundle unpacked from the base image, its rootfs made the merged tree.
      const layout = join(work, 'image');
      const umoci = (...args: string[]) => execFileSync('umoci', args, { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
      umoci('init', '--layout', layout);
      umoci('new', '--image', `${layout}:base`);
      umoci('unpack', '--image', `${layout}:base`, join(work, 'b1'));
      rmSync(join(work, 'b1', 'rootfs'), { recursive: true });
      execFileSync('cp', ['-a', change.lower, join(work, 'b1', 'rootfs')]);
      umoci('repack', '--image', `${layout}:base`, join(work, 'b1'));
      umoci('unpack', '--image', `${layout}:base`, join(work, 'b2'));
      rmSync(join(work, 'b2', 'rootfs'), { recursive: true });
      execFileSync('cp', ['-a', change.merged, join(work, 'b2', 'rootfs')]);
      const out = join(work, 'out.tar.gz');
      return {
        description: `the change from ${change.lower} to its merged tree as a gzip layer: strata diff --from/--to (walks both trees) vs umoci repack`,
        cases: [
          { label: 'strata', command: strata('diff', '--from', change.lower, '--to', change.merged, '-o', out, '--compression', 'gzip') },
          { label: 'umoci repack', command: ['umoci', 'repack', '--image', `${layout}:next`, join(work, 'b2')] },
        ],
        writeHeavy: true,
        inputs: [change.lower, change.merged],
        reset: () => rmSync(out, { force: true }),
      };
    },
  },
  {
    name: 'flatten-5',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const change = changeFor(tree, work);
      const base = join(work, 'base.tar');
      const diff = join(work, 'diff.tar');
      const extra = join(work, 'extra.tar');
      execFileSync(process.execPath, [CLI, 'pack', change.lower, '-o', base], { stdio: 'ignore' });
      execFileSync(process.execPath, [CLI, 'diff', '--upper', change.upper, '--lower', change.lower, '-o', diff], { stdio: 'ignore' });
      execFileSync(process.execPath, [CLI, 'pack', '/usr/share/zoneinfo', '-o', extra], { stdio: 'ignore' });
      const layers = [base, diff, base, diff, extra]; // overlapping: later layers replace most of the earlier ones
      const out = join(work, 'flat.tar');
      return {
        description: 'five overlapping layers (base, change, base, change, zoneinfo) folded into one: strata flatten vs openssl dgst -sha256 of the inputs',
        cases: [
          { label: 'strata', command: strata('flatten', ...layers, '-o', out) },
          { label: 'openssl', command: ['openssl', 'dgst', '-sha256', ...layers] },
        ],
        writeHeavy: true,
        inputs: layers,
        reset: () => rmSync(out, { force: true }),
      };
    },
  },
  {
    name: 'diff-upper-base-growth',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const change = changeFor(tree, work);
      // The same change over bases grown 1, 4 and 16 times: hardlinked copies of the lower beside it, linked
      // to one copy made on the scratch file system (links cannot cross to the inputs'). All three in one
      // run, alternating, so that the VM's drift between benchmarks does not read as growth.
      const lowerCopy = join(work, 'lower');
      execFileSync('cp', ['-a', change.lower, lowerCopy]);
      const base = (scale: number): string => {
        const dir = join(work, `base-${scale}x`);
        execFileSync('cp', ['-al', lowerCopy, dir]);
        for (let i = 1; i < scale; i++) execFileSync('cp', ['-al', lowerCopy, join(dir, `copy-${i}`)]);
        return dir;
      };
      const [base1, base4, base16] = [base(1), base(4), base(16)] as [string, string, string];
      const out = join(work, 'out.tar');
      const diffOver = (lower: string) => strata('diff', '--upper', change.upper, '--lower', lower, '-o', out);
      return {
        description: 'strata diff --upper of the same change over bases 1x, 4x and 16x as large, alternating in one run: the cost should follow the change, not the base (strata is the 16x base; its ratio to the 1x and 4x runs is the growth) vs tar -c of the upper',
        cases: [
          { label: 'strata', command: diffOver(base16) },
          { label: 'strata, base 1x', command: diffOver(base1) },
          { label: 'strata, base 4x', command: diffOver(base4) },
          { label: 'tar -c', command: ['tar', '-cf', out, '-C', change.upper, '.'] },
        ],
        writeHeavy: true,
        inputs: [change.upper, base1, base4, base16],
        reset: () => rmSync(out, { force: true }),
      };
    },
  },
];

