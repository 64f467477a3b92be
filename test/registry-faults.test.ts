/**
 * Pulls and pushes through a proxy that injects faults between strata and a real registry (docker-registry
 * with basic auth): a connection dropped mid-blob, a registry that then ignores `Range`, 503 and 429 with
 * `Retry-After`, a stalled body, a body cut short, a flipped byte (once, and always), a redirect to another
 * host (which must not see the registry's credentials), an abort, and a chunked upload whose answer is lost.
 * Each pull must end with the same verified image a clean pull gives, or with a typed error and nothing
 * named, published or left behind.
 */
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openImages, platformImages, readManifest, type Images } from '@strata/images';
import { pullImage, pushImage, type PullOptions, type TransferEvent } from '@strata/registry';
import { aptImage, type AptImage } from '../benchmarks/inputs.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { needs } from './helpers/oracle.js';
import { TestRegistry } from './helpers/registry.js';

describe.skipIf(!needs('debootstrap', 'docker-registry', 'htpasswd'))('registry transfers under injected faults', () => {
  let work: string;
  let apt: AptImage;
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let source: Images;
  let layers: { digest: string; size: number }[];
  let cleanChain: string;
  let roots = 0;
  const opened: Images[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'strata-registry-faults-'));
    apt = aptImage();
    registry = await TestRegistry.start(join(work, 'registry'), 'basic');
    proxy = await FaultProxy.start(registry.host);
    source = await openImages(join(work, 'source'), { driver: 'userspace' });
    await source.import(apt.layout, { name: 'example.com/apt' });
    const [image] = platformImages(source.content, source.image('example.com/apt:apt').target, { all: true });
    layers = readManifest(source.content, image!.manifestDescriptor).layers.map((l) => ({ digest: l.digest, size: l.size }));
    await pushImage(source, 'example.com/apt:apt', `${registry.host}/faults/app:apt`, { credentials: async () => ({ username: registry.user, password: registry.password }) });
    cleanChain = (await source.unpack('example.com/apt:apt')).chainID!;
  }, 30 * 60_000);
  afterEach(() => {
    proxy.rules = [];
    proxy.seen.length = 0;
  });
  afterAll(async () => {
    for (const images of opened) await images.close().catch(() => {});
    await source?.close();
    await proxy?.stop();
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const credentials = async () => ({ username: registry.user, password: registry.password });
  const biggest = () => [...layers].sort((a, b) => b.size - a.size)[0]!;
  const blobPath = (digest: string) => new RegExp(`^/v2/faults/app/blobs/${digest}$`);

  async function freshRoot(): Promise<Images> {
    const images = await openImages(join(work, `root-${++roots}`), { driver: 'userspace' });
    opened.push(images);
    return images;
  }

  async function pull(images: Images, extra: Partial<PullOptions> = {}) {
    const events: TransferEvent[] = [];
    const result = await pullImage(images, `${proxy.host}/faults/app:apt`, { credentials, unpack: true, backoffMs: 20, timeoutMs: 2_000, onProgress: (e) => events.push(e), ...extra });
    return { result, events, retries: events.filter((e) => e.kind === 'retry') };
  }

  it('a clean pull through the proxy gives the image the source has', async () => {
    const { result, retries } = await pull(await freshRoot());
    expect(result).toMatchObject({ fetched: 3, refetched: 0, chainID: cleanChain });
    expect(retries).toEqual([]);
  });

  it('resumes a blob whose connection drops mid-way with a Range request, fetching nothing twice', async () => {
    const layer = biggest();
    proxy.rules = [{ method: 'GET', path: blobPath(layer.digest), fault: { kind: 'drop-mid' } }];
    const { result, retries } = await pull(await freshRoot());
    expect(result).toMatchObject({ fetched: 3, refetched: 0, chainID: cleanChain });
    expect(retries.length).toBeGreaterThanOrEqual(1);
    const gets = proxy.requests('GET', blobPath(layer.digest));
    expect(gets).toHaveLength(2);
    const from = Number(/^bytes=(\d+)-$/.exec(String(gets[1]!.headers.range))?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThan(layer.size);
  });

  it('copes with a registry that answers a Range request with the whole blob, and reports the bytes fetched again', async () => {
    const layer = biggest();
    proxy.rules = [
      { method: 'GET', path: blobPath(layer.digest), fault: { kind: 'drop-mid' } },
      { method: 'GET', path: blobPath(layer.digest), fault: { kind: 'ignore-range' } },
    ];
    const { result } = await pull(await freshRoot());
    expect(result.chainID).toBe(cleanChain);
    expect(result.refetched).toBeGreaterThan(0);
    expect(result.refetched).toBeLessThan(layer.size);
    expect(proxy.requests('GET', blobPath(layer.digest))[1]!.headers.range).toMatch(/^bytes=\d+-$/);
  });

  it('waits as 503 and 429 with Retry-After ask, then completes', async () => {
    proxy.rules = [
      { method: 'GET', path: /\/manifests\/apt$/, fault: { kind: 'status', status: 503, retryAfter: '1' } },
      { method: 'GET', path: blobPath(biggest().digest), fault: { kind: 'status', status: 429, retryAfter: '1' } },
    ];
    const started = Date.now();
    const { result, retries } = await pull(await freshRoot());
    expect(result.chainID).toBe(cleanChain);
    expect(retries.map((r) => r.kind === 'retry' && [r.reason, r.waitMs])).toEqual(expect.arrayContaining([['HTTP 503', 1000], ['HTTP 429', 1000]]));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('times out a stalled body and tries again', async () => {
    proxy.rules = [{ method: 'GET', path: blobPath(biggest().digest), fault: { kind: 'stall' } }];
    const { result, retries } = await pull(await freshRoot(), { timeoutMs: 1_000 });
    expect(result.chainID).toBe(cleanChain);
    expect(retries.map((r) => r.kind === 'retry' && r.reason)).toContainEqual(expect.stringMatching(/ETIMEDOUT/));
  });

  it('resumes a body cut short by a clean close', async () => {
    const layer = biggest();
    proxy.rules = [{ method: 'GET', path: blobPath(layer.digest), fault: { kind: 'short' } }];
    const { result } = await pull(await freshRoot());
    expect(result).toMatchObject({ refetched: 0, chainID: cleanChain });
    expect(proxy.requests('GET', blobPath(layer.digest))[1]!.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('discards a blob with a flipped byte and fetches it again from the start', async () => {
    const layer = biggest();
    proxy.rules = [{ method: 'GET', path: blobPath(layer.digest), fault: { kind: 'flip' } }];
    const images = await freshRoot();
    const { result } = await pull(images);
    expect(result.chainID).toBe(cleanChain);
    expect(result.refetched).toBe(layer.size);
    expect(images.content.ingests()).toEqual([]);
  });

  it('a blob that never verifies fails typed: nothing published, named or left in ingests', async () => {
    const layer = biggest();
    proxy.rules = [{ method: 'GET', path: blobPath(layer.digest), fault: { kind: 'flip' }, times: 100 }];
    const images = await freshRoot();
    await expect(pull(images)).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(images.content.has(layer.digest)).toBe(false);
    expect(images.images.get(`${proxy.host}/faults/app:apt`)).toBeUndefined();
    expect(images.content.ingests()).toEqual([]);
    const snapshots: string[] = [];
    await images.snapshotter.walk((info) => void snapshots.push(info.name));
    expect(snapshots).toEqual([]);
  });

  it("follows a blob redirect to another host without the registry's Authorization", async () => {
    const layer = biggest();
    const storageSaw: IncomingMessage['headers'][] = [];
    // "Storage" on another host name (localhost, not 127.0.0.1), serving the blob from the layout.
    const storage: Server = createServer((req, res) => {
      storageSaw.push(req.headers);
      const file = join(apt.layout, 'blobs', 'sha256', req.url!.split(':').pop()!.split('?')[0]!);
      res.writeHead(200, { 'content-length': String(statSync(file).size) });
      createReadStream(file).pipe(res);
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    const port = (storage.address() as { port: number }).port;
    try {
      proxy.rules = [{ method: 'GET', path: blobPath(layer.digest), fault: { kind: 'redirect', location: (path) => `http://localhost:${port}/signed${path.replace(/^\/v2/, '')}?sig=test` } }];
      const { result } = await pull(await freshRoot());
      expect(result.chainID).toBe(cleanChain);
      expect(storageSaw).toHaveLength(1);
      expect(storageSaw[0]!.authorization).toBeUndefined();
      // The same request did carry it to the registry: the check above could fail.
      expect(proxy.requests('GET', blobPath(layer.digest))[0]!.headers.authorization).toMatch(/^Basic /);
    } finally {
      await new Promise<void>((resolve) => storage.close(() => resolve()));
    }
  });

  it('an abort stops a stalled transfer at once, naming nothing', async () => {
    proxy.rules = [{ method: 'GET', path: blobPath(biggest().digest), fault: { kind: 'stall' } }];
    const images = await freshRoot();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 500);
    const started = Date.now();
    await expect(pull(images, { signal: controller.signal, timeoutMs: 60_000 })).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(images.images.get(`${proxy.host}/faults/app:apt`)).toBeUndefined();
    expect(images.content.has(biggest().digest)).toBe(false);
  });

  it('two pulls at once into one root fetch each blob once', async () => {
    const images = await freshRoot();
    const [a, b] = await Promise.all([pull(images), pull(images)]);
    expect(a.result.chainID).toBe(cleanChain);
    expect(b.result.chainID).toBe(cleanChain);
    expect(a.result.fetched + b.result.fetched).toBe(3);
    expect(a.result.present + b.result.present).toBe(3);
    for (const layer of layers) expect(proxy.requests('GET', blobPath(layer.digest))).toHaveLength(1);
  });

  it('a chunked upload resumes from the offset the registry reports, and starts anew when the registry has let it go', async () => {
    proxy.rules = [
      // Refused before it reached the registry: the session stands, at the offset the registry reports.
      { method: 'PATCH', path: /\/v2\/faults\/chunked\/blobs\/uploads\//, fault: { kind: 'status', status: 503 } },
      { method: 'PATCH', path: /\/v2\/faults\/chunked\/blobs\/uploads\//, fault: { kind: 'status', status: 503 } },
      // Done by the registry, its answer lost: distribution then refuses the stale location, so a new upload.
      { method: 'PATCH', path: /\/v2\/faults\/chunked\/blobs\/uploads\//, fault: { kind: 'lose-response' } },
      { method: 'PUT', path: /\/v2\/faults\/chunked\/blobs\/uploads\/.*digest=/, fault: { kind: 'status', status: 503 } },
    ];
    const events: TransferEvent[] = [];
    const result = await pushImage(source, 'example.com/apt:apt', `${proxy.host}/faults/chunked:1`, { credentials, chunkSize: 4 * 1024 * 1024, backoffMs: 20, timeoutMs: 5_000, concurrency: 1, onProgress: (e) => events.push(e) });
    expect(result).toMatchObject({ uploaded: 3, mounted: 0 });
    expect(events.filter((e) => e.kind === 'retry').length).toBeGreaterThanOrEqual(4);
    const uploads = proxy.seen.filter((s) => s.path.includes('/faults/chunked/blobs/uploads/'));
    // After each refused PATCH, strata asked where the upload stood (GET 204 with Range) and went on from there.
    const refused = uploads.findIndex((s) => s.fault === 'status' && s.method === 'PATCH');
    expect(uploads[refused + 1]?.method).toBe('GET');
    // After the lost answer: the status GET, then a new upload (POST).
    const lost = uploads.findIndex((s) => s.fault === 'lose-response');
    expect(uploads.slice(lost + 1, lost + 3).map((s) => s.method)).toEqual(['GET', 'POST']);
    // Whole and right: a pull straight from the registry gives the same chain.
    const images = await freshRoot();
    const pulled = await pullImage(images, `${registry.host}/faults/chunked:1`, { credentials, unpack: true });
    expect(pulled.chainID).toBe(cleanChain);
  });
});
