/**
 * Images on a root: import (OCI layouts and archives, docker save), names and platforms, unpack by
 * chainID with shared bases, containers and commit, Docker's deletion rules, squash, collection and fsck.
 * Images here are built by the test helpers (no strata code); the real tools' images are in
 * test/images-oracles.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chainID, encodeName, readLayer } from '@strata/core';
import { openImages, stageImageDocuments, type Images } from '../src/index.js';
import { imagesRoot } from './helpers.js';
import { buildImage, buildIndex, dockerSaveFiles, layer, layoutFiles, named, writeArchive, writeDirectory } from '../../../test/helpers/images.js';
import { needs } from '../../../test/helpers/oracle.js';
import { rawTar, sha256 } from '../../../test/helpers/raw-tar.js';
import { afterEachTransaction } from '../../../test/helpers/transactions.js';

const base = layer({ 'etc/': '', 'etc/os-release': 'ID=test\n', 'bin/': '', 'bin/sh': '#!fake shell\n' });
const app = layer({ 'app/': '', 'app/run': 'echo app\n' });
const other = layer({ 'srv/': '', 'srv/data': 'other data\n' });

/** Reads a file of a snapshot chain through strata's userspace view. */
async function readIn(images: Images, key: string, path: string): Promise<string> {
  const tree = await images.snapshotter.open(key);
  return (await tree.readFile(path)).toString();
}

async function snapshotKeys(images: Images): Promise<string[]> {
  const keys: string[] = [];
  await images.snapshotter.walk((info) => void keys.push(info.name));
  return keys.sort();
}

describe('images on a root', () => {
  const root = imagesRoot('strata-images-');

  /** Two images on one base, in one OCI layout. */
  function twoImages() {
    const one = buildImage({ layers: [base, app] });
    const two = buildImage({ layers: [base, other] });
    const blobs = new Map([...one.blobs, ...two.blobs]);
    const layout = writeDirectory(join(root.dir, 'layout'), layoutFiles(blobs, [named(one.manifestDescriptor, 'example.com/one:1', '1'), named(two.manifestDescriptor, 'example.com/two:1', '1')]));
    return { one, two, layout };
  }

  it('imports a layout, names its root.images, and unpacks a shared base once', async () => {
    const { one, two, layout } = twoImages();
    const result = await root.images.import(layout);
    expect(result.images.map((i) => i.name)).toEqual(['example.com/one:1', 'example.com/two:1']);
    expect(result.blobs).toBe(7); // base, app, other, two configs, two manifests
    const first = await root.images.unpack('example.com/one:1');
    expect(first.layers.map((l) => l.applied)).toEqual([true, true]);
    expect(first.chainID).toBe(chainID(one.diffIDs));
    const second = await root.images.unpack('example.com/two:1');
    // The base is shared: only the top layer is applied, and only its bytes are read.
    expect(second.layers.map((l) => l.applied)).toEqual([false, true]);
    expect(second.layers[0]!.bytes).toBe(0);
    expect(second.layers[0]!.chainID).toBe(first.layers[0]!.chainID);
    expect(await snapshotKeys(root.images)).toEqual([chainID([one.diffIDs[0]!]), chainID(one.diffIDs), chainID(two.diffIDs)].sort());
    expect(await readIn(root.images, second.chainID!, '/srv/data')).toBe('other data\n');
    expect(await readIn(root.images, first.chainID!, '/etc/os-release')).toBe('ID=test\n');
    // Unpacking again applies nothing.
    expect((await root.images.unpack('example.com/one:1')).layers.map((l) => l.applied)).toEqual([false, false]);
    expect(root.images.inspect('example.com/one:1').unpacked).toBe(first.chainID);
  });

  it("reports an unpack's progress as the bytes of the layer blobs it reads, up to their total", async () => {
    // A plain layer larger than a read (1 MiB), so that a blob's bytes arrive in several reports.
    const big = layer({ 'data/': '', 'data/blob': Buffer.alloc(3 * 1024 * 1024 + 1234, 7).toString() });
    const built = buildImage({ layers: [layer({ 'p/': '', 'p/small': 'x\n' }), big], gzip: false });
    await root.images.import(writeDirectory(join(root.dir, 'progress'), layoutFiles(built.blobs, [named(built.manifestDescriptor, 'example.com/progress:1')])));
    const reports: Array<[number, number]> = [];
    const unpacked = await root.images.unpack('example.com/progress:1', { onProgress: (done, total) => void reports.push([done, total]) });
    expect(unpacked.layers.map((l) => l.applied)).toEqual([true, true]);
    const total = (JSON.parse(built.manifest.toString()) as { layers: { size: number }[] }).layers.reduce((sum, l) => sum + l.size, 0);
    expect(reports.length).toBeGreaterThan(2);
    expect(reports.every(([, t]) => t === total)).toBe(true);
    expect(reports.every(([done], i) => i === 0 || done > reports[i - 1]![0])).toBe(true);
    expect(reports.at(-1)![0]).toBe(total);
  });

  it('imports docker save archives, legacy and OCI-flavoured, following their in-archive links', async () => {
    const built = buildImage({ layers: [base, app], gzip: false });
    const files = dockerSaveFiles([{ built, tags: ['example.com/legacy:v1', 'legacy:latest'], layers: [base, app] }]);
    // podman and older Docker link a repeated layer to its first copy.
    const first = `${sha256(base).slice(7)}/layer.tar`;
    files.delete(first);
    files.set(`${sha256(base).slice(7)}.tar`, base);
    const archive = writeArchive(join(root.dir, 'save.tar'), files, [{ name: first, type: '2', linkname: `../${sha256(base).slice(7)}.tar` }]);
    const result = await root.images.import(archive);
    expect(result.images.map((i) => i.name)).toEqual(['example.com/legacy:v1', 'docker.io/library/legacy:latest']);
    const unpacked = await root.images.unpack('legacy');
    expect(unpacked.chainID).toBe(chainID(built.diffIDs));
    expect(await readIn(root.images, unpacked.chainID!, '/app/run')).toBe('echo app\n');

    // Newer Docker: blobs/ and index.json beside manifest.json; index.json is read.
    const oci = buildImage({ layers: [base] });
    const both = layoutFiles(oci.blobs, [named(oci.manifestDescriptor, 'docker.io/library/new:1', '1')]);
    both.set('manifest.json', Buffer.from(JSON.stringify([{ Config: `blobs/sha256/${sha256(oci.config).slice(7)}`, RepoTags: ['new:1'], Layers: [] }])));
    expect((await root.images.import(writeArchive(join(root.dir, 'new.tar'), both))).images.map((i) => i.name)).toEqual(['docker.io/library/new:1']);
  });

  it('imports and unpacks images with layers of no bytes at all, as Docker does (moby#18226)', async () => {
    // `docker save` archives with 0-byte layer.tar files exist (images pushed so, bazel's rules_docker).
    const empty = Buffer.alloc(0);
    const built = buildImage({ layers: [base, empty, app], gzip: false });
    const archive = writeArchive(join(root.dir, 'zero.tar'), dockerSaveFiles([{ built, tags: ['example.com/zero:1'], layers: [base, empty, app] }]));
    expect((await root.images.import(archive)).images.map((i) => i.name)).toEqual(['example.com/zero:1']);
    expect(built.diffIDs[1]).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const unpacked = await root.images.unpack('example.com/zero:1');
    expect(unpacked.chainID).toBe(chainID(built.diffIDs));
    expect(await readIn(root.images, unpacked.chainID!, '/app/run')).toBe('echo app\n');
    expect(await readIn(root.images, unpacked.chainID!, '/etc/os-release')).toBe('ID=test\n');
    // And as a gzip stream of nothing, in an OCI layout.
    const gz = buildImage({ layers: [base, empty], label: 'gzip' });
    const layout = writeDirectory(join(root.dir, 'zero-layout'), layoutFiles(gz.blobs, [named(gz.manifestDescriptor, 'example.com/zero:gz', 'gz')]));
    await root.images.import(layout);
    expect((await root.images.unpack('example.com/zero:gz')).chainID).toBe(chainID(gz.diffIDs));
  });

  it('imports compressed archives', async () => {
    const { one } = twoImages();
    const files = layoutFiles(one.blobs, [named(one.manifestDescriptor, 'example.com/gz:1')]);
    const tar = writeArchive(join(root.dir, 'a.tar'), files);
    execFileSync('gzip', ['-k', tar]);
    expect((await root.images.import(`${tar}.gz`)).images.map((i) => i.name)).toEqual(['example.com/gz:1']);
  });

  it('takes the host platform from an index by default, another with --platform, all with --all-platforms', async () => {
    const amd = buildImage({ layers: [base], architecture: 'amd64' });
    const arm = buildImage({ layers: [other], architecture: 'arm64' });
    arm.manifestDescriptor.platform = { architecture: 'arm64', os: 'linux', variant: 'v8' };
    const index = buildIndex([amd, arm]);
    const files = layoutFiles(index.blobs, [named(index.descriptor, 'example.com/multi:1')]);
    const archive = writeArchive(join(root.dir, 'multi.tar'), files);

    await root.images.import(archive);
    const image = root.images.image('example.com/multi:1');
    expect(image.target.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    // Only the host platform's content came in; the index keeps listing the other, as containerd's partial images do.
    expect(root.images.content.has(amd.manifestDescriptor.digest)).toBe(true);
    expect(root.images.content.has(arm.manifestDescriptor.digest)).toBe(false);
    expect(root.images.inspect('example.com/multi:1').platform).toBe('linux/amd64');
    await expect(root.images.unpack('example.com/multi:1', { platform: { platform: { os: 'linux', architecture: 'arm64' } } })).rejects.toMatchObject({ code: 'NOT_FOUND' });

    await root.images.import(archive, { platform: { platform: { os: 'linux', architecture: 'arm64' } } });
    expect(root.images.content.has(arm.manifestDescriptor.digest)).toBe(true);
    const armUnpacked = await root.images.unpack('example.com/multi:1', { platform: { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } } });
    expect(await readIn(root.images, armUnpacked.chainID!, '/srv/data')).toBe('other data\n');

    const onlyArm = await openImages(join(root.dir, 'root2'), { driver: 'userspace' });
    try {
      const armOnly = layoutFiles(arm.blobs, [named(arm.manifestDescriptor, 'example.com/arm:1')]);
      await expect(onlyArm.import(writeArchive(join(root.dir, 'arm.tar'), layoutFiles(buildIndex([arm]).blobs, [named(buildIndex([arm]).descriptor, 'example.com/armidx:1')])))).rejects.toMatchObject({ code: 'NOT_FOUND' });
      // A lone manifest is an image for whatever platform it is: taken as it is.
      expect((await onlyArm.import(writeArchive(join(root.dir, 'arm1.tar'), armOnly))).images).toHaveLength(1);
      const all = await onlyArm.import(archive, { platform: { all: true } });
      expect(all.images).toHaveLength(1);
      expect(onlyArm.content.has(amd.manifestDescriptor.digest) && onlyArm.content.has(arm.manifestDescriptor.digest)).toBe(true);
    } finally {
      await onlyArm.close();
    }
  });

  it('exports every blob what it writes names: an index whose attestations stayed behind goes as its platform manifest', async () => {
    const amd = buildImage({ layers: [base] });
    const attestation = buildImage({ layers: [layer({ 'sbom.json': '{}' })], label: 'attestation' });
    attestation.manifestDescriptor.platform = { architecture: 'unknown', os: 'unknown' };
    const index = buildIndex([amd, attestation]);
    await root.images.import(writeArchive(join(root.dir, 'attested.tar'), layoutFiles(index.blobs, [named(index.descriptor, 'example.com/attested:1')])));
    expect(root.images.content.has(attestation.manifestDescriptor.digest)).toBe(false); // attestations are not images
    const out = join(root.dir, 'attested-out');
    const written = await root.images.export(['example.com/attested:1'], out, { format: 'oci' });
    expect(written.manifests.map((m) => m.digest)).toEqual([amd.manifestDescriptor.digest]);
    // Every descriptor reachable from index.json is in the layout.
    const blob = (digest: string) => join(out, 'blobs', 'sha256', digest.slice(7));
    const entries = (JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests;
    for (const entry of entries) {
      const manifest = JSON.parse(readFileSync(blob(entry.digest), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
      for (const d of [manifest.config, ...manifest.layers]) expect(existsSync(blob(d.digest)), d.digest).toBe(true);
    }
  });

  it('names images from annotations, --name and tags; an unnamed one is dangling', async () => {
    const one = buildImage({ layers: [base], label: 'a' });
    const two = buildImage({ layers: [base], label: 'b' });
    const three = buildImage({ layers: [base], label: 'c' });
    const blobs = new Map([...one.blobs, ...two.blobs, ...three.blobs]);
    const tagOnly = (d: typeof one.manifestDescriptor, tag: string) => ({ ...d, annotations: { 'org.opencontainers.image.ref.name': tag } });
    const layout = writeDirectory(join(root.dir, 'tags'), layoutFiles(blobs, [tagOnly(one.manifestDescriptor, 'v1'), tagOnly(two.manifestDescriptor, 'v2'), three.manifestDescriptor]));
    const result = await root.images.import(layout, { name: 'registry.local:5000/team/app' });
    expect(result.images.map((i) => i.name)).toEqual(['registry.local:5000/team/app:v1', 'registry.local:5000/team/app:v2', undefined]);
    expect(root.images.list({ dangling: true }).map((i) => i.digest)).toEqual([three.manifestDescriptor.digest]);
    // One image and --name: that name, with the image's tag unless --name has its own.
    const single = writeDirectory(join(root.dir, 'single'), layoutFiles(one.blobs, [tagOnly(one.manifestDescriptor, 'v1')]));
    expect((await root.images.import(single, { name: 'mine' })).images.map((i) => i.name)).toEqual(['docker.io/library/mine:v1']);
    expect((await root.images.import(single, { name: 'mine:2' })).images.map((i) => i.name)).toEqual(['docker.io/library/mine:2']);
  });

  it('picks one image of a layout, by tag (latest by default) or digest (listed, or a platform manifest below), without a name', async () => {
    const latest = buildImage({ layers: [base], label: 'latest' });
    const v1 = buildImage({ layers: [base, app], label: 'v1' });
    const amd = buildImage({ layers: [base, other], architecture: 'amd64' });
    const index = buildIndex([amd]);
    const blobs = new Map([...latest.blobs, ...v1.blobs, ...index.blobs]);
    const tagged = (d: typeof latest.manifestDescriptor, tag: string) => ({ ...d, annotations: { 'org.opencontainers.image.ref.name': tag } });
    const layout = writeDirectory(join(root.dir, 'pick'), layoutFiles(blobs, [tagged(latest.manifestDescriptor, 'latest'), tagged(v1.manifestDescriptor, 'v1'), tagged(index.descriptor, 'multi')]));
    const before = root.images.list().map((i) => i.name);
    const picked = async (pick: { tag?: string; digest?: string }) => (await root.images.import(layout, { pick })).images.map((i) => [i.name, i.target.digest]);
    expect(await picked({})).toEqual([[undefined, latest.manifestDescriptor.digest]]);
    expect(await picked({ tag: 'v1' })).toEqual([[undefined, v1.manifestDescriptor.digest]]);
    expect(await picked({ digest: index.descriptor.digest })).toEqual([[undefined, index.descriptor.digest]]);
    // Not in index.json, but a manifest among the blobs: buildx pins a platform's manifest this way.
    expect(await picked({ digest: amd.manifestDescriptor.digest, tag: 'ignored' })).toEqual([[undefined, amd.manifestDescriptor.digest]]);
    expect(root.images.image(amd.manifestDescriptor.digest).target.digest).toBe(amd.manifestDescriptor.digest);
    expect(root.images.list().map((i) => i.name).filter((name) => name !== undefined)).toEqual(before.filter((name) => name !== undefined));
    await expect(picked({ tag: 'v2' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(picked({ digest: `sha256:${'0'.repeat(64)}` })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // A blob that is no manifest (a layer's) names no image.
    const layerDigest = (JSON.parse(amd.manifest.toString()) as { layers: { digest: string }[] }).layers[0]!.digest;
    await expect(picked({ digest: layerDigest })).rejects.toMatchObject({ code: 'IMAGE_FORMAT' });
    await expect(root.images.import(writeArchive(join(root.dir, 'pick.tar'), layoutFiles(latest.blobs, [tagged(latest.manifestDescriptor, 'latest')])), { pick: {} })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('keeps names that are not UTF-8 byte for byte through unpack, a container, its commit and the unpack of that', async () => {
    const latin1 = (text: string) => Buffer.from(text, 'latin1');
    const mtime = 1_700_000_000;
    const notUtf8 = rawTar([
      { name: 'd', type: '5', mode: 0o755, mtime, pax: { path: latin1('d\xe9/') } },
      { name: 'f', data: 'latin-1\n', mode: 0o644, mtime, pax: { path: latin1('d\xe9/caf\xe9') } },
      { name: 'g', data: 'goes\n', mode: 0o644, mtime, pax: { path: latin1('d\xe9/gone\xff') } },
      { name: 'l', type: '2', mode: 0o777, mtime, pax: { path: latin1('l\x80'), linkpath: latin1('d\xe9/caf\xe9') } },
    ]);
    const image = buildImage({ layers: [base, notUtf8] });
    await root.images.import(writeDirectory(join(root.dir, 'not-utf8'), layoutFiles(image.blobs, [named(image.manifestDescriptor, 'example.com/bytes:1', '1')])));
    await root.images.createContainer('example.com/bytes:1', 'bytes');
    const tree = await root.images.openContainer('bytes');
    const dir = '/d\udce9';
    expect((await tree.readdir(dir)).sort()).toEqual(['caf\udce9', 'gone\udcff']);
    expect((await tree.readFile('/l\udc80')).toString()).toBe('latin-1\n'); // through the symlink, by its target's bytes
    await tree.rename(`${dir}/caf\udce9`, `${dir}/caf\udce8`);
    await tree.rm(`${dir}/gone\udcff`);
    await tree.writeFile('/new\udcfe', 'new\n');
    const made = await root.images.commit('bytes', 'example.com/bytes:committed');
    // The committed layer names them by their bytes: the renamed file, the whiteouts of the old names, the new file.
    const names: string[] = [];
    for await (const { entry } of readLayer(root.images.content.path(made.layer.digest))) names.push(Buffer.from(encodeName(entry.path)).toString('latin1'));
    expect(names.sort()).toEqual(['d\xe9', 'd\xe9/.wh.caf\xe9', 'd\xe9/.wh.gone\xff', 'd\xe9/caf\xe8', 'new\xfe'].sort());
    const unpacked = await root.images.unpack('example.com/bytes:committed');
    const view = await root.images.snapshotter.open(unpacked.chainID!);
    expect((await view.readdir(dir)).sort()).toEqual(['caf\udce8']);
    expect((await view.readFile(`${dir}/caf\udce8`)).toString()).toBe('latin-1\n');
    expect((await view.readFile('/new\udcfe')).toString()).toBe('new\n');
    await expect(view.readFile('/l\udc80')).rejects.toMatchObject({ code: 'ENOENT' }); // its target was renamed
    await root.images.removeContainer('bytes');
  });

  it('makes containers, commits them as root.images, and follows Docker’s deletion rules', async () => {
    const { one, layout } = twoImages();
    await root.images.import(layout);
    const c = await root.images.createContainer('example.com/one:1', 'c1');
    expect(c.chainID).toBe(chainID(one.diffIDs));
    const tree = await root.images.openContainer('c1');
    await tree.writeFile('/app/config', 'changed in the container\n');
    await tree.rm('/etc/os-release');
    // The commit's lease goes in the transaction that names the image: no committed state has both.
    const states: string[] = [];
    const restore = afterEachTransaction(root.images.root.metadata, () =>
      states.push(`${root.images.list().some((i) => i.name === 'example.com/one:committed') ? 'named' : 'unnamed'}, ${root.images.leases.list().length} lease(s)`),
    );
    const made = await root.images.commit('c1', 'example.com/one:committed', { message: 'configure', author: 'tester' });
    restore();
    expect(states.at(-1)).toBe('named, 0 lease(s)');
    expect(states.filter((s) => s.startsWith('named') && !s.endsWith(' 0 lease(s)'))).toEqual([]);
    const history = root.images.history('example.com/one:committed');
    expect(history[0]).toMatchObject({ comment: 'configure', author: 'tester', layer: made.layer.digest });
    expect(root.images.inspect('example.com/one:committed').config.rootfs.diff_ids).toEqual([...one.diffIDs, made.layer.diffID]);
    const unpacked = await root.images.unpack('example.com/one:committed');
    expect(unpacked.layers.map((l) => l.applied)).toEqual([false, false, true]); // only the new layer
    expect(await readIn(root.images, unpacked.chainID!, '/app/config')).toBe('changed in the container\n');
    const view = await root.images.snapshotter.open(unpacked.chainID!);
    await expect(view.stat('/etc/os-release')).rejects.toMatchObject({ code: 'ENOENT' });

    // The image a container uses cannot lose its last name, unless forced; its content stays for the container.
    expect(() => root.images.removeImages(['example.com/one:1'])).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('"c1"') }));
    root.images.tag('example.com/one:1', 'example.com/one:alias');
    // Both names in one call: the second is then the last, so the call is refused and removes neither.
    expect(() => root.images.removeImages(['example.com/one:1', 'example.com/one:alias'])).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('"c1"') }));
    expect(root.images.image('example.com/one:1').name).toBe('example.com/one:1');
    expect(root.images.removeImages(['example.com/one:1'])).toEqual({ untagged: ['example.com/one:1'], deleted: [] }); // another name is left
    expect(root.images.removeImages(['example.com/one:alias'], { force: true })).toEqual({ untagged: ['example.com/one:alias'], deleted: [] });
    const kept = await root.images.gc();
    expect(kept.blobs).toEqual([]);
    expect(root.images.content.has(one.manifestDescriptor.digest)).toBe(true);

    // Once the container goes (its snapshot with it), collection frees exactly what nothing else holds: the
    // old image's manifest and config; its layers and snapshots are the committed image's base.
    await root.images.removeContainer('c1');
    const freed = await root.images.gc();
    expect(freed.blobs.sort()).toEqual([one.manifestDescriptor.digest, sha256(one.config)].sort());
    expect(freed.snapshots).toEqual([]);
    expect(await snapshotKeys(root.images)).toEqual([chainID([one.diffIDs[0]!]), chainID(one.diffIDs), unpacked.chainID!].sort());
  });

  it('reads a config whose fields are null as one without them, as Go decodes it (Docker writes "Cmd": null)', async () => {
    const image = buildImage({
      layers: [base],
      config: (c) => {
        Object.assign(c, { author: null, variant: null });
        c.config = { Env: null, Cmd: null, Entrypoint: null, Labels: null, OnBuild: null, Healthcheck: { Test: null, Interval: null }, ExposedPorts: { '80/tcp': null }, Volumes: { '/data': {} } };
      },
    });
    await root.images.import(writeDirectory(join(root.dir, 'nulls'), layoutFiles(image.blobs, [named(image.manifestDescriptor, 'example.com/nulls:1')])));
    // A set's null member is Go's struct{}, which a config written from it spells {}.
    expect(root.images.inspect('example.com/nulls:1').config.config).toMatchObject({ Env: null, Cmd: null, ExposedPorts: { '80/tcp': {} }, Volumes: { '/data': {} } });
    expect(root.images.history('example.com/nulls:1')).toMatchObject([{ created_by: 'step 0', layer: expect.stringMatching(/^sha256:/) }]);
    await root.images.createContainer('example.com/nulls:1', 'c');
    await (await root.images.openContainer('c')).writeFile('/etc/new', 'x\n');
    await root.images.commit('c', 'example.com/nulls:2');
    expect(root.images.history('example.com/nulls:2').map((h) => h.created_by)).toEqual(['', 'step 0']);
    expect(root.images.inspect('example.com/nulls:2').config.config).toMatchObject({ ExposedPorts: { '80/tcp': {} } });
  });

  it('leaves a re-tagged image dangling, and prune removes dangling images', async () => {
    const { one, two, layout } = twoImages();
    await root.images.import(layout);
    root.images.tag('example.com/two:1', 'example.com/one:1'); // moves the name: image one has none left
    expect(root.images.list({ dangling: true }).map((i) => i.digest)).toEqual([one.manifestDescriptor.digest]);
    expect(root.images.list().map((i) => [i.name, i.dangling])).toEqual([
      ['example.com/one:1', false],
      ['example.com/two:1', false],
      [undefined, true],
    ]);
    expect(root.images.prune()).toEqual({ untagged: [], deleted: [one.manifestDescriptor.digest] });
    const freed = await root.images.gc();
    expect(freed.blobs.sort()).toEqual([...one.blobs.keys()].filter((d) => !two.blobs.has(d)).sort());
    expect(root.images.list().map((i) => i.name)).toEqual(['example.com/one:1', 'example.com/two:1']);
  });

  it('prunes as docker image prune does: --all, until and label filters, and the names containers use kept', async () => {
    const one = buildImage({ layers: [base, app], label: 'keep' });
    const two = buildImage({ layers: [base, other], label: 'drop' });
    const layout = writeDirectory(join(root.dir, 'layout'), layoutFiles(new Map([...one.blobs, ...two.blobs]), [named(one.manifestDescriptor, 'example.com/one:1', '1'), named(two.manifestDescriptor, 'example.com/two:1', '1')]));
    const before = new Date(Date.now() - 1000);
    await root.images.import(layout);
    root.images.tag('example.com/one:1', 'example.com/one:alias');
    await root.images.createContainer('example.com/one:alias', 'c1');
    const none = { untagged: [], deleted: [] };
    expect(root.images.prune()).toEqual(none); // nothing is dangling
    expect(root.images.prune({ all: true, until: before })).toEqual(none); // nothing was there before
    expect(root.images.prune({ all: true, labels: [{ key: 'absent' }] })).toEqual(none);
    // The labels are read from the configs. The container was made from one:alias: that name stays, one's
    // other name goes, and the image with the name left.
    const later = new Date(Date.now() + 60_000);
    expect(root.images.prune({ all: true, until: later, labels: [{ key: 'test', value: 'keep' }] })).toEqual({ untagged: ['example.com/one:1'], deleted: [] });
    // Moved to image two, the name the container was made from stays there, and image one, dangling now, stays
    // for the container; two's other name goes.
    root.images.tag('example.com/two:1', 'example.com/one:alias');
    expect(root.images.prune({ all: true })).toEqual({ untagged: ['example.com/two:1'], deleted: [] });
    await root.images.removeContainer('c1');
    expect(root.images.prune()).toEqual({ untagged: [], deleted: [one.manifestDescriptor.digest] });
    // `label!=test=keep`: image two's label is another value.
    expect(root.images.prune({ all: true, labels: [{ key: 'test', value: 'keep', negate: true }] })).toEqual({ untagged: ['example.com/one:alias'], deleted: [two.manifestDescriptor.digest] });
    expect(root.images.list()).toEqual([]);
  });

  it('lists as docker images does: newest created first, and its filters', async () => {
    const made = (created: string | undefined, label: string, layers: Buffer[]) =>
      buildImage({
        layers,
        label,
        config: (c) => {
          if (created === undefined) delete c['created'];
          else c['created'] = created;
        },
      });
    const old = made('2020-01-01T00:00:00Z', 'keep', [base]);
    const mid = made('2022-06-01T12:00:00.5Z', 'drop', [base, app]);
    const recent = made('2024-03-01T00:00:00Z', 'keep', [base, other]);
    const undated = made(undefined, 'keep', [app]);
    const blobs = new Map([...old.blobs, ...mid.blobs, ...recent.blobs, ...undated.blobs]);
    const layout = writeDirectory(
      join(root.dir, 'layout'),
      layoutFiles(blobs, [
        named(old.manifestDescriptor, 'docker.io/library/alpine:3', '3'),
        named(mid.manifestDescriptor, 'docker.io/team/tool:1', '1'),
        named(recent.manifestDescriptor, 'example.com/team/app:2', '2'),
        named(undated.manifestDescriptor, 'example.com/undated:1', 'u'),
      ]),
    );
    const start = new Date(Date.now() - 1000);
    await root.images.import(layout);
    root.images.tag('example.com/team/app:2', 'docker.io/library/alpine:3'); // `old` keeps no name
    const names = (options: Parameters<Images['list']>[0] = {}) => root.images.list(options).map((i) => i.name ?? i.digest);
    expect(names()).toEqual(['docker.io/library/alpine:3', 'example.com/team/app:2', 'docker.io/team/tool:1', old.manifestDescriptor.digest, 'example.com/undated:1']);
    const listed = root.images.list();
    expect(listed[0]).toMatchObject({ created: new Date('2024-03-01T00:00:00Z'), dangling: false });
    expect(listed[2]!.created).toEqual(new Date('2022-06-01T12:00:00.500Z'));
    expect(listed[4]!.created).toBeUndefined();
    expect(listed.every((i) => i.recorded >= start)).toBe(true);

    expect(names({ dangling: true })).toEqual([old.manifestDescriptor.digest]);
    expect(names({ dangling: false })).toHaveLength(4);
    expect(names({ labels: [{ key: 'test', value: 'keep' }] })).toEqual(['docker.io/library/alpine:3', 'example.com/team/app:2', old.manifestDescriptor.digest, 'example.com/undated:1']);
    expect(names({ labels: [{ key: 'test', value: 'keep', negate: true }] })).toEqual(['docker.io/team/tool:1']);
    // before and since compare the configs' created; an image without one passes neither.
    expect(names({ before: ['docker.io/team/tool:1'] })).toEqual([old.manifestDescriptor.digest]);
    expect(names({ since: ['docker.io/team/tool:1'] })).toEqual(['docker.io/library/alpine:3', 'example.com/team/app:2']);
    expect(names({ since: [old.manifestDescriptor.digest], before: ['example.com/team/app:2'] })).toEqual(['docker.io/team/tool:1']);
    expect(names({ before: ['example.com/undated:1'] })).toHaveLength(5); // no created: no bound
    expect(() => names({ before: ['example.com/missing:1'] })).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    // reference: Go path.Match on the familiar and full forms, with and without the tag.
    expect(names({ references: ['alpine'] })).toEqual(['docker.io/library/alpine:3']);
    expect(names({ references: ['alpine:3'] })).toEqual(['docker.io/library/alpine:3']);
    expect(names({ references: ['docker.io/library/alp*'] })).toEqual(['docker.io/library/alpine:3']);
    expect(names({ references: ['team/*'] })).toEqual(['docker.io/team/tool:1']);
    expect(names({ references: ['*/team/*'] })).toEqual(['example.com/team/app:2', 'docker.io/team/tool:1']);
    expect(names({ references: ['*'] })).toEqual(['docker.io/library/alpine:3']); // `*` stops at a `/`
    expect(names({ references: ['*:[12]', 'example.com/undated'] })).toEqual(['example.com/undated:1']);
    expect(names({ references: ['*/*:[12]'] })).toEqual(['docker.io/team/tool:1', 'example.com/undated:1']);
    expect(() => names({ references: ['a['] })).toThrow(/bad pattern/);
    expect(names({ until: start })).toEqual([]);
    expect(names({ until: new Date(Date.now() + 60_000), references: ['alpine'], labels: [{ key: 'test' }] })).toEqual(['docker.io/library/alpine:3']);
  });

  it('reports disk usage as docker system df does: blobs and unpacked snapshots once each, what no active image holds reclaimable', async () => {
    const { one, two, layout } = twoImages();
    await root.images.import(layout);
    const container = await root.images.createContainer('example.com/one:1', 'c1'); // unpacks one, not two
    const sum = (digests: Iterable<string>, sizes: Map<string, Buffer>) => [...digests].reduce((n, d) => n + sizes.get(d)!.length, 0);
    const blobs = new Map([...one.blobs, ...two.blobs]);
    const snapshots = [chainID(one.diffIDs.slice(0, 1)), chainID(one.diffIDs)];
    let snapshotBytes = 0;
    for (const key of snapshots) snapshotBytes += (await root.images.snapshotter.usage(key)).size;
    expect(snapshotBytes).toBeGreaterThan(0);
    const usage = await root.images.diskUsage();
    expect(usage.images).toEqual({
      total: 2,
      active: 1,
      size: sum(blobs.keys(), blobs) + snapshotBytes,
      reclaimable: sum([...two.blobs.keys()].filter((d) => !one.blobs.has(d)), two.blobs), // the base layer is one's too
    });
    const upper = (await root.images.snapshotter.usage(container.snapshot)).size;
    expect(usage.containers).toEqual({ total: 1, active: 0, size: upper, reclaimable: upper });
    // A second name adds no image; with the container gone, nothing is active and everything reclaimable.
    root.images.tag('example.com/one:1', 'example.com/one:alias');
    await root.images.removeContainer('c1');
    const after = await root.images.diskUsage();
    expect(after.images).toMatchObject({ total: 2, active: 0, reclaimable: after.images.size });
    expect(after.images.size).toBe(usage.images.size);
    expect(after.containers).toEqual({ total: 0, active: 0, size: 0, reclaimable: 0 });
    // An uncompressed layer's digest is its diffID, which is also the chainID of the snapshot it unpacks to:
    // the blob and the snapshot are both counted.
    const plain = buildImage({ layers: [other], gzip: false });
    expect(plain.manifestDescriptor.digest).not.toBe(one.manifestDescriptor.digest);
    await root.images.import(writeDirectory(join(root.dir, 'plain'), layoutFiles(plain.blobs, [named(plain.manifestDescriptor, 'example.com/plain:1', '1')])));
    const unpacked = await root.images.unpack('example.com/plain:1');
    expect(unpacked.chainID).toBe(plain.diffIDs[0]);
    const plainBytes = sum(plain.blobs.keys(), plain.blobs) + (await root.images.snapshotter.usage(unpacked.chainID!)).size;
    expect((await root.images.diskUsage()).images).toMatchObject({ total: 3, size: after.images.size + plainBytes });
  });

  it('removes an image and collects only what it did not share', async () => {
    const { one, two, layout } = twoImages();
    await root.images.import(layout);
    await root.images.unpack('example.com/one:1');
    await root.images.unpack('example.com/two:1');
    root.images.tag('example.com/one:1', 'example.com/one:alias');
    // Two names of one image in one call: the image goes with the second, its last.
    const removed = root.images.removeImages(['example.com/one:1', 'example.com/one:alias']);
    expect(removed).toEqual({ untagged: ['example.com/one:1', 'example.com/one:alias'], deleted: [one.manifestDescriptor.digest] });
    const freed = await root.images.gc();
    const unique = [...one.blobs.keys()].filter((d) => !two.blobs.has(d));
    expect(freed.blobs.sort()).toEqual(unique.sort());
    expect(freed.snapshots).toEqual([chainID(one.diffIDs)]);
    expect(await snapshotKeys(root.images)).toEqual([chainID([two.diffIDs[0]!]), chainID(two.diffIDs)].sort());
    expect((await root.images.fsck({ content: true })).ok).toBe(true);
  });

  it('annotates an OCI manifest it stages, and refuses annotations on a Docker one (schema 2 has none)', async () => {
    const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' as const, diff_ids: [] }, config: {} };
    const staged = await stageImageDocuments(root.images.content, { config, layers: [], docker: false, annotations: { 'org.example.a': 'b' } });
    try {
      staged.publish(root.images.leases.create({ id: 'annotate' }).id);
      expect(JSON.parse(root.images.content.readBytes(staged.target.digest, 1 << 20).toString())).toMatchObject({ annotations: { 'org.example.a': 'b' } });
    } finally {
      staged.discard();
    }
    await expect(stageImageDocuments(root.images.content, { config, layers: [], docker: true, annotations: { 'org.example.a': 'b' } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('squashes all layers, or those above a base, keeping the tree and the history', async () => {
    const { one, layout } = twoImages();
    await root.images.import(layout);
    const top = layer({ 'app/run': 'echo patched\n', 'app/.wh.gone': '', 'etc/extra': 'x\n' });
    const three = buildImage({ layers: [base, app, top] });
    await root.images.import(writeDirectory(join(root.dir, 'three'), layoutFiles(three.blobs, [named(three.manifestDescriptor, 'example.com/three:1')])));

    const all = await root.images.squash('example.com/three:1', 'example.com/three:flat', { sourceDateEpoch: 1_700_000_000 });
    expect(all.folded).toBe(3);
    const flat = root.images.inspect('example.com/three:flat');
    expect(flat.layers).toHaveLength(1);
    expect(flat.config.history!.map((h) => h.empty_layer ?? false)).toEqual([true, true, true, false]);
    expect(flat.config.created).toBe('2023-11-14T22:13:20Z');

    const above = await root.images.squash('example.com/three:1', 'example.com/three:above', { base: 'example.com/one:1' });
    expect(above.folded).toBe(1);
    expect(root.images.inspect('example.com/three:above').config.rootfs.diff_ids.slice(0, 2)).toEqual(one.diffIDs);
    await expect(root.images.squash('example.com/three:1', 'x', { base: 'example.com/two:1' })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });

    const trees: string[][] = [];
    for (const ref of ['example.com/three:1', 'example.com/three:flat', 'example.com/three:above']) {
      const chain = (await root.images.unpack(ref)).chainID!;
      const view = await root.images.snapshotter.open(chain);
      const files: string[] = [];
      for (const path of ['/app/run', '/etc/extra', '/etc/os-release', '/bin/sh']) files.push(`${path}=${(await view.readFile(path)).toString()}`);
      await expect(view.stat('/app/gone')).rejects.toMatchObject({ code: 'ENOENT' });
      trees.push(files);
    }
    expect(trees[1]).toEqual(trees[0]);
    expect(trees[2]).toEqual(trees[0]);
  });

  it('commits reproducibly under SOURCE_DATE_EPOCH', async () => {
    const { layout } = twoImages();
    await root.images.import(layout);
    const digests: string[] = [];
    for (const name of ['r1', 'r2']) {
      await root.images.createContainer('example.com/one:1', name);
      const tree = await root.images.openContainer(name);
      await tree.writeFile('/app/state', 'same bytes\n');
      await tree.utimes('/app/state', new Date(), new Date()); // times above the epoch are clamped
      digests.push((await root.images.commit(name, `example.com/repro:${name}`, { sourceDateEpoch: 1_600_000_000 })).target.digest);
    }
    expect(digests[0]).toBe(digests[1]);
    expect(root.images.inspect('example.com/repro:r1').config.created).toBe('2020-09-13T12:26:40Z');
  });

  it('keeps non-distributable layers as descriptors, and never fetches them', async () => {
    const foreign = { mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest: `sha256:${'f'.repeat(64)}`, size: 1234, urls: ['https://example.invalid/layer'] };
    const image = buildImage({
      layers: [base],
      config: (c) => ((c.rootfs as { diff_ids: string[] }).diff_ids = [`sha256:${'e'.repeat(64)}`, ...(c.rootfs as { diff_ids: string[] }).diff_ids]),
      manifest: (m) => Object.assign(m, { layers: [foreign, ...(m.layers as object[])] }),
    });
    await root.images.import(writeArchive(join(root.dir, 'foreign.tar'), layoutFiles(image.blobs, [named(image.manifestDescriptor, 'example.com/foreign:1')])));
    expect(root.images.inspect('example.com/foreign:1').layers[0]).toMatchObject({ digest: foreign.digest, urls: foreign.urls });
    await expect(root.images.unpack('example.com/foreign:1')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('non-distributable') });
    // An OCI export keeps the descriptor (a docker archive needs the bytes, and says so).
    const out = join(root.dir, 'out');
    await root.images.export(['example.com/foreign:1'], out, { format: 'oci' });
    expect(existsSync(join(out, 'blobs', 'sha256', 'f'.repeat(64)))).toBe(false);
    await expect(root.images.export(['example.com/foreign:1'], join(root.dir, 'd.tar'), { format: 'docker' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('fsck finds a corrupt blob, and an image whose content is gone', async () => {
    const { one, layout } = twoImages();
    await root.images.import(layout);
    const appLayer = (JSON.parse(one.manifest.toString()) as { layers: { digest: string }[] }).layers[1]!.digest;
    writeFileSync(root.images.content.path(appLayer), 'not the layer');
    const report = await root.images.fsck({ content: true });
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.kind)).toContain('corrupt-blob');
    expect(report.problems.some((p) => p.kind === 'broken-image' || p.kind === 'not-unpackable')).toBe(true);
    const repaired = await root.images.fsck({ content: true, repair: true });
    expect(repaired.problems.find((p) => p.kind === 'corrupt-blob')!.repaired).toBe(true);
    expect(root.images.content.has(appLayer)).toBe(false);
  });
});

describe.skipIf(!needs('root'))('a sweep that cannot remove something', () => {
  const root = imagesRoot('strata-gc-fail-');

  it('reports the failure and goes on with the rest', async () => {
    const stuck = await root.images.content.ingest(Buffer.from('immutable'));
    const loose = await root.images.content.ingest(Buffer.from('loose'));
    execFileSync('chattr', ['+i', root.images.content.path(stuck.digest)]); // not even root may unlink it
    try {
      const freed = await root.images.gc();
      expect(freed.blobs).toEqual([loose.digest]);
      expect(freed.errors).toEqual([expect.stringContaining(stuck.digest)]);
    } finally {
      execFileSync('chattr', ['-i', root.images.content.path(stuck.digest)]);
    }
    expect((await root.images.gc()).blobs).toEqual([stuck.digest]);
  });
});

describe.skipIf(!needs('root', 'overlay'))('containers through a kernel mount', () => {
  const root = imagesRoot('strata-containers-', 'overlay');

  it('commits what was written through the mount, and refuses to remove a mounted container', async () => {
    const one = buildImage({ layers: [base, app] });
    await root.images.import(writeDirectory(join(root.dir, 'layout'), layoutFiles(one.blobs, [named(one.manifestDescriptor, 'example.com/one:1')])));
    await root.images.createContainer('example.com/one:1', 'web');
    const target = join(root.dir, 'mnt');
    mkdirSync(target);
    await root.images.mountContainer('web', target);
    try {
      writeFileSync(join(target, 'app', 'written'), 'through the kernel\n');
      rmSync(join(target, 'bin'), { recursive: true });
      expect(await root.images.mountPoints('web')).toEqual([target]);
      await expect(root.images.removeContainer('web')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    } finally {
      await root.images.snapshotter.unmount(target);
    }
    await root.images.commit('web', 'example.com/one:web');
    const chain = (await root.images.unpack('example.com/one:web')).chainID!;
    const view = join(root.dir, 'view');
    mkdirSync(view);
    await root.images.snapshotter.view('check', chain);
    await root.images.snapshotter.mount('check', view);
    try {
      expect(readFileSync(join(view, 'app', 'written'), 'utf8')).toBe('through the kernel\n');
      expect(existsSync(join(view, 'bin'))).toBe(false);
      expect(readdirSync(view).sort()).toEqual(['app', 'etc']);
    } finally {
      await root.images.snapshotter.unmount(view);
    }
    await root.images.removeContainer('web', { force: true });
  });
});
