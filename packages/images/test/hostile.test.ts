/**
 * Hostile images: each is a typed error, and nothing is published (no blob, no image, no ingest left, no
 * snapshot committed). Archives are built by the naive tar builder and documents by hand.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chainID } from '@strata/core';
import { platformImages } from '../src/index.js';
import { imagesRoot } from './helpers.js';
import { buildImage, dockerSaveFiles, layer, layoutFiles, named, OCI_INDEX, OCI_MANIFEST, writeArchive, writeDirectory } from '../../../test/helpers/images.js';
import { rawTar, sha256 } from '../../../test/helpers/raw-tar.js';

const base = layer({ 'etc/': '', 'etc/hostname': 'box\n' });

describe('hostile images', () => {
  const root = imagesRoot('strata-hostile-images-');

  /** Importing `source` fails with `code`, and leaves the root as it was. */
  async function refused(source: string, code: string, options = {}): Promise<void> {
    await expect(root.images.import(source, options)).rejects.toMatchObject({ code });
    expect(root.images.content.digests()).toEqual([]);
    expect(root.images.list()).toEqual([]);
    expect(root.images.content.ingests()).toEqual([]);
  }

  function dockerArchive(edit: (manifest: Record<string, unknown>[]) => void, extra: Parameters<typeof writeArchive>[2] = []): string {
    const built = buildImage({ layers: [base], gzip: false });
    return writeArchive(join(root.dir, 'save.tar'), dockerSaveFiles([{ built, tags: ['evil:1'], layers: [base] }], edit), extra);
  }

  it('refuses docker save layer paths that leave the archive', async () => {
    await refused(dockerArchive((m) => ((m[0]!.Layers as string[])[0] = '../../etc/passwd')), 'UNSAFE_PATH');
    await refused(dockerArchive((m) => ((m[0]!.Layers as string[])[0] = '/etc/passwd')), 'UNSAFE_PATH');
    await refused(dockerArchive((m) => (m[0]!.Config = 'x/../../config.json')), 'UNSAFE_PATH');
  });

  it('refuses layer entries that are symlinks out of the archive', async () => {
    for (const target of ['/etc/passwd', '../../../etc/passwd']) {
      await refused(dockerArchive((m) => ((m[0]!.Layers as string[])[0] = 'escape/layer.tar'), [{ name: 'escape/layer.tar', type: '2', linkname: target }]), 'UNSAFE_PATH');
    }
    // A link to a directory on the way: `evil/` → `/`.
    await refused(dockerArchive((m) => ((m[0]!.Layers as string[])[0] = 'evil/etc/passwd'), [{ name: 'evil', type: '2', linkname: '/' }]), 'UNSAFE_PATH');
    // A loop of links.
    await refused(dockerArchive((m) => ((m[0]!.Layers as string[])[0] = 'a'), [{ name: 'a', type: '2', linkname: 'b' }, { name: 'b', type: '2', linkname: 'a' }]), 'IMAGE_FORMAT');
  });

  it('refuses archive members that name paths outside the archive', async () => {
    const files = layoutFiles(buildImage({ layers: [base] }).blobs, []);
    await refused(writeArchive(join(root.dir, 'a.tar'), files, [{ name: '../outside', data: 'x' }]), 'UNSAFE_PATH');
  });

  it('refuses a blob whose bytes are not its name, and a descriptor whose size is wrong', async () => {
    const image = buildImage({ layers: [base] });
    const files = layoutFiles(image.blobs, [named(image.manifestDescriptor, 'example.com/x:1')]);
    const layerPath = [...files.keys()].find((p) => p.startsWith('blobs/') && files.get(p)![0] === 0x1f)!;
    // Same size, one byte changed: found by its digest.
    const flipped = new Map(files);
    const bytes = Buffer.from(files.get(layerPath)!);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 5) ^ 0xff, bytes.length - 5);
    flipped.set(layerPath, bytes);
    await refused(writeArchive(join(root.dir, 'flip.tar'), flipped), 'DIGEST_MISMATCH');
    await refused(writeDirectory(join(root.dir, 'flip-dir'), flipped), 'DIGEST_MISMATCH');
    // Another blob under the name: in an archive its digest gives it away; in a directory, its size first.
    const swapped = new Map(files);
    swapped.set(layerPath, gzipSync(layer({ 'etc/': '', 'etc/hostname': 'swapped\n' })));
    await refused(writeArchive(join(root.dir, 'swap.tar'), swapped), 'DIGEST_MISMATCH');
    await refused(writeDirectory(join(root.dir, 'swap-dir'), swapped), 'IMAGE_FORMAT');

    const manifest = JSON.parse(image.manifest.toString());
    manifest.layers[0].size += 1;
    const lying = buildImage({ layers: [base], manifest: (m) => Object.assign(m, { layers: manifest.layers }) });
    await refused(writeArchive(join(root.dir, 'size.tar'), layoutFiles(lying.blobs, [named(lying.manifestDescriptor, 'example.com/x:1')])), 'IMAGE_FORMAT');
  });

  it('refuses an index that names itself, and follows no cycle', async () => {
    // A blob cannot hold its own digest, so a self-naming index arrives under a name its bytes do not hash to.
    const fake = 'sha256:' + 'ab'.repeat(32);
    const self = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_INDEX, digest: fake, size: 100 }] }));
    const files = layoutFiles(new Map([[fake, self]]), [{ mediaType: OCI_INDEX, digest: fake, size: self.length }]);
    await refused(writeArchive(join(root.dir, 'self.tar'), files), 'DIGEST_MISMATCH');
    // And the graph walk refuses a cycle even from a store that lied.
    const reader = { has: () => true, size: () => self.length, readBytes: () => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_INDEX, digest: fake, size: self.length }] })) };
    expect(() => platformImages(reader as never, { mediaType: OCI_INDEX, digest: fake, size: self.length }, { all: true })).toThrow(expect.objectContaining({ code: 'IMAGE_FORMAT' }));
  });

  it('refuses a manifest over 4 MiB', async () => {
    const big = buildImage({ layers: [base], manifest: (m) => Object.assign(m, { annotations: { padding: 'x'.repeat(5 * 1024 * 1024) } }) });
    await refused(writeArchive(join(root.dir, 'big.tar'), layoutFiles(big.blobs, [named(big.manifestDescriptor, 'example.com/big:1')])), 'IMAGE_FORMAT');
  });

  it('refuses unknown media types: of an index entry, a config (an artifact) and a layer', async () => {
    const image = buildImage({ layers: [base] });
    await refused(writeArchive(join(root.dir, 'm1.tar'), layoutFiles(image.blobs, [{ ...image.manifestDescriptor, mediaType: 'application/x-unknown' }])), 'UNSUPPORTED');
    const artifact = buildImage({ layers: [base], manifest: (m) => Object.assign(m, { config: { ...(m.config as object), mediaType: 'application/vnd.example.artifact' } }) });
    await refused(writeArchive(join(root.dir, 'm2.tar'), layoutFiles(artifact.blobs, [named(artifact.manifestDescriptor, 'example.com/a:1')])), 'UNSUPPORTED');
    const odd = buildImage({ layers: [base], manifest: (m) => Object.assign(m, { layers: (m.layers as { mediaType: string }[]).map((l) => ({ ...l, mediaType: 'application/x-tar+lzma' })) }) });
    await refused(writeArchive(join(root.dir, 'm3.tar'), layoutFiles(odd.blobs, [named(odd.manifestDescriptor, 'example.com/o:1')])), 'UNSUPPORTED');
  });

  it('refuses documents that are not what they claim', async () => {
    const image = buildImage({ layers: [base] });
    const notJson = new Map(layoutFiles(image.blobs, []));
    notJson.set('index.json', Buffer.from('{"schemaVersion": 2, "manifests": ['));
    await refused(writeArchive(join(root.dir, 'j.tar'), notJson), 'IMAGE_FORMAT');
    const schema1 = buildImage({ layers: [base], manifest: (m) => Object.assign(m, { schemaVersion: 1 }) });
    await refused(writeArchive(join(root.dir, 's1.tar'), layoutFiles(schema1.blobs, [named(schema1.manifestDescriptor, 'example.com/s:1')])), 'IMAGE_FORMAT');
    const badName = layoutFiles(image.blobs, [named(image.manifestDescriptor, 'UPPER/../x')]);
    await refused(writeArchive(join(root.dir, 'n.tar'), badName), 'IMAGE_FORMAT');
    await refused(writeArchive(join(root.dir, 'none.tar'), new Map([['hello', Buffer.from('x')]])), 'IMAGE_FORMAT');
    await refused(dockerArchive((m) => (m[0]!.Layers = 'not a list')), 'IMAGE_FORMAT');
    // The legacy layout's layers are plain: one that is not the config's diffID is found at import.
    await refused(dockerArchive((m) => ((m[0]!.Layers as string[]).push((m[0]!.Layers as string[])[0]!))), 'IMAGE_FORMAT');
    const built = buildImage({ layers: [base], gzip: false, config: (c) => ((c.rootfs as { diff_ids: string[] }).diff_ids = [sha256(Buffer.from('other'))]) });
    await refused(writeArchive(join(root.dir, 'd.tar'), dockerSaveFiles([{ built, tags: ['x:1'], layers: [base] }])), 'DIGEST_MISMATCH');
  });

  it('refuses a config field of the wrong type, naming it, as Go\'s typed decoding in containerd and Docker does', async () => {
    const cases: [string, (c: Record<string, unknown>) => void][] = [
      ['config must be an object, not a string', (c) => (c.config = 'x')],
      ['config.Env must be an array of strings, not a string', (c) => (c.config = { Env: 'PATH=/bin' })],
      ['config.Env[1] must be a string, not a number', (c) => (c.config = { Env: ['A=b', 5] })],
      ['config.Cmd[0] must be a string, not null', (c) => (c.config = { Cmd: [null] })],
      ['config.Entrypoint must be an array of strings, not an object', (c) => (c.config = { Entrypoint: {} })],
      ['config.User must be a string, not a number', (c) => (c.config = { User: 0 })],
      ['config.WorkingDir must be a string, not an array', (c) => (c.config = { WorkingDir: ['/'] })],
      ['config.Labels["a"] must be a string, not a number', (c) => (c.config = { Labels: { a: 1 } })],
      ['config.ExposedPorts["80/tcp"] must be an object, not a string', (c) => (c.config = { ExposedPorts: { '80/tcp': 'yes' } })],
      ['config.Volumes must be an object of objects, not an array', (c) => (c.config = { Volumes: ['/v'] })],
      ['config.ArgsEscaped must be true or false, not a string', (c) => (c.config = { ArgsEscaped: 'true' })],
      ['config.Healthcheck.Interval must be an integer, not a fraction', (c) => (c.config = { Healthcheck: { Test: ['CMD', 'true'], Interval: 1.5 } })],
      ['history[1] must be an object, not null', (c) => (c.history = [{ created_by: 'a' }, null])],
      ['history[0].empty_layer must be true or false, not a string', (c) => (c.history = [{ empty_layer: 'yes' }])],
      ['history[0].created_by must be a string, not an array', (c) => (c.history = [{ created_by: ['sh'] }])],
      ['created must be a string, not a number', (c) => (c.created = 0)],
      ['variant must be a string, not a number', (c) => (c.variant = 8)],
      ['os.features must be an array of strings, not a string', (c) => (c['os.features'] = 'x')],
    ];
    for (const [message, edit] of cases) {
      const image = buildImage({ layers: [base], config: edit });
      const source = writeDirectory(join(root.dir, 'typed'), layoutFiles(image.blobs, [named(image.manifestDescriptor, 'example.com/typed:1')]));
      await expect(root.images.import(source), message).rejects.toMatchObject({ code: 'IMAGE_FORMAT', message: expect.stringContaining(message) });
      expect(root.images.list()).toEqual([]);
      expect(root.images.content.digests()).toEqual([]);
      rmSync(source, { recursive: true });
    }
  });

  it('finds a config whose diff_ids do not match the layers while unpacking, and commits nothing', async () => {
    const image = buildImage({ layers: [base, layer({ 'x/': '' })], config: (c) => ((c.rootfs as { diff_ids: string[] }).diff_ids[1] = sha256(Buffer.from('not this layer'))) });
    await root.images.import(writeDirectory(join(root.dir, 'l'), layoutFiles(image.blobs, [named(image.manifestDescriptor, 'example.com/lie:1')])));
    await expect(root.images.unpack('example.com/lie:1')).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    const snapshots: string[] = [];
    await root.images.snapshotter.walk((info) => void snapshots.push(`${info.kind} ${info.name}`));
    expect(snapshots).toEqual([`committed ${chainID([image.diffIDs[0]!])}`]); // the honest first layer only
  });

  it('stops a gzip layer that inflates past the limits, and commits nothing', async () => {
    const bomb = rawTar([{ name: 'zeros', data: Buffer.alloc(8 * 1024 * 1024) }]);
    const image = buildImage({ layers: [bomb] });
    await root.images.import(writeDirectory(join(root.dir, 'b'), layoutFiles(image.blobs, [named(image.manifestDescriptor, 'example.com/bomb:1')])));
    expect(image.blobs.get((JSON.parse(image.manifest.toString()) as { layers: { digest: string }[] }).layers[0]!.digest)!.length).toBeLessThan(64 * 1024);
    await expect(root.images.unpack('example.com/bomb:1', { limits: { maxTotalBytes: 1024 * 1024 } })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    const snapshots: string[] = [];
    await root.images.snapshotter.walk((info) => void snapshots.push(info.name));
    expect(snapshots).toEqual([]);
    // And an archive that inflates past the import's limits.
    const archive = join(root.dir, 'bomb.tar.gz');
    writeFileSync(archive, gzipSync(rawTar([{ name: 'blobs/sha256/' + '0'.repeat(64), data: Buffer.alloc(4 * 1024 * 1024) }])));
    await expect(root.images.import(archive, { limits: { maxTotalBytes: 1024 * 1024 } })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
  });
});
