/**
 * RUN's resource limits and shared memory (`docker build --ulimit`, `--shm-size`): what a step sees of them
 * against what buildah gives the same step (`buildah bud --ulimit --shm-size`, run through runc as strata
 * runs it), the BuildKit default without them (the limits of the process that starts the runtime), the
 * step's key following them, and bad limits refused before anything runs.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImages, type Images } from '@strata/images';
import { busybox } from './helpers/busybox.js';
import { Buildah, buildWith, imageView, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';

/** A step writing what it sees: its open-files and core limits, and the line of /dev/shm's mount. */
const DOCKERFILE = [
  'FROM scratch',
  'COPY busybox /bin/busybox',
  'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
  "RUN ulimit -Sn > /soft; ulimit -Hn > /hard; ulimit -Sc > /core; grep ' /dev/shm ' /proc/mounts > /shm",
  '',
].join('\n');
const INSTALL = DOCKERFILE.split('\n')[2]!;
const STEP = DOCKERFILE.split('\n')[3]!;
const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');

describe.skipIf(!needs('root', 'overlay', 'buildah', 'runc'))('RUN --ulimit and --shm-size', () => {
  let work: string;
  let images: Images;
  let buildah: Buildah;
  let context: string;

  beforeAll(async () => {
    work = scratch('strata-build-limits-');
    images = await openImages(join(work, 'root'));
    buildah = new Buildah(work);
    context = writeContext(join(work, 'context'), { Dockerfile: DOCKERFILE });
    copyFileSync(busybox('amd64'), join(context, 'busybox'));
  }, 10 * 60_000);

  afterAll(async () => {
    buildah?.close();
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** What the step of image `ref` wrote. */
  async function seen(ref: string): Promise<Record<'soft' | 'hard' | 'core' | 'shm', string>> {
    const view = await imageView(images, ref);
    const read = async (name: string) => String(await view.readFile(`/${name}`, 'utf8'));
    return { soft: await read('soft'), hard: await read('hard'), core: await read('core'), shm: await read('shm') };
  }

  it('gives the step the limits and /dev/shm asked for, as buildah gives them', async () => {
    const { result, ran } = await buildWith(images, { context, ulimits: { nofile: { soft: 512, hard: 1024 }, core: { soft: -1, hard: -1 } }, shmSize: 128 * 1024 * 1024 });
    expect(ran).toContain(STEP);
    const mine = await seen(result.target.digest);
    expect(mine).toMatchObject({ soft: '512\n', hard: '1024\n', core: 'unlimited\n' });
    expect(mine.shm).toMatch(/ tmpfs [^ ]*\bsize=131072k\b/);
    buildah.run(['bud', '--quiet', '--isolation', 'oci', '--runtime', 'runc', '--ulimit', 'nofile=512:1024', '--ulimit', 'core=-1', '--shm-size', '128m', '-t', 'example.com/limits:buildah', context]);
    const container = buildah.run(['from', '--pull-never', 'example.com/limits:buildah']).trim().split('\n').at(-1)!;
    try {
      const mount = buildah.run(['mount', container]).trim();
      const theirs = Object.fromEntries(['soft', 'hard', 'core', 'shm'].map((name) => [name, readFileSync(join(mount, name), 'utf8')]));
      expect(mine).toEqual(theirs); // the /dev/shm line too: its source, type, options and size
    } finally {
      buildah.run(['rm', container]);
    }
  }, 10 * 60_000);

  it('leaves the limits to the runtime without them, as BuildKit does, and keys each step by what it is given', async () => {
    const plain = await buildWith(images, { context });
    // This process's limits, which the runtime it starts passes on; containerd's 64 MiB /dev/shm.
    const own = spawnSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).stdout.split('\n');
    const mine = await seen(plain.result.target.digest);
    expect([mine.soft, mine.hard]).toEqual([`${own[0]}\n`, `${own[1]}\n`]);
    expect(mine.shm).toMatch(/\bsize=65536k\b/);
    // The same limits again: cached. Others, or a /dev/shm size alone: each RUN runs again.
    const limits = { nofile: { soft: 512, hard: 1024 }, core: { soft: -1, hard: -1 } };
    expect((await buildWith(images, { context, ulimits: limits, shmSize: 128 * 1024 * 1024 })).ran).toEqual([]);
    expect((await buildWith(images, { context, ulimits: { ...limits, nofile: { soft: 256, hard: 1024 } }, shmSize: 128 * 1024 * 1024 })).ran).toEqual([INSTALL, STEP]);
    const shmOnly = await buildWith(images, { context, shmSize: 32 * 1024 * 1024 });
    expect(shmOnly.ran).toEqual([INSTALL, STEP]);
    expect((await seen(shmOnly.result.target.digest)).shm).toMatch(/\bsize=32768k\b/);
    expect((await buildWith(images, { context })).ran).toEqual([]); // the plain build's key is as it was
  }, 10 * 60_000);

  it('refuses a limit Docker does not take, or a soft limit over its hard one, before anything runs', async () => {
    await expect(buildWith(images, { context, ulimits: { files: { soft: 1, hard: 1 } } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/ulimit "files" is none of core, cpu/) });
    await expect(buildWith(images, { context, ulimits: { nofile: { soft: 2048, hard: 1024 } } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/soft limit 2048 is over the hard limit 1024/) });
    await expect(buildWith(images, { context, ulimits: { nofile: { soft: -1, hard: 1024 } } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(buildWith(images, { context, shmSize: 10 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('takes them from the command line as docker build does (--ulimit name=soft[:hard], --shm-size 96m)', () => {
    const run = (extra: string[]) => spawnSync(process.execPath, [cli, '--root', join(work, 'root'), 'build', '-q', ...extra, context], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    const built = run(['--ulimit', 'nofile=300:400', '--ulimit', 'nproc=2000', '--shm-size', '96m', '-t', 'example.com/limits:cli']);
    expect(built.status, built.stderr).toBe(0);
    const bad = run(['--ulimit', 'nofile=lots']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--ulimit nofile=lots: name=soft[:hard] is expected');
    return (async () => {
      const mine = await seen('example.com/limits:cli');
      expect(mine).toMatchObject({ soft: '300\n', hard: '400\n' });
      expect(mine.shm).toMatch(/\bsize=98304k\b/);
    })();
  }, 120_000);
});
