/**
 * Images against the real tools: a two-layer image built with umoci (the minbase root filesystem, then the
 * `apt-get install` change) and the same image as skopeo writes a docker save archive both import into
 * strata and unpack to the tree `umoci unpack` gives; strata's exports in all three formats are read by
 * skopeo, umoci and podman and give that tree again; podman's own archives import; and a container
 * changed through a kernel mount, or through the userspace driver, commits to an image umoci unpacks with
 * the change.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLayer } from '@strata/core';
import { openImages, type Images } from '@strata/images';
import { aptImage, type AptImage } from '../benchmarks/inputs.js';
import { needs } from './helpers/oracle.js';
import { diffSnapshots, snapshotTree, type NodeRecord } from './helpers/snapshot.js';
import { chainTree, picture } from './helpers/unpacked.js';

const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 }).toString();

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'podman', 'debootstrap'))('images against umoci, skopeo and podman', () => {
  let work: string;
  let apt: AptImage;
  let expected: Map<string, NodeRecord>;
  let podmanArgs: string[];

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-images-oracles-'));
    apt = aptImage(); // built once per machine, then cached
    run('umoci', ['unpack', '--image', `${apt.layout}:apt`, join(work, 'umoci-bundle')]);
    expected = picture(join(work, 'umoci-bundle', 'rootfs'));
    podmanArgs = ['--root', join(work, 'podman', 'root'), '--runroot', join(work, 'podman', 'run'), '--storage-driver', 'overlay'];
  }, 30 * 60_000);
  afterAll(() => {
    try {
      run('podman', [...podmanArgs, 'image', 'unmount', '--all']);
    } catch {
      // nothing mounted
    }
    rmSync(work, { recursive: true, force: true });
  });

  /** The tree of `ref` unpacked in `images`, through a kernel mount of a view of its chain. */
  async function unpackedTree(images: Images, ref: string): Promise<Map<string, NodeRecord>> {
    return chainTree(images, (await images.unpack(ref)).chainID!, work);
  }

  async function withRoot<T>(name: string, fn: (images: Images) => Promise<T>, driver: 'overlay' | 'userspace' = 'overlay'): Promise<T> {
    const images = await openImages(join(work, name), { driver });
    try {
      return await fn(images);
    } finally {
      await images.close();
    }
  }

  /** A layer's entries by path: owner, mode and xattr names. */
  async function layerEntries(layer: string): Promise<Map<string, { uid: number; gid: number; mode: number; xattrs: string[] }>> {
    const entries = new Map<string, { uid: number; gid: number; mode: number; xattrs: string[] }>();
    for await (const { entry } of readLayer(layer)) entries.set(entry.path, { uid: entry.uid, gid: entry.gid, mode: entry.mode, xattrs: [...entry.xattrs.keys()] });
    return entries;
  }

  /** The path of the last layer of the image tagged `tag` in the OCI layout at `layout`. */
  function lastLayer(layout: string, tag: string): string {
    const blob = (digest: string) => join(layout, 'blobs', ...digest.split(':'));
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    const manifest = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)!;
    const layers = (JSON.parse(readFileSync(blob(manifest.digest), 'utf8')) as { layers: { digest: string }[] }).layers;
    return blob(layers.at(-1)!.digest);
  }

  /** The tree umoci unpacks from an OCI layout. */
  function umociTree(layout: string, tag: string): Map<string, NodeRecord> {
    const bundle = mkdtempSync(join(work, 'bundle-'));
    rmSync(bundle, { recursive: true });
    run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
    return picture(join(bundle, 'rootfs'));
  }

  it("imports umoci's layout and skopeo's docker archive, each unpacking to umoci's tree", async () => {
    expect(expected.size).toBeGreaterThan(5000);
    await withRoot('from-layout', async (images) => {
      const result = await images.import(apt.layout, { name: 'example.com/apt' });
      expect(result.images.map((i) => i.name).sort()).toEqual(['example.com/apt:apt', 'example.com/apt:base']);
      expect(diffSnapshots(expected, await unpackedTree(images, 'example.com/apt:apt'))).toEqual([]);
    });
    await withRoot('from-docker', async (images) => {
      const result = await images.import(apt.dockerArchive);
      expect(result.images.map((i) => i.name)).toEqual(['example.com/apt:latest']);
      expect(diffSnapshots(expected, await unpackedTree(images, 'example.com/apt:latest'))).toEqual([]);
    });
  });

  it('exports in three formats that skopeo, umoci and podman read, to the same tree', async () => {
    const out = join(work, 'exports');
    mkdirSync(out);
    await withRoot('from-layout', async (images) => {
      await images.export(['example.com/apt:apt'], join(out, 'oci'), { format: 'oci' });
      await images.export(['example.com/apt:apt'], join(out, 'oci.tar'), { format: 'oci-archive' });
      await images.export(['example.com/apt:apt'], join(out, 'docker.tar'), { format: 'docker' });
    });
    // umoci reads the layout as written (its tag is the name's tag).
    expect(diffSnapshots(expected, umociTree(join(out, 'oci'), 'apt'))).toEqual([]);
    // skopeo reads all three, and umoci unpacks what it copied.
    for (const [transport, source] of [
      ['oci', `${join(out, 'oci')}:apt`],
      ['oci-archive', join(out, 'oci.tar')],
      ['docker-archive', join(out, 'docker.tar')],
    ] as const) {
      const copy = join(out, `skopeo-${transport}`);
      run('skopeo', ['copy', '--quiet', `${transport}:${source}`, `oci:${copy}:copied`]);
      expect(diffSnapshots(expected, umociTree(copy, 'copied')), transport).toEqual([]);
    }
    // podman loads the docker and OCI archives; its own mount of the image is the same tree.
    for (const archive of ['docker.tar', 'oci.tar']) {
      const loaded = run('podman', [...podmanArgs, 'load', '-i', join(out, archive)]);
      expect(loaded).toContain('Loaded image');
      const mount = run('podman', [...podmanArgs, 'image', 'mount', 'example.com/apt:apt']).trim();
      try {
        // podman (like Docker) applies a layer into its upper directory and makes the parents a layer
        // implies as new directories, timed now: their times are podman's, not the image's.
        const times = { ignoreXattr: (name: string) => name.startsWith('trusted.overlay.'), ignoreDirMtime: true };
        expect(diffSnapshots(snapshotTree(join(work, 'umoci-bundle', 'rootfs'), times), snapshotTree(mount, times)), archive).toEqual([]);
      } finally {
        run('podman', [...podmanArgs, 'image', 'unmount', 'example.com/apt:apt']);
        run('podman', [...podmanArgs, 'rmi', '--force', 'example.com/apt:apt']);
      }
    }
  });

  it("imports podman's own docker and OCI archives", async () => {
    run('podman', [...podmanArgs, 'load', '-i', apt.dockerArchive]);
    for (const format of ['docker-archive', 'oci-archive']) {
      const archive = join(work, `podman-${format}.tar`);
      run('podman', [...podmanArgs, 'save', '--format', format, '-o', archive, 'example.com/apt:latest']);
      await withRoot(`from-podman-${format}`, async (images) => {
        const result = await images.import(archive, { name: 'example.com/podman:saved' });
        expect(result.images.map((i) => i.name)).toEqual(['example.com/podman:saved']);
        expect(diffSnapshots(expected, await unpackedTree(images, 'example.com/podman:saved')), format).toEqual([]);
      });
    }
  });

  it('without root, unpacks to the tree `umoci unpack --rootless` gives, owner records included, but for the device nodes neither can make; commits and builds give the owners back', async () => {
    // Both as nobody: the image's files are the caller's, and each owner other than root is kept in a
    // `user.rootlesscontainers` xattr. umoci puts an empty file where a device was; strata leaves the device
    // out (as Docker and containerd do in a user namespace) and hides what is below.
    const home = join(work, 'rootless');
    mkdirSync(home);
    run('cp', ['-r', apt.layout, join(home, 'layout')]);
    run('chown', ['-R', '65534:65534', home]);
    chmodSync(work, 0o755);
    const asNobody = (cmd: string, args: string[]) =>
      run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', cmd, ...args]);
    const strata = (...args: string[]) => asNobody(process.execPath, [cli, '--root', join(home, 'root'), '--driver', 'userspace', ...args]);
    asNobody('umoci', ['unpack', '--rootless', '--image', `${join(home, 'layout')}:apt`, join(home, 'bundle')]);
    const umoci = snapshotTree(join(home, 'bundle', 'rootfs'));
    const recorded = [...umoci.values()].filter((node) => node.xattrs?.['user.rootlesscontainers'] !== undefined).length;
    expect(recorded).toBeGreaterThan(5); // /etc/shadow's group, /var/local's, apt's partial directory…
    const placeholders = [...umoci].filter(([path, node]) => path.startsWith('dev/') && node.type === 'file' && node.size === 0).map(([path]) => path);
    expect(placeholders.sort()).toEqual(['console', 'full', 'null', 'ptmx', 'random', 'tty', 'urandom', 'zero'].map((name) => `dev/${name}`));
    for (const path of placeholders) umoci.delete(path);

    const chain = /Unpacked example\.com\/apt:apt: (sha256:[0-9a-f]{64})/.exec(strata('image', 'import', join(home, 'layout'), '--name', 'example.com/apt', '--unpack', '-q'))![1]!;
    expect(strata('unpack', 'example.com/apt:apt', '-q')).toBe(`${chain}\n`); // unpacked already: the same chain
    strata('snapshot', 'view', 'check', chain);
    const options = /-o (\S+)$/.exec(strata('snapshot', 'mounts', '/mnt', 'check').trim())![1]!;
    const target = mkdtempSync(join(work, 'rootless-view-'));
    run('mount', ['-t', 'overlay', 'overlay', target, '-o', options]);
    try {
      expect(diffSnapshots(umoci, picture(target))).toEqual([]);
    } finally {
      run('umount', [target]);
    }
    // A build's filesystem export applies the layers again, into one directory, devices left out the same
    // way. Its directories' times are not umoci's where the apt layer adds to a directory it has no entry
    // for: applied in place, as Docker and GNU tar apply it, such a directory keeps the time of the change.
    mkdirSync(join(home, 'context'));
    writeFileSync(join(home, 'context', 'Dockerfile'), 'FROM example.com/apt:apt\nLABEL rootless=yes\n');
    run('chown', ['-R', '65534:65534', join(home, 'context')]);
    strata('build', join(home, 'context'), '-q', '-o', `type=local,dest=${join(home, 'files')}`);
    const noDirTimes = { ignoreDirMtime: true };
    const umociFiles = snapshotTree(join(home, 'bundle', 'rootfs'), noDirTimes);
    for (const path of placeholders) umociFiles.delete(path);
    expect(diffSnapshots(umociFiles, snapshotTree(join(home, 'files'), noDirTimes))).toEqual([]);

    // A container's change, made through a kernel overlay mount in the caller's own user namespace (as a
    // rootless runtime makes it: the copy-up carries the record), commits with the image's owners, as
    // `umoci repack` of the same change to its rootless bundle gives them.
    strata('container', 'create', 'example.com/apt:apt', 'c');
    const containerMount = /-o (\S+)$/.exec(strata('snapshot', 'mounts', '/mnt', 'container-c').trim())![1]!;
    const change = 'echo extra >> "$0/etc/shadow" && touch "$0/var/local/new"';
    const merged = join(home, 'merged');
    mkdirSync(merged);
    run('chown', ['65534:65534', merged]);
    asNobody('unshare', ['-Urm', 'sh', '-c', `mount -t overlay overlay "$0" -o "$1" && ${change}`, merged, containerMount]);
    strata('container', 'diff', 'c', '-o', join(home, 'change.tar'));
    const ours = await layerEntries(join(home, 'change.tar'));
    asNobody('sh', ['-c', change, join(home, 'bundle', 'rootfs')]);
    asNobody('umoci', ['repack', '--image', `${join(home, 'layout')}:changed`, join(home, 'bundle')]);
    const theirs = await layerEntries(lastLayer(join(home, 'layout'), 'changed'));
    expect([...theirs.keys()]).toEqual(['etc/shadow', 'var/local', 'var/local/new']);
    for (const [path, entry] of theirs) expect(ours.get(path), path).toEqual(entry);
    expect(ours.get('etc/shadow')).toMatchObject({ uid: 0, gid: 42, xattrs: [] }); // the record gave the owner and left the layer

    // A build without root gives the image a build as root gives, byte for byte, where the owners come
    // from records: COPY --from of files the image recorded, COPY --chown to an id the caller has no other
    // way to give, a COPY that makes a recorded directory root's, an ADDed archive of another user's files.
    const copies = join(home, 'copies');
    mkdirSync(join(copies, 'sub', 'local'), { recursive: true });
    writeFileSync(join(copies, 'a.txt'), 'a\n');
    writeFileSync(join(copies, 'sub', 'local', 'm'), 'm\n');
    run('tar', ['-cf', join(copies, 'theirs.tar'), '--owner=1000', '--group=1000', '-C', copies, 'a.txt']);
    writeFileSync(
      join(copies, 'Dockerfile'),
      [
        'FROM example.com/apt:apt',
        'COPY --chown=1000:1000 a.txt /owned/',
        'COPY --from=example.com/apt:apt /etc/shadow /var/cache/apt/archives/partial /copied/',
        'COPY --from=example.com/apt:apt /var/cache/apt/archives /archives',
        'COPY sub/ /var/',
        'ADD theirs.tar /theirs/',
        'COPY --chown=0:1000 a.txt /var/log/btmp',
        '',
      ].join('\n'),
    );
    run('chown', ['-R', '65534:65534', copies]);
    const build = (dest: string) => ['build', copies, '-q', '--source-date-epoch', '1700000000', '-o', `type=oci,dest=${join(home, dest)}`];
    strata(...build('by-nobody.tar'));
    const asRoot = (...args: string[]) => run(process.execPath, [cli, '--root', join(home, 'root-of-root'), '--driver', 'userspace', ...args]);
    asRoot('image', 'import', join(home, 'layout'), '--name', 'example.com/apt', '-q');
    asRoot(...build('by-root.tar'));
    const sha256 = (file: string) => createHash('sha256').update(readFileSync(join(home, file))).digest('hex');
    expect(sha256('by-nobody.tar')).toBe(sha256('by-root.tar'));
    // Its filesystem as a tar says the same owners as root's, the records read back; only the devices,
    // which the rootless export left out, differ.
    const tarOf = (dest: string) => ['build', copies, '-q', '--source-date-epoch', '1700000000', '-o', `type=tar,dest=${join(home, dest)}`];
    strata(...tarOf('files-by-nobody.tar'));
    asRoot(...tarOf('files-by-root.tar'));
    const rootFiles = await layerEntries(join(home, 'files-by-root.tar'));
    for (const path of placeholders) rootFiles.delete(path);
    expect(await layerEntries(join(home, 'files-by-nobody.tar'))).toEqual(rootFiles);
  });

  for (const driver of ['overlay', 'userspace'] as const) {
    it(`commits a container changed through ${driver === 'overlay' ? 'a kernel mount' : 'the userspace driver'}, and umoci unpacks the change`, async () => {
      const out = join(work, `commit-${driver}`);
      await withRoot(`commit-root-${driver}`, async (images) => {
        await images.import(apt.layout, { name: 'example.com/apt' });
        await images.createContainer('example.com/apt:apt', 'c1');
        if (driver === 'overlay') {
          const target = mkdtempSync(join(work, 'mnt-'));
          await images.mountContainer('c1', target);
          try {
            writeFileSync(join(target, 'etc', 'motd'), 'committed by strata\n');
            rmSync(join(target, 'usr', 'share', 'doc'), { recursive: true });
          } finally {
            await images.snapshotter.unmount(target);
          }
        } else {
          const tree = await images.openContainer('c1');
          await tree.writeFile('/etc/motd', 'committed by strata\n');
          await tree.rm('/usr/share/doc', { recursive: true });
        }
        await images.commit('c1', 'example.com/apt:changed', { message: 'a change' });
        await images.export(['example.com/apt:changed'], out, { format: 'oci' });
      }, driver);
      const tree = umociTree(out, 'changed');
      expect(tree.get('etc/motd')).toMatchObject({ type: 'file', sha256: createHash('sha256').update('committed by strata\n').digest('hex') });
      // Everything else is the image as it was: the removed tree gone, the directories changed keep their
      // mode and owner (their times are the container's).
      const want = new Map([...expected].filter(([path]) => path !== 'etc/motd' && path !== 'usr/share/doc' && !path.startsWith('usr/share/doc/')));
      const got = new Map([...tree].filter(([path]) => path !== 'etc/motd'));
      for (const dir of ['etc', 'usr/share']) {
        const { mtimeNs: _a, ...w } = want.get(dir)!;
        const { mtimeNs: _b, ...g } = got.get(dir)!;
        expect(g).toEqual(w);
        want.delete(dir);
        got.delete(dir);
      }
      expect(expected.has('usr/share/doc')).toBe(true);
      expect(diffSnapshots(want, got)).toEqual([]);
    });
  }
});
