// `node steady-apply.mjs <layer> <dir-prefix> [n]`: n applies of one layer in one process (into <dir-prefix>0,
// 1, …, which must not exist), each printed as its milliseconds and this process's user and system CPU
// milliseconds: how an apply settles once V8 has compiled its code (the embedded form), for a profiler to
// watch (`perf record -g`, with `node --perf-basic-prof`). The directories are left for the caller.
import { applyLayer } from '@strata/core';

const [layer, prefix, count = '8'] = process.argv.slice(2);
for (let i = 0; i < Number(count); i++) {
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await applyLayer(layer, `${prefix}${i}`);
  const { user, system } = process.cpuUsage(cpu);
  console.log((Number(process.hrtime.bigint() - started) / 1e6).toFixed(1), (user / 1e3).toFixed(0), (system / 1e3).toFixed(0));
}
