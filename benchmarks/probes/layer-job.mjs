// `node layer-job.mjs apply <layer> <dir>` | `pack <dir> <out>` | `digest <layer>`: one layer job in a fresh
// process, printing the seconds it took and the CPU seconds of all its threads, with module loading left
// out: the first layer an image builder or puller handles, before V8 has compiled anything hot.
import { applyLayer, digestLayer, packDirectory } from '@strata/core';

const [job, a, b] = process.argv.slice(2);
const jobs = {
  apply: () => applyLayer(a, b),
  pack: () => packDirectory(a, b),
  digest: () => digestLayer(a),
};
if (!(job in jobs)) throw new Error(`unknown job ${job}`);
const cpu = process.cpuUsage();
const started = process.hrtime.bigint();
await jobs[job]();
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const { user, system } = process.cpuUsage(cpu);
console.log(seconds, (user + system) / 1e6);
