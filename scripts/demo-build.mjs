// The second demo: a real Dockerfile (examples/site: two stages, RUN, COPY --from --chown, USER) built into a
// fresh root, then built again to show the cache, with nothing to start by hand. The base image is a Debian
// minbase root filesystem (debootstrap, made once and kept in /var/cache/strata), itself turned into an
// image by a strata build (`FROM scratch`, `ADD rootfs.tar /`). RUN goes through runc on kernel overlay
// mounts, so this demo runs as root (as scripts/setup.sh does).
//   pnpm -s demo:build
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from '@strata/build';
import { packDirectory } from '@strata/core';
import { openImages } from '@strata/images';

const say = (what, text) => console.log(`${what.padEnd(10)}${text}`);
const short = (digest) => `${digest.slice(0, 19)}…`;
const started = performance.now();

if (process.getuid?.() !== 0) {
  console.error('demo:build runs RUN steps through runc on kernel overlay mounts: run it as root');
  process.exit(1);
}

/** A Debian minbase root filesystem, made once with debootstrap (shared with the tests and benchmarks). */
function minbase() {
  const cache = process.env.STRATA_BENCH_CACHE ?? '/var/cache/strata';
  const dir = join(cache, 'minbase');
  if (existsSync(join(dir, 'etc/os-release'))) return dir;
  say('debootstrap', 'a Debian bookworm minbase, once (a few minutes)…');
  mkdirSync(cache, { recursive: true });
  rmSync(`${dir}.tmp`, { recursive: true, force: true });
  execFileSync('debootstrap', ['--variant=minbase', 'bookworm', `${dir}.tmp`, 'http://deb.debian.org/debian'], { stdio: ['ignore', 'ignore', 'inherit'] });
  renameSync(`${dir}.tmp`, dir);
  return dir;
}

const work = await mkdtemp(join(tmpdir(), 'strata-demo-build-'));
const images = await openImages(join(work, 'root'));
const show = (event) => {
  if (event.type === 'step') process.stdout.write(`  [${event.step}/${event.total}] ${event.instruction.split('\n')[0]}\n`);
  else if (event.type === 'output') process.stdout.write(event.data.toString().replace(/^/gm, '      '));
  else if (event.layer !== null) process.stdout.write(`  [${event.step}/${event.total}] ${event.cached ? 'CACHED' : `done in ${event.seconds.toFixed(2)}s`}\n`);
};
try {
  const baseContext = join(work, 'base');
  mkdirSync(baseContext);
  const rootfs = await packDirectory(minbase(), join(baseContext, 'rootfs.tar'));
  writeFileSync(join(baseContext, 'Dockerfile'), 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n');
  const base = await build(images, { context: baseContext, tags: ['example.com/debian:minbase'] });
  say('base', `example.com/debian:minbase ${short(base.target.digest)} from a ${Math.round(rootfs.size / 1e6)} MB layer of minbase (FROM scratch, ADD rootfs.tar /)`);

  const context = join(import.meta.dirname, '..', 'examples', 'site');
  say('build', `examples/site/Dockerfile`);
  const first = await build(images, { context, tags: ['example.com/site:1'], onEvent: show });
  say('built', `example.com/site:1 ${short(first.target.digest)}: ${first.ran} steps ran`);

  say('rebuild', 'the same Dockerfile and context');
  const again = await build(images, { context, tags: ['example.com/site:1'], onEvent: show });
  say('built', `${again.ran} steps ran, ${again.cached} came from the cache`);

  const details = images.inspect('example.com/site:1');
  say('config', `user ${details.config.config.User}, workdir ${details.config.config.WorkingDir}, cmd ${JSON.stringify(details.config.config.Cmd)}, ${details.layers.length} layers`);
  for (const step of images.history('example.com/site:1').slice(0, 6)) say('', `history: ${step.layer ? `${step.size} bytes` : 'no layer'}  ${step.created_by}`);
  const view = await images.snapshotter.open((await images.unpack('example.com/site:1')).chainID);
  const page = await view.readFile('/srv/www/index.html', 'utf8');
  const owner = await view.stat('/srv/www/index.html');
  say('tree', `/srv/www/index.html (uid ${owner.uid}): ${JSON.stringify(page.trim())}`);
  say('done', `${Math.round(performance.now() - started)} ms`);
} finally {
  await images.close();
  await rm(work, { recursive: true, force: true });
}
