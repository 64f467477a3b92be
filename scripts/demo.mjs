// The embedded default job, with nothing to start by hand: pack a real directory into a layer, apply it into
// a snapshot of a fresh snapshotter root (an embedded LMDB database), commit it, run a "container" on it
// (an active snapshot changed through strata's userspace view, no privileges needed), and commit that
// container's change as a new layer, read from its upper directory alone.
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyLayer, packDirectory } from '@strata/core';
import { openSnapshotter } from '@strata/snapshotter';

const source = process.argv[2] ?? ['/usr/share/zoneinfo', '/etc'].find((dir) => existsSync(dir));
const work = await mkdtemp(join(tmpdir(), 'strata-demo-'));
const started = performance.now();
const sn = await openSnapshotter(join(work, 'root'), { driver: 'userspace' });
try {
  const layer = join(work, 'base.tar.gz');
  const packed = await packDirectory(source, layer, { compression: 'gzip', onWarning: (m, p) => console.warn(`warning: ${p}: ${m}`) });
  console.log(`packed    ${source} -> ${packed.size} bytes gzip (${packed.uncompressedSize} uncompressed)`);
  console.log(`  diffID  ${packed.diffID}`);

  // Unpack: the layer goes into the upper directory of an active snapshot, in overlay layout, then is committed.
  const [mount] = await sn.prepare('unpack-base');
  const applied = await applyLayer(layer, mount.source, { layout: 'overlay' });
  await sn.commit(packed.diffID, 'unpack-base');
  console.log(`unpacked  ${applied.entries} entries into snapshot ${packed.diffID.slice(0, 19)}…`);

  // A container: an active snapshot on the base, changed through its copy-on-write view.
  await sn.prepare('container', packed.diffID);
  const rootfs = await sn.open('container');
  await rootfs.writeFile('/hello.txt', 'hello from strata\n');
  const first = (await rootfs.readdir('/'))[0];
  if (first !== undefined) await rootfs.rm(`/${first}`, { recursive: true });
  const change = await sn.commit('container-image', 'container', { layer: { path: join(work, 'change.tar.gz'), compression: 'gzip' } });
  console.log(`committed the container's change: ${change.size} bytes gzip, diffID ${change.diffID}`);
  const usage = await sn.usage('container-image');
  console.log(`  its own layer on disk: ${usage.size} bytes, ${usage.inodes} inodes (the base is shared, not copied)`);

  const listed = [];
  await sn.walk((info) => void listed.push(`${info.name.slice(0, 19)}${info.name.length > 19 ? '…' : ''} (${info.kind})`));
  console.log(`snapshots ${listed.join(', ')}`);
  const fsck = await sn.fsck();
  console.log(fsck.ok ? `fsck ok, ${Math.round(performance.now() - started)} ms` : `fsck: ${JSON.stringify(fsck.problems)}`);
  process.exitCode = fsck.ok ? 0 : 1;
} finally {
  await sn.close();
  await rm(work, { recursive: true, force: true });
}
