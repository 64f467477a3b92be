import { diffUpper, HostLayer, writeChanges } from '@strata/core';
const [upper, lower, out, mode] = process.argv.slice(2);
const lowers = mode === 'none' ? [] : [new HostLayer(lower)];
const cpu = process.cpuUsage();
const started = process.hrtime.bigint();
if (mode === 'walk') { let n = 0; for (const c of diffUpper(lowers, upper)) n++; }
else await writeChanges(diffUpper(lowers, upper), out);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const { user, system } = process.cpuUsage(cpu);
console.log(mode, seconds.toFixed(3), ((user + system) / 1e6).toFixed(3));
