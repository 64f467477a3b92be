// `node diff-upper.mjs <upper> <lower> <out>`: writes the upper's change as a layer in a fresh process and
// prints the seconds that took, module loading left out: the first layer an image builder writes, before
// V8 has compiled anything hot.
import { diffUpper, HostLayer, writeChanges } from '@strata/core';

const [upper, lower, out] = process.argv.slice(2);
const started = process.hrtime.bigint();
await writeChanges(diffUpper([new HostLayer(lower)], upper), out);
console.log(Number(process.hrtime.bigint() - started) / 1e9);
