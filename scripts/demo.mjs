// The embedded default job, with nothing to start by hand: the image workflow end to end on a fresh root (an
// embedded LMDB database, no daemon). An image that umoci builds from a real directory is imported and
// unpacked; a container is made from it and changed through strata's userspace view (no privileges needed);
// the container is committed as a new image, exported as a docker archive and an OCI layout, and the export
// is loaded into a second root to show the change came through; then the root is collected and checked.
//   pnpm -s demo [directory]
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openImages } from '@strata/images';

const source = process.argv[2] ?? ['/usr/share/zoneinfo', '/etc'].find((dir) => existsSync(dir));
const work = await mkdtemp(join(tmpdir(), 'strata-demo-'));
const started = performance.now();
const say = (what, text) => console.log(`${what.padEnd(10)}${text}`);
const short = (digest) => `${digest.slice(0, 19)}…`;

/** An OCI layout with one image of `dir`, made by umoci (not by strata). */
function umociImage(dir, layout) {
  const rootless = process.getuid?.() === 0 ? [] : ['--rootless'];
  const umoci = (...args) => execFileSync('umoci', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  umoci('init', '--layout', layout);
  umoci('new', '--image', `${layout}:1.0`);
  const bundle = join(work, 'bundle');
  umoci('unpack', ...rootless, '--image', `${layout}:1.0`, bundle);
  execFileSync('cp', ['-a', `${dir}/.`, join(bundle, 'rootfs')]);
  umoci('repack', ...rootless, '--image', `${layout}:1.0`, bundle);
}

const images = await openImages(join(work, 'root'), { driver: 'userspace' });
const second = await openImages(join(work, 'second-root'), { driver: 'userspace' });
try {
  const layout = join(work, 'layout');
  umociImage(source, layout);
  say('built', `an OCI layout of ${source} with umoci`);

  const imported = await images.import(layout, { name: 'example.com/demo' });
  const [name] = imported.images.map((i) => i.name); // example.com/demo:1.0, the layout's tag on the name given
  say('imported', `${name} (${imported.blobs} blobs, ${imported.bytes} bytes)`);
  const unpacked = await images.unpack(name);
  say('unpacked', `into snapshot ${short(unpacked.chainID)} (named by its chainID)`);

  // A container: an active snapshot on the image, changed through its copy-on-write view.
  await images.createContainer(name, 'web');
  const rootfs = await images.openContainer('web');
  await rootfs.writeFile('/hello.txt', 'hello from a strata container\n');
  const first = (await rootfs.readdir('/')).find((entry) => entry !== 'hello.txt');
  if (first !== undefined) await rootfs.rm(`/${first}`, { recursive: true });
  say('changed', `container web: wrote /hello.txt, removed /${first}`);

  const committed = await images.commit('web', 'example.com/demo:web', { message: 'hello', author: 'strata demo' });
  say('committed', `example.com/demo:web ${short(committed.target.digest)}, new layer ${committed.layer.size} bytes gzip`);
  for (const step of images.history('example.com/demo:web')) say('', `history: ${step.created}  ${step.size} bytes  ${step.comment ?? step.created_by ?? ''}`);

  const archive = join(work, 'demo-web.docker.tar');
  await images.export(['example.com/demo:web'], archive, { format: 'docker' });
  await images.export(['example.com/demo:web'], join(work, 'demo-web.oci'), { format: 'oci' });
  say('exported', `a docker archive (docker load, podman load) and an OCI layout (skopeo, umoci)`);

  await second.import(archive);
  const loaded = await second.unpack('example.com/demo:web');
  const view = await second.snapshotter.open(loaded.chainID);
  say('loaded', `the docker archive into a second root: /hello.txt says ${JSON.stringify((await view.readFile('/hello.txt')).toString())}`);

  await images.removeContainer('web');
  images.removeImages([name]);
  const freed = await images.gc();
  say('collected', `${freed.blobs.length} blobs, ${freed.snapshots.length} snapshots, ${freed.bytes} bytes no image needs any more`);
  const fsck = await images.fsck({ content: true });
  say('fsck', fsck.ok ? `ok (${fsck.blobs} blobs re-hashed, ${fsck.images} images), ${Math.round(performance.now() - started)} ms` : JSON.stringify(fsck.problems));
  process.exitCode = fsck.ok ? 0 : 1;
} finally {
  await images.close();
  await second.close();
  await rm(work, { recursive: true, force: true });
}
