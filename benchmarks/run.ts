/**
 * The benchmark harness: `pnpm bench [name...] [--tiny] [--runs N]`.
 *
 * Every benchmark times strata and its peers as whole commands in the same run, alternating them, and
 * reports medians (with min and max), CPU time, peak RSS and the strata/peer ratio. Before each run of a
 * write-heavy benchmark the page cache is dropped and the inputs and the command's program re-read, because
 * this VM's write timings otherwise swing 10×. Results go to benchmarks/results/<stamp>.json and latest.md.
 *
 * `--tiny` runs every benchmark once on small inputs: the CI smoke test that keeps the harness alive.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchmarks as fileBenchmarks, type Benchmark, type Case, type CommandCase } from './suite.js';
import { mergedBenchmarks } from './merged.js';
import { diffBenchmarks } from './diff.js';
import { snapshotBenchmarks } from './snapshots.js';
import { imageBenchmarks } from './images.js';
import { registryBenchmarks } from './registry.js';
import { buildBenchmarks } from './build.js';
import { eventLoopBenchmarks } from './event-loop.js';

const benchmarks = [...fileBenchmarks, ...mergedBenchmarks, ...diffBenchmarks, ...snapshotBenchmarks, ...imageBenchmarks, ...eventLoopBenchmarks, ...registryBenchmarks, ...buildBenchmarks];
import { prepareInputs, type Inputs, type Tree } from './inputs.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { tiny: { type: 'boolean' }, runs: { type: 'string' }, out: { type: 'string' } },
});
const tiny = values.tiny ?? false;
const runs = Number(values.runs ?? (tiny ? 1 : 5));
const resultsDir = values.out ?? join(import.meta.dirname, 'results');
const isRoot = process.getuid?.() === 0;

interface Sample {
  seconds: number;
  /** User + system time of every thread of the process (and of its children, for a command). */
  cpuSeconds: number;
  maxRssKiB: number;
}

interface CaseResult {
  label: string;
  command: string;
  median: number;
  min: number;
  max: number;
  /** Median CPU seconds. */
  cpu: number;
  maxRssKiB: number;
}

function dropCaches(): void {
  if (!isRoot) return;
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

/**
 * Re-reads inputs after a cache drop, so runs measure writing, not a cold read of the input. Through a
 * pipe: GNU tar writing straight to /dev/null skips reading file contents, which left every input's data
 * cold.
 */
function warm(paths: string[]): void {
  for (const p of paths) spawnSync('sh', ['-c', 'tar -cf - -C "$(dirname "$1")" "$(basename "$1")" 2>/dev/null | cat > /dev/null', 'sh', p]);
}

/**
 * The files a command's program is made of: its executable, the shared libraries it loads and, for an
 * interpreter, the script it runs. A cache drop evicts them too, and re-reading them is not the job being
 * measured: a 100 MB Node binary pays 80–150 ms to page in, a 500 KB tar almost nothing (and the input
 * warm-up above runs tar, so its binary was always warm).
 */
function programFiles(command: string[]): string[] {
  const which = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command[0]!], { encoding: 'utf8' });
  const executable = which.stdout.trim();
  if (!executable.startsWith('/')) return [];
  const ldd = spawnSync('ldd', [executable], { encoding: 'utf8' });
  const libraries = [...(ldd.stdout ?? '').matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
  const script = command[1] !== undefined && /\.[cm]?js$/.test(command[1]) ? [command[1]] : [];
  // strata's executable runs the bundles beside it (the command's, and the root libraries'), through the code cache beside them.
  const loaded = script.flatMap((file) => readdirSync(dirname(file)).filter((name) => /^strata-(command|root)\.cjs$|^strata-command\.v8cache$/.test(name)).map((name) => join(dirname(file), name)));
  return [executable, ...libraries, ...script, ...loaded];
}

/**
 * The files this process has mapped (node, its libraries, native addons such as lmdb's and strata's): what an
 * in-process case runs on. A cache drop evicts them as it does a command's program, and paging them back in
 * is not the job being measured either.
 */
function ownProgramFiles(): string[] {
  const maps = readFileSync('/proc/self/maps', 'utf8');
  const paths = [...maps.matchAll(/ (\/[^\n]+)$/gm)].map((m) => m[1]!).filter((p) => !p.startsWith('/dev/') && !p.endsWith(' (deleted)') && existsSync(p));
  return [...new Set(paths)];
}

/**
 * The environment every timed command runs in: this one, less NODE_EXTRA_CA_CERTS. With it set (as on these
 * VMs) Node parses the whole CA bundle at start-up, 50–100 ms that a Node program pays whether or not it ever
 * opens a TLS connection; strata's commands never do, and no peer here is a Node program.
 */
const commandEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'NODE_EXTRA_CA_CERTS'));

class CommandFailed extends Error {
  constructor(
    command: string[],
    status: number | null,
    readonly stderr: string,
  ) {
    super(`benchmark command failed (${status}): ${command.join(' ')}\n${stderr}`);
  }
}

/** Most runs of one timed command, the first included, when its failures are ones it may retry. */
const ATTEMPTS = 3;

/**
 * Times a command; a probe's time is the one it prints last, not its whole run, and so is its CPU time (the
 * second figure on that line). A command's CPU time is its own and its children's, as `time` reports them
 * (10 ms steps).
 */
function timeCommand(command: string[], probe = false): Sample {
  const usage = join(tmpdir(), `strata-bench-usage-${process.pid}`);
  const started = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', usage, ...command], { stdio: ['ignore', probe ? 'pipe' : 'ignore', 'pipe'], env: commandEnv, encoding: 'utf8' });
  let seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) {
    rmSync(usage, { force: true });
    throw new CommandFailed(command, r.status, r.stderr);
  }
  const [maxRssKiB, user, system] = readFileSync(usage, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  rmSync(usage, { force: true });
  let cpuSeconds = user! + system!;
  if (probe) {
    [seconds, cpuSeconds] = r.stdout.trim().split('\n').pop()!.split(' ').map(Number) as [number, number];
    if (!(seconds > 0) || !(cpuSeconds >= 0)) throw new Error(`benchmark probe printed no time and CPU time: ${command.join(' ')}\n${r.stdout}`);
  }
  return { seconds, cpuSeconds, maxRssKiB: maxRssKiB! };
}

/** Times a command case, run again from `prepare` after a failure its `retryWhen` calls passing. */
function timeCommandCase(c: CommandCase, prepare: () => void): Sample {
  for (let attempt = 1; ; attempt++) {
    try {
      return timeCommand(c.command);
    } catch (error) {
      if (!(error instanceof CommandFailed) || attempt === ATTEMPTS || c.retryWhen?.(error.stderr) !== true) throw error;
      process.stderr.write(`  ${c.label}: a passing failure of ${c.command[0]}'s own, run again\n`);
      prepare();
    }
  }
}

/** Times a function in this process; CPU time and peak RSS are the process's own (all its threads). */
async function timeInline(run: () => unknown): Promise<Sample> {
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { user, system } = process.cpuUsage(cpu);
  return { seconds, cpuSeconds: (user + system) / 1e6, maxRssKiB: process.resourceUsage().maxRSS };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function runBenchmark(bench: Benchmark, tree: Tree, inputs: Inputs): Promise<{ name: string; description: string; cases: CaseResult[]; ratios: Record<string, number>; notes: string[] }> {
  const name = bench.once ? bench.name : `${bench.name}/${tree.name}`;
  const work = join(inputs.scratch.dir, name.replace('/', '-'));
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const plan = await bench.plan(tree, work);
  const samples = new Map<string, Sample[]>(plan.cases.map((c) => [c.label, []]));
  for (const c of plan.cases) {
    if (!('run' in c)) continue;
    for (let i = 0; i < (plan.warmup ?? 0); i++) {
      plan.reset?.();
      await c.run();
    }
  }
  for (let run = 0; run < runs; run++) {
    // Alternate the order each run so neither side always goes first after a cache drop.
    const order = run % 2 === 0 ? plan.cases : [...plan.cases].reverse();
    for (const c of order) {
      const prepare = () => {
        plan.reset?.();
        if (!plan.writeHeavy) return;
        dropCaches();
        warm(plan.inputs);
        if ('command' in c) warm(programFiles(c.command));
        if ('probe' in c) warm(programFiles(c.probe));
        if ('run' in c) spawnSync('cat', ownProgramFiles(), { stdio: 'ignore' });
      };
      prepare();
      samples.get(c.label)!.push('command' in c ? timeCommandCase(c, prepare) : 'probe' in c ? timeCommand(c.probe, true) : await timeInline(c.run));
    }
  }
  const cases = plan.cases.map((c) => {
    const s = samples.get(c.label)!;
    const secs = s.map((x) => x.seconds);
    const cpu = median(s.map((x) => x.cpuSeconds));
    return { label: c.label, command: 'command' in c ? c.command.join(' ') : 'probe' in c ? `${c.probe.join(' ')} (its own time)` : '(in process)', median: median(secs), min: Math.min(...secs), max: Math.max(...secs), cpu, maxRssKiB: Math.max(...s.map((x) => x.maxRssKiB)) };
  });
  const strata = cases.find((c) => c.label === 'strata')!;
  const ratios = Object.fromEntries(cases.filter((c) => c !== strata).map((c) => [c.label, strata.median / c.median]));
  const hashStart = plan.hashFloor === undefined ? undefined : startOf(plan.cases, plan.hashFloor);
  const strataCase = plan.cases.find((c) => c.label === 'strata');
  const nodeStart = strataCase !== undefined && 'command' in strataCase && strataCase.command[0] === process.execPath ? medianSeconds([process.execPath, '-e', '0']) : undefined;
  plan.reset?.();
  plan.cleanup?.();
  rmSync(work, { recursive: true, force: true });
  const floors = [
    ...(plan.sameWork === undefined ? [] : [cpuFloor(cases, plan.sameWork)]),
    ...(plan.hashFloor === undefined ? [] : [hashFloor(cases, plan.hashFloor, hashStart!)]),
    ...(nodeStart === undefined ? [] : [nodeStartNote(cases, nodeStart)]),
  ];
  return { name, description: plan.description, cases, ratios, notes: [...floors, ...(plan.notes?.() ?? [])] };
}

/**
 * The seconds the command of the case labelled `label` takes on an empty input (its last argument replaced by
 * /dev/null, warm, median of 21): its process's own start, which a library call does not pay.
 */
function startOf(plannedCases: Case[], label: string): number {
  const c = plannedCases.find((x) => x.label === label);
  if (c === undefined || !('command' in c)) throw new Error(`no command case ${label}`);
  return medianSeconds([...c.command.slice(0, -1), '/dev/null']);
}

/** The median seconds of 21 warm runs of `command`. */
const medianSeconds = (command: string[]) => median(Array.from({ length: 21 }, () => timeCommand(command).seconds));

/**
 * What Node's own start (`node -e 0`, warm, timed in the same block) is of the peer's time, and what strata's
 * command took beyond it: a command written for Node pays that start before its first line, so a target for
 * the CLI below the peer's time plus Node's start asks for less than nothing of strata's own work.
 */
function nodeStartNote(cases: CaseResult[], start: number): string {
  const strata = cases.find((c) => c.label === 'strata')!;
  // The first peer that is not strata on other inputs (diff-upper-base-growth's).
  const first = cases.find((c) => !c.label.startsWith('strata'))!;
  const beyond = strata.median - start;
  return (
    `Node's start: \`node -e 0\` takes ${start.toFixed(3)} s, ${(start / first.median).toFixed(2)}× \`${first.label}\`, before a command's first line; ` +
    `strata's command beyond it took ${beyond.toFixed(3)} s, ${(beyond / first.median).toFixed(2)}× \`${first.label}\`.`
  );
}

/**
 * How soon any writer that gives the layer's diffID can finish: SHA-256 is serial, so not before the hash of
 * the whole layer, which the peer labelled `hashOnly` does alone, less that peer's own start (`start`). The
 * figure a writer's target ratio has to be checked against, beside the CPU floor.
 */
function hashFloor(cases: CaseResult[], hashOnly: string, start: number): string {
  const hash = cases.find((c) => c.label === hashOnly);
  const strata = cases.find((c) => c.label === 'strata')!;
  const first = cases.find((c) => c !== strata)!;
  if (hash === undefined) throw new Error(`no case ${hashOnly}`);
  const floor = hash.median - start;
  const head = `Hash floor: \`${hashOnly}\` (the layer read back from the page cache and hashed, as strata's hashing thread does) takes ${hash.median.toFixed(3)} s, ${(start * 1000).toFixed(1)} ms of it its own start (on an empty input)`;
  // A layer hashed faster than the noise of a process's start (the smoke run's) has no floor to report.
  if (floor <= 0) return `${head}: the hash of so small a layer is lost in that start's noise.`;
  return (
    `${head}: ${floor.toFixed(3)} s, ${(floor / first.median).toFixed(2)}× \`${first.label}\`; ` +
    `a writer that gives the diffID cannot finish sooner. strata took ${strata.median.toFixed(3)} s, ${(strata.median / floor).toFixed(2)}× it.`
  );
}

/**
 * How fast this machine lets any program do the work of the peers labelled `sameWork` (together doing what
 * strata does, hashing included): their CPU time spread perfectly over every core. The figure a target ratio
 * has to be checked against: below it, a program would have to do that work in less CPU than the peers.
 */
function cpuFloor(cases: CaseResult[], sameWork: readonly string[]): string {
  const peers = sameWork.map((label) => {
    const peer = cases.find((c) => c.label === label);
    if (peer === undefined) throw new Error(`no case ${label}`);
    return peer;
  });
  const strata = cases.find((c) => c.label === 'strata')!;
  const first = cases.find((c) => c !== strata)!;
  const cpu = peers.reduce((sum, p) => sum + p.cpu, 0);
  const cores = availableParallelism();
  const floor = cpu / cores;
  return (
    `CPU floor: ${sameWork.map((l) => `\`${l}\``).join(' and ')} take${sameWork.length === 1 ? 's' : ''} ${cpu.toFixed(2)} s of CPU; spread over ${cores} cores that is ${floor.toFixed(3)} s, ` +
    `${(floor / first.median).toFixed(2)}× \`${first.label}\`; to go below it a program would have to spend less CPU on that work than the peers do. strata took ${strata.cpu.toFixed(2)} s of CPU.`
  );
}

async function main(): Promise<void> {
  const selected = positionals.length > 0 ? benchmarks.filter((b) => positionals.some((p) => b.name.startsWith(p))) : benchmarks;
  if (selected.length === 0) throw new Error(`no benchmark matches ${positionals.join(', ')}; have: ${benchmarks.map((b) => b.name).join(', ')}`);
  const inputs = await prepareInputs({ tiny });
  const results = [];
  for (const bench of selected) {
    for (const tree of bench.once ? inputs.trees.slice(0, 1) : inputs.trees) {
      process.stderr.write(`bench ${bench.name}/${tree.name} (${runs} run${runs === 1 ? '' : 's'})\n`);
      results.push(await runBenchmark(bench, tree, inputs));
    }
  }
  const rows = results.flatMap((r) =>
    r.cases.map((c) => {
      const ratio = c.label === 'strata' ? '' : `${r.ratios[c.label]!.toFixed(2)}×`;
      return `| ${r.name} | ${c.label} | ${c.median.toFixed(3)} | ${c.min.toFixed(3)}–${c.max.toFixed(3)} | ${c.cpu.toFixed(2)} | ${(c.maxRssKiB / 1024).toFixed(0)} | ${ratio} |`;
    }),
  );
  const table = [
    `strata benchmarks, ${new Date().toISOString()}, ${runs} run(s)${tiny ? ', tiny inputs (smoke test)' : ''}`,
    '',
    '| benchmark | command | median s | min–max s | CPU s | peak RSS MiB | strata / peer |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    ...results.flatMap((r) => [`- ${r.name}: ${r.description}`, ...r.notes.map((n) => `  - ${n}`)]),
  ].join('\n');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(resultsDir, `${stamp}.json`), JSON.stringify({ runs, tiny, results }, null, 2));
  writeFileSync(join(resultsDir, 'latest.md'), `${table}\n`);
  writeFileSync(join(resultsDir, 'latest.json'), JSON.stringify({ runs, tiny, results }, null, 2));
  process.stdout.write(`${table}\n`);
  inputs.scratch.release();
}

await main();
