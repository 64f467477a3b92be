/**
 * Snapshotter benchmarks: the metadata path (prepare + commit of empty snapshots) against containerd's own
 * snapshotter driven by `ctr` (a private daemon, started untimed, as a runtime or builder talks to it);
 * usage of an active snapshot against `du -s` of its upper; stat and walk over 1,000 snapshots against
 * `ctr snapshots ls`. Each strata case runs in this process, as a library is used.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSnapshotter, type Snapshotter } from '@strata/snapshotter';
import { Containerd } from '../test/helpers/containerd.js';
import type { Benchmark, Plan } from './suite.js';

/** The smoke run (`--tiny`, on zoneinfo) keeps counts small: it checks the harness, not the speed. */
const small = (tree: { name: string }) => tree.name === 'zoneinfo';

/** A shell command running `ctr` for each of `args`, in one process tree (so one timing covers them all). */
function shellOf(commands: string[][]): string[] {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return ['sh', '-c', commands.map((c) => c.map(quote).join(' ')).join(' && ')];
}

export const snapshotBenchmarks: Benchmark[] = [
  {
    name: 'snapshot-prepare-commit',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const PAIRS = small(tree) ? 5 : 50;
      const containerd = await Containerd.start(join(work, 'containerd'));
      let sn: Snapshotter | undefined;
      let round = 0;
      const ctrPairs = (r: number) =>
        Array.from({ length: PAIRS }, (_, i) => [containerd.ctr('snapshots', '--snapshotter', 'overlayfs', 'prepare', `k-${r}-${i}`), containerd.ctr('snapshots', '--snapshotter', 'overlayfs', 'commit', `n-${r}-${i}`, `k-${r}-${i}`)]).flat();
      let ctrRound = 0;
      let cliRound = 0;
      const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
      const cliRoot = join(work, 'cli-root');
      const cliPairs = (r: number) =>
        Array.from({ length: PAIRS }, (_, i) => [
          [process.execPath, cli, '--root', cliRoot, 'snapshot', 'prepare', `k-${r}-${i}`],
          [process.execPath, cli, '--root', cliRoot, 'snapshot', 'commit', `n-${r}-${i}`, `k-${r}-${i}`],
        ]).flat();
      const cases: Plan['cases'] = [
        {
          label: 'strata',
          run: async () => {
            const r = ++round;
            for (let i = 0; i < PAIRS; i++) {
              await sn!.prepare(`k-${r}-${i}`);
              await sn!.commit(`n-${r}-${i}`, `k-${r}-${i}`);
            }
          },
        },
        // Each ctr run is a new set of keys: a shell loop of ctr processes, as a client script drives containerd.
        {
          // The same shape as ctr's: one process per call.
          label: 'strata CLI',
          run: () => {
            const [shell, ...args] = shellOf(cliPairs(++cliRound));
            execFileSync(shell!, args, { stdio: 'ignore', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
          },
        },
        {
          label: 'ctr (containerd overlayfs)',
          run: () => {
            const [shell, ...args] = shellOf(ctrPairs(++ctrRound));
            execFileSync(shell!, args, { stdio: 'ignore' });
          },
        },
      ];
      sn = await openSnapshotter(join(work, 'root'), { driver: 'overlay' });
      return {
        description: `${PAIRS} prepare + commit pairs of empty snapshots: strata's snapshotter in process (overlay driver, LMDB), and strata's CLI one process per call, vs ctr against containerd's overlayfs snapshotter (bbolt), one ctr process per call`,
        cases,
        writeHeavy: false,
        inputs: [],
        warmup: 1,
        cleanup: () => {
          void sn?.close();
          containerd.stop();
        },
      };
    },
  },
  {
    name: 'snapshot-usage',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const dirs = small(tree) ? 10 : 100;
      const sn = await openSnapshotter(join(work, 'root'), { driver: 'userspace' });
      await sn.prepare('active');
      const upper = (await sn.mounts('active'))[0]!.source;
      for (let d = 0; d < dirs; d++) {
        mkdirSync(join(upper, `d${d}`));
        for (let f = 0; f < 100; f++) writeFileSync(join(upper, `d${d}`, `f${f}`), 'x'.repeat((d * 100 + f) % 9000));
      }
      return {
        description: `disk usage of an active snapshot of ${dirs * 100} files (its upper): strata usage() in process vs du -s`,
        cases: [
          { label: 'strata', run: () => sn.usage('active') },
          { label: 'du -s', command: ['du', '-s', upper] },
        ],
        writeHeavy: false,
        inputs: [upper],
        warmup: 2,
        cleanup: () => void sn.close(),
      };
    },
  },
  {
    name: 'snapshot-stat-walk',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const count = small(tree) ? 20 : 1000;
      const containerd = await Containerd.start(join(work, 'containerd'));
      const sn = await openSnapshotter(join(work, 'root'), { driver: 'userspace' });
      let parent: string | undefined;
      const ctrSetup: string[][] = [];
      for (let i = 0; i < count; i++) {
        await sn.prepare(`a${i}`, i % 10 === 0 ? undefined : parent, { labels: { n: String(i) } });
        await sn.commit(`c${i}`, `a${i}`);
        parent = `c${i}`;
        ctrSetup.push(containerd.ctr('snapshots', '--snapshotter', 'overlayfs', 'prepare', `a${i}`), containerd.ctr('snapshots', '--snapshotter', 'overlayfs', 'commit', `c${i}`, `a${i}`));
      }
      for (let i = 0; i < ctrSetup.length; i += 200) {
        const cmd = shellOf(ctrSetup.slice(i, i + 200));
        execFileSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore' });
      }
      const keys = Array.from({ length: count }, (_, i) => `c${i}`);
      const ls = containerd.ctr('snapshots', '--snapshotter', 'overlayfs', 'ls');
      return {
        description: `stat of ${count} snapshots then a walk of all of them (strata in process) vs one ctr snapshots ls over ${count}`,
        cases: [
          {
            label: 'strata',
            run: async () => {
              for (const key of keys) await sn.stat(key);
              let n = 0;
              await sn.walk(() => void n++);
              if (n !== count) throw new Error(`walked ${n}`);
            },
          },
          { label: 'ctr snapshots ls', command: ls },
        ],
        writeHeavy: false,
        inputs: [],
        warmup: 2,
        cleanup: () => {
          void sn.close();
          containerd.stop();
          rmSync(join(work, 'root'), { recursive: true, force: true });
        },
      };
    },
  },
];
