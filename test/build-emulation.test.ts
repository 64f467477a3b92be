/**
 * RUN for another platform than the host's, as `docker buildx build --platform` runs it with QEMU: through
 * the emulator the host registered for that platform's programs (binfmt_misc, from Debian's
 * qemu-user-static and binfmt-support). The programs are Debian's static busybox of each architecture, so
 * every step runs that platform's code alone; what the steps see of the machine (`uname -m`) is the kernel's
 * answer through the emulator, and buildah, building the same context for the same platforms on the same
 * emulator, is the oracle for the trees. A 386 build on this amd64 host runs with no emulator, as BuildKit runs
 * it, where the kernel runs 32-bit x86 programs itself, and is refused saying why where it does not.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { openImages, parsePlatform, type Images } from '@strata/images';
import { emulationFor, exitingProgram, runsNatively } from '../packages/build/src/emulation.js';
import { busybox } from './helpers/busybox.js';
import { Buildah, buildWith, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';
import { diffSnapshots, type NodeRecord } from './helpers/snapshot.js';
import { chainTree } from './helpers/unpacked.js';

const DOCKERFILE = [
  'FROM scratch',
  'ARG TARGETARCH',
  'COPY busybox-$TARGETARCH /bin/busybox',
  'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
  'RUN uname -m > /machine && echo "$TARGETARCH" > /arch && mkdir -p /opt && cp /bin/busybox /opt/copied',
  '',
].join('\n');

/** A tree without times: each build runs at its own. */
function comparable(tree: Map<string, NodeRecord>): Map<string, NodeRecord> {
  const out = new Map<string, NodeRecord>();
  for (const [path, { mtimeNs: _time, ...record }] of tree) out.set(path, record);
  return out;
}

/**
 * What buildah 1.28 leaves in an image built from scratch where it bound files over RUN's tree (the mount
 * points of /etc/hosts, /etc/hostname, /etc/resolv.conf and /run); BuildKit, and strata, leave none.
 */
const BUILDAH_STUBS = ['etc', 'etc/hostname', 'etc/hosts', 'etc/resolv.conf', 'run'];

describe.skipIf(!needs('root', 'overlay', 'qemu-aarch64', 'buildah'))('RUN for another platform, through the emulator the host registered', () => {
  let work: string;
  let images: Images;
  let buildah: Buildah;
  let context: string;

  beforeAll(async () => {
    work = scratch('strata-build-emulation-');
    images = await openImages(join(work, 'root'));
    buildah = new Buildah(work);
    context = writeContext(join(work, 'context'), { Dockerfile: DOCKERFILE });
    for (const arch of ['amd64', 'arm64'] as const) copyFileSync(busybox(arch), join(context, `busybox-${arch}`));
    copyFileSync(busybox('i386'), join(context, 'busybox-386')); // Debian's i386 is the OCI platform's 386
  }, 10 * 60_000);

  afterAll(async () => {
    buildah?.close();
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** The tree of the image `ref` holds for `platform`. */
  async function treeOf(ref: string, platform: string): Promise<Map<string, NodeRecord>> {
    const unpacked = await images.unpack(ref, { platform: { platform: parsePlatform(platform) } });
    const dir = join(work, `tree-${platform.replace(/\W/g, '-')}-${Date.now()}`);
    mkdirSync(dir);
    return chainTree(images, unpacked.chainID!, dir);
  }

  it('runs an arm64 build on this amd64 host: its steps see an aarch64 machine, as in buildah on the same emulator', async () => {
    await buildWith(images, { context, platform: 'linux/arm64', tags: ['example.com/emulated:arm64'] });
    expect(images.platformImage('example.com/emulated:arm64').config).toMatchObject({ os: 'linux', architecture: 'arm64' });
    const mine = await treeOf('example.com/emulated:arm64', 'linux/arm64');
    expect(mine.get('machine')?.sha256).toBe(sha('aarch64\n'));
    expect(mine.get('arch')?.sha256).toBe(sha('arm64\n'));
    expect(mine.get('opt/copied')?.sha256).toBe(mine.get('bin/busybox')?.sha256);
    buildah.build(context, 'example.com/emulated:arm64-buildah', ['--platform', 'linux/arm64']);
    expect(buildah.config('example.com/emulated:arm64-buildah')).toBeDefined();
    const theirs = comparable(buildah.tree('example.com/emulated:arm64-buildah'));
    for (const path of BUILDAH_STUBS) {
      expect(mine.has(path), path).toBe(false);
      theirs.delete(path);
    }
    expect(diffSnapshots(theirs, comparable(mine), 40)).toEqual([]);
  }, 10 * 60_000);

  it("stands a stage on an arm64 base as arm64 when the build names no platform, as BuildKit detects one its emulators run; a build for amd64 takes it with BuildKit's finding", async () => {
    // The image of the test above is one arm64 manifest, no index.
    const dir = writeContext(join(work, 'detected'), { Dockerfile: 'FROM example.com/emulated:arm64\nRUN uname -m > /detected\n' });
    const detected = await buildWith(images, { context: dir, tags: ['example.com/detected:1'] });
    expect(detected.result.checks).toEqual([]);
    expect(images.platformImage('example.com/detected:1').config).toMatchObject({ os: 'linux', architecture: 'arm64' });
    expect((await treeOf('example.com/detected:1', 'linux/arm64')).get('detected')?.sha256).toBe(sha('aarch64\n'));
    const finding = { rule: 'InvalidBaseImagePlatform', line: 1, detail: 'Base image example.com/emulated:arm64 was pulled with platform "linux/arm64", expected "linux/amd64" for current build' };
    const asked = await buildWith(images, { context: dir, platform: 'linux/amd64', tags: ['example.com/detected:amd64'] });
    expect(asked.result.checks).toEqual([expect.objectContaining(finding)]);
    expect(asked.events.filter((e) => e.type === 'check')).toHaveLength(1);
    expect(images.platformImage('example.com/detected:amd64').config).toMatchObject({ os: 'linux', architecture: 'amd64' });
    // A platform nothing here runs (no emulator knows Windows's programs): the stage stays this host's, the
    // image keeps its base's platform (BuildKit writes a platform only where the build names one), and found.
    const windows = writeContext(join(work, 'windows'), { Dockerfile: 'FROM scratch\nCOPY a.txt /\n', 'a.txt': 'a\n' });
    await buildWith(images, { context: windows, platform: 'windows/amd64', tags: ['example.com/windows:1'] });
    const onWindows = writeContext(join(work, 'on-windows'), { Dockerfile: 'FROM example.com/windows:1\nLABEL on=windows\n' });
    const undetected = await buildWith(images, { context: onWindows, tags: ['example.com/on-windows:1'] });
    expect(undetected.result.checks).toEqual([expect.objectContaining({ ...finding, detail: 'Base image example.com/windows:1 was pulled with platform "windows/amd64", expected "linux/amd64" for current build' })]);
    expect(images.platformImage('example.com/on-windows:1').config).toMatchObject({ os: 'windows', architecture: 'amd64' });
  }, 10 * 60_000);

  it('runs a 386 build on this amd64 host with no emulator where the kernel runs 386 programs, as in buildah, and says why not where it does not', async () => {
    // The kernel is the oracle for the probe: Debian's i386 busybox runs here exactly when strata's says so.
    // Kernels built without IA32 emulation (some VMs') refuse it; no Debian package registers an emulator for
    // 386 on amd64, so there a 386 RUN cannot run, under strata as under BuildKit.
    const kernelRuns = spawnSync(busybox('i386'), ['true']).status === 0;
    if (!kernelRuns) {
      expect(runsNatively('386')).toMatch(/^this host's kernel does not run 386 programs itself/);
      expect(emulationFor({ os: 'linux', architecture: '386' })).toMatchObject({ ok: false, reason: expect.stringMatching(/no emulator for linux\/386 is registered/) });
      await expect(buildWith(images, { context, platform: 'linux/386', tags: ['example.com/emulated:386'] })).rejects.toThrow(
        /line 4: RUN for linux\/386 cannot run on this linux\/amd64 host: this host's kernel does not run 386 programs itself/,
      );
      return;
    }
    expect(runsNatively('386')).toBe(true);
    expect(emulationFor({ os: 'linux', architecture: '386' })).toEqual({ ok: true, native: true });
    await buildWith(images, { context, platform: 'linux/386', tags: ['example.com/emulated:386'] });
    expect(images.platformImage('example.com/emulated:386').config).toMatchObject({ os: 'linux', architecture: '386' });
    const mine = await treeOf('example.com/emulated:386', 'linux/386');
    expect(mine.get('machine')?.sha256).toBe(sha('x86_64\n'));
    expect(mine.get('arch')?.sha256).toBe(sha('386\n'));
    expect(mine.get('opt/copied')?.sha256).toBe(sha(readFileSync(busybox('i386'))));
    buildah.build(context, 'example.com/emulated:386-buildah', ['--platform', 'linux/386']);
    const theirs = comparable(buildah.tree('example.com/emulated:386-buildah'));
    for (const path of BUILDAH_STUBS) theirs.delete(path);
    expect(diffSnapshots(theirs, comparable(mine), 40)).toEqual([]);
  }, 10 * 60_000);

  it('the probe programs are what other loaders run: the arm one exits 0 under QEMU\'s own arm loader, the 386 one as the kernel runs i386 programs', () => {
    const dir = join(work, 'probes');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'arm'), exitingProgram('arm')!, { mode: 0o755 });
    expect(spawnSync('qemu-arm-static', [join(dir, 'arm')]).status).toBe(0);
    writeFileSync(join(dir, '386'), exitingProgram('386')!, { mode: 0o755 });
    const kernelRuns = spawnSync(busybox('i386'), ['true']).status === 0;
    expect(spawnSync(join(dir, '386')).status === 0).toBe(kernelRuns);
    // No arm64 CPU here: an arm program is not the kernel's to run, and the answer says so.
    expect(runsNatively('arm', 'arm64')).toMatch(/does not run arm programs itself/);
  });

  it('builds amd64 and arm64 at once into one index, each platform run as its own machine', async () => {
    const { result } = await buildWith(images, { context, platforms: ['linux/amd64', 'linux/arm64'], tags: ['example.com/emulated:multi'] });
    expect(result.platforms?.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64']);
    for (const [platform, machine] of [['linux/amd64', 'x86_64'], ['linux/arm64', 'aarch64']] as const) {
      const tree = await treeOf('example.com/emulated:multi', platform);
      expect(tree.get('machine')?.sha256, platform).toBe(sha(`${machine}\n`));
      // cp ran as the platform's own busybox, which it copied: each image holds its architecture's program.
      expect(tree.get('opt/copied')?.sha256, platform).toBe(sha(readFileSync(busybox(platform === 'linux/amd64' ? 'amd64' : 'arm64'))));
    }
  }, 10 * 60_000);
});

function sha(bytes: string | Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
