// `node diff-upper.mjs <upper> <lower> <out>`: writes the upper's change as a layer in a fresh process and
// prints the seconds that took and the CPU seconds of all its threads, module loading left out: the first
// layer an image builder writes, before V8 has compiled anything hot.
import { diffUpper, HostLayer, writeChanges } from '@strata/core';

const [upper, lower, out] = process.argv.slice(2);
const cpu = process.cpuUsage();
const started = process.hrtime.bigint();
await writeChanges(diffUpper([new HostLayer(lower)], upper), out);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const { user, system } = process.cpuUsage(cpu);
console.log(seconds, (user + system) / 1e6);
