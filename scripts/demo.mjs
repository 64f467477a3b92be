// The embedded default job: pack a real directory into a layer, apply it to a fresh directory, pack that
// again, and show that both layers have the same diffID (the round trip is exact and deterministic).
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyLayer, packDirectory } from '@strata/core';

const source = process.argv[2] ?? ['/usr/share/zoneinfo', '/etc'].find((dir) => existsSync(dir));
const work = await mkdtemp(join(tmpdir(), 'strata-demo-'));
try {
  const layer = join(work, 'layer.tar.gz');
  const started = performance.now();
  const packed = await packDirectory(source, layer, { compression: 'gzip', onWarning: (m, p) => console.warn(`warning: ${p}: ${m}`) });
  console.log(`packed   ${source} -> ${packed.size} bytes gzip (${packed.uncompressedSize} uncompressed)`);
  console.log(`  diffID ${packed.diffID}`);
  console.log(`  digest ${packed.digest}`);
  const target = join(work, 'rootfs');
  const applied = await applyLayer(layer, target);
  console.log(`applied  ${applied.entries} entries -> ${target}`);
  const again = await packDirectory(target, join(work, 'again.tar'));
  console.log(`repacked diffID ${again.diffID}`);
  const same = again.diffID === packed.diffID;
  console.log(same ? `round trip exact (${Math.round(performance.now() - started)} ms)` : 'round trip DIFFERS');
  process.exitCode = same ? 0 : 1;
} finally {
  await rm(work, { recursive: true, force: true });
}
