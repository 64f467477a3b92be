/**
 * Multi-platform images through a real registry (docker-registry on 127.0.0.1): skopeo pushes an OCI index
 * of two platforms; strata pulls one platform (fetching nothing of the other), then all of them, and pushes
 * the whole index to another repository, where it has the same digest and skopeo reads both platforms.
 */
import { execFile as execFileCb } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImages, parseIndex, type Images } from '@strata/images';
import { pullImage, pushImage } from '@strata/registry';
import { buildImage, buildIndex, layer, layoutFiles, writeDirectory, type Built } from './helpers/images.js';
import { needs } from './helpers/oracle.js';
import { TestRegistry } from './helpers/registry.js';
import { afterEachTransaction } from './helpers/transactions.js';

const execFile = promisify(execFileCb);

describe.skipIf(!needs('skopeo', 'docker-registry'))('multi-platform images through docker-registry', () => {
  let work: string;
  let registry: TestRegistry;
  let amd64: Built;
  let arm64: Built;
  let index: { digest: string };
  const roots: Images[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'strata-registry-index-'));
    registry = await TestRegistry.start(join(work, 'registry'));
    amd64 = buildImage({ layers: [layer({ 'etc/': '', 'etc/arch': 'amd64\n' })], architecture: 'amd64' });
    arm64 = buildImage({ layers: [layer({ 'etc/': '', 'etc/arch': 'arm64\n' })], architecture: 'arm64' });
    const built = buildIndex([amd64, arm64]);
    index = built.descriptor;
    writeDirectory(join(work, 'layout'), layoutFiles(built.blobs, [{ ...built.descriptor, annotations: { 'org.opencontainers.image.ref.name': 'multi' } }]));
    await execFile('skopeo', ['copy', '--quiet', '--all', '--dest-tls-verify=false', `oci:${join(work, 'layout')}:multi`, `docker://${registry.host}/multi/app:1`]);
  }, 120_000);
  afterAll(async () => {
    for (const images of roots) await images.close();
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  async function root(name: string): Promise<Images> {
    const images = await openImages(join(work, name), { driver: 'userspace' });
    roots.push(images);
    return images;
  }

  const layerOf = (built: Built) => (JSON.parse(built.manifest.toString()) as { layers: { digest: string }[] }).layers[0]!.digest;

  it('pulls one platform of an index, fetching nothing of the others', async () => {
    const images = await root('one');
    // The pull's lease goes in the transaction that names the image: no committed state has both.
    const named: number[] = [];
    const restore = afterEachTransaction(images.root.metadata, () => {
      if (images.list().length > 0) named.push(images.leases.list().length);
    });
    const result = await pullImage(images, `${registry.host}/multi/app:1`, { platform: { platform: { os: 'linux', architecture: 'arm64' } } });
    restore();
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter((leases) => leases > 0)).toEqual([]);
    expect(result.target.digest).toBe(index.digest); // named by the index, as docker pull does
    expect(images.content.has(layerOf(arm64))).toBe(true);
    expect(images.content.has(layerOf(amd64))).toBe(false);
    const requests = registry.requests();
    expect(requests.some((r) => r.includes(amd64.manifestDescriptor.digest) && r.startsWith('GET') && r.includes('/multi/app/'))).toBe(false);
  });

  it('pulls every platform, and pushes the index whole to another repository by mounting', async () => {
    const images = await root('all');
    const result = await pullImage(images, `${registry.host}/multi/app:1`, { platform: { all: true } });
    expect(result.fetched).toBe(4); // two configs, two layers
    const pushed = await pushImage(images, `${registry.host}/multi/app:1`, `${registry.host}/copy/app:1`);
    expect(pushed).toMatchObject({ digest: index.digest, mounted: 4, uploaded: 0 });
    const { stdout } = await execFile('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/copy/app:1`]);
    const raw = parseIndex(Buffer.from(stdout), 'pushed index');
    expect(raw.manifests.map((m) => m.platform?.architecture).sort()).toEqual(['amd64', 'arm64']);
    const out = join(work, 'copied');
    await execFile('skopeo', ['copy', '--quiet', '--all', '--src-tls-verify=false', `docker://${registry.host}/copy/app:1`, `oci:${out}:x`]);
  });
});
