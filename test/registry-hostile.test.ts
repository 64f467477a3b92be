/**
 * Hostile registries, played by a server this test runs: oversized and endless manifests, indexes that
 * name themselves or nest without end, blobs larger than their descriptors or endless, lying digests,
 * token realms on another scheme (and an https registry, trusted through a CA file, naming an http realm),
 * redirects down to http, tag pages on another host. Each must end in a typed error, with bounded memory,
 * nothing named or published, and no secret in any message.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openImages, type Images } from '@strata/images';
import { pullImage, Registry } from '@strata/registry';
import { buildImage, layer } from './helpers/images.js';
import { needs } from './helpers/oracle.js';
import { sha256 } from './helpers/raw-tar.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A registry that answers whatever `routes` says, keyed by `METHOD path`; `/v2/` is open. */
class FakeRegistry {
  routes = new Map<string, Handler>();
  readonly seen: { method: string; path: string; headers: IncomingMessage['headers'] }[] = [];
  /** Bytes written to bodies, to show memory stayed bounded on the client. */
  written = 0;
  constructor(
    readonly server: Server,
    readonly host: string,
  ) {}

  static async start(make: (handler: Handler) => Server = (h) => createHttpServer(h)): Promise<FakeRegistry> {
    let self: FakeRegistry;
    const server = make((req, res) => {
      self.seen.push({ method: req.method!, path: req.url!, headers: req.headers });
      const route = self.routes.get(`${req.method} ${req.url!.split('?')[0]}`);
      if (route) return route(req, res);
      if (req.url === '/v2/') return void res.writeHead(200, { 'content-length': '0' }).end();
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'nothing here' }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new FakeRegistry(server, `127.0.0.1:${(server.address() as { port: number }).port}`);
    return self;
  }

  /** Serves `bytes` at `path` as `type`. */
  serve(path: string, bytes: Buffer, type = 'application/octet-stream'): void {
    const send: Handler = (req, res) => {
      res.writeHead(200, { 'content-type': type, 'content-length': String(bytes.length), 'docker-content-digest': sha256(bytes) });
      if (req.method === 'HEAD') return void res.end();
      this.written += bytes.length;
      res.end(bytes);
    };
    this.routes.set(`GET ${path}`, send);
    this.routes.set(`HEAD ${path}`, send);
  }

  /** Streams bytes at `path` without end (until the client goes). */
  endless(path: string, type: string, withLength?: number): void {
    this.routes.set(`GET ${path}`, (_req, res) => {
      res.writeHead(200, { 'content-type': type, ...(withLength !== undefined ? { 'content-length': String(withLength) } : {}) });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) this.written += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('hostile registries', () => {
  let work: string;
  let fake: FakeRegistry;
  let images: Images;
  let roots = 0;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-registry-hostile-'));
  });
  afterEach(async () => {
    await images?.close();
    await fake?.close();
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  async function setUp(make?: (handler: Handler) => Server): Promise<void> {
    fake = await FakeRegistry.start(make);
    images = await openImages(join(work, `root-${++roots}`), { driver: 'userspace' });
  }

  /** Nothing named, no blob but what the test says, no ingest left. */
  function nothingLeft(): void {
    expect(images.images.list()).toEqual([]);
    expect(images.content.ingests()).toEqual([]);
  }

  const pull = (ref: string, extra = {}) => pullImage(images, `${fake.host}/${ref}`, { attempts: 2, backoffMs: 10, credentials: async () => ({ username: 'u', password: 'hunter2-secret' }), ...extra });

  it('refuses a manifest over 4 MiB, declared or not, reading no more than the limit', async () => {
    await setUp();
    fake.serve('/v2/evil/app/manifests/big', Buffer.alloc(5 * 1024 * 1024, 0x20), MANIFEST);
    await expect(pull('evil/app:big')).rejects.toMatchObject({ code: 'IMAGE_FORMAT', message: expect.stringMatching(/limit/) });
    fake.endless('/v2/evil/app/manifests/endless', MANIFEST);
    await expect(pull('evil/app:endless')).rejects.toMatchObject({ code: 'IMAGE_FORMAT' });
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.written).toBeLessThan(16 * 1024 * 1024);
    nothingLeft();
  });

  it('refuses an index that names itself (content that is not its digest), and indexes nested without end', async () => {
    await setUp();
    // The tag's index lists a child by a digest; asked for it, the registry sends the index again.
    const child = sha256(Buffer.from('some other index'));
    const loop = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: INDEX, digest: child, size: 200, platform: { os: 'linux', architecture: 'amd64' } }] }));
    fake.serve('/v2/evil/app/manifests/loop', loop, INDEX);
    fake.serve(`/v2/evil/app/manifests/${child}`, loop, INDEX);
    await expect(pull('evil/app:loop', { platform: { all: true } })).rejects.toMatchObject({ code: expect.stringMatching(/IMAGE_FORMAT|DIGEST_MISMATCH/) });

    // Twenty honest indexes, each naming the next: too deep.
    let inner = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [] }));
    for (let i = 0; i < 20; i++) {
      fake.serve(`/v2/evil/app/manifests/${sha256(inner)}`, inner, INDEX);
      inner = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: INDEX, digest: sha256(inner), size: inner.length }] }));
    }
    fake.serve('/v2/evil/app/manifests/deep', inner, INDEX);
    await expect(pull('evil/app:deep', { platform: { all: true } })).rejects.toMatchObject({ code: 'IMAGE_FORMAT', message: expect.stringMatching(/nest too deep/) });
    nothingLeft();
  });

  it('refuses content whose digest is not what it claims or was asked for', async () => {
    await setUp();
    const built = buildImage({ layers: [layer({ 'a.txt': 'a' })] });
    const lying = Buffer.from(built.manifest);
    fake.routes.set('GET /v2/evil/app/manifests/lie', (_req, res) => void res.writeHead(200, { 'content-type': MANIFEST, 'docker-content-digest': sha256(Buffer.from('x')) }).end(lying));
    await expect(pull('evil/app:lie')).rejects.toMatchObject({ code: 'IMAGE_FORMAT', message: expect.stringMatching(/says sha256:/) });
    fake.serve(`/v2/evil/app/manifests/${sha256(Buffer.from('other'))}`, lying, MANIFEST);
    await expect(pull(`evil/app@${sha256(Buffer.from('other'))}`)).rejects.toMatchObject({ code: 'IMAGE_FORMAT' });
    fake.serve('/v2/evil/app/manifests/garbage', Buffer.from('<html>not json</html>'), 'text/html');
    await expect(pull('evil/app:garbage')).rejects.toMatchObject({ code: 'IMAGE_FORMAT', message: expect.stringMatching(/not JSON/) });
    fake.serve('/v2/evil/app/manifests/v1', Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'evil/app' })), 'application/vnd.docker.distribution.manifest.v1+prettyjws');
    await expect(pull('evil/app:v1')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    nothingLeft();
  });

  it('discards a blob larger than its descriptor, and an endless one, publishing nothing', async () => {
    await setUp();
    const built = buildImage({ layers: [layer({ 'a.txt': 'a'.repeat(1000) })] });
    for (const [digest, bytes] of built.blobs) fake.serve(`/v2/evil/app/blobs/${digest}`, bytes);
    fake.serve('/v2/evil/app/manifests/ok', built.manifest, MANIFEST);
    const layerDigest = (JSON.parse(built.manifest.toString()) as { layers: { digest: string }[] }).layers[0]!.digest;
    const real = built.blobs.get(layerDigest)!;
    // More bytes than the descriptor says (the registry's own Content-Length agrees with itself).
    fake.serve(`/v2/evil/app/blobs/${layerDigest}`, Buffer.concat([real, Buffer.alloc(4096, 1)]));
    await expect(pull('evil/app:ok')).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(images.content.has(layerDigest)).toBe(false);
    nothingLeft();

    fake.endless(`/v2/evil/app/blobs/${layerDigest}`, 'application/octet-stream');
    fake.written = 0;
    await expect(pull('evil/app:ok')).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.written).toBeLessThan(16 * 1024 * 1024);
    expect(images.content.has(layerDigest)).toBe(false);
    nothingLeft();
  });

  it('never sends credentials to a token realm on another scheme, nor over plain http from an https registry, nor follows https down to http', async () => {
    await setUp();
    fake.routes.set('GET /v2/evil/app/manifests/x', (_req, res) => void res.writeHead(401, { 'www-authenticate': 'Bearer realm="file:///etc/passwd",service="evil"' }).end());
    const error = await pull('evil/app:x').catch((e: Error) => e);
    expect(error).toMatchObject({ code: 'REGISTRY', message: expect.stringMatching(/realm over "?file:/) });
    expect((error as Error).message).not.toContain('hunter2-secret');
    await fake.close();

    // An https registry (trusted through a CA file) that names an http token realm.
    if (!needs('openssl')) return;
    const dir = mkdtempSync(join(work, 'tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const tokenSaw: string[] = [];
    const tokenServer = createHttpServer((req, res) => {
      tokenSaw.push(String(req.headers.authorization));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t"}');
    });
    await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
    const tokenPort = (tokenServer.address() as { port: number }).port;
    fake = await FakeRegistry.start((h) => createHttpsServer({ key: readFileSync(`${dir}/key.pem`), cert: readFileSync(`${dir}/cert.pem`) }, h));
    try {
      fake.routes.set('GET /v2/evil/app/manifests/x', (_req, res) => void res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${tokenPort}/token",service="evil"` }).end());
      // TLS with the CA file works (the ping), and the realm is refused before any credential leaves.
      const registry = new Registry(fake.host, { plainHttp: false, caFile: `${dir}/cert.pem`, credentials: async () => ({ username: 'u', password: 'hunter2-secret' }) });
      try {
        await registry.ping();
        // A blob redirected from https down to http is refused.
        const digest = sha256(Buffer.from('blob'));
        fake.routes.set(`GET /v2/evil/app/blobs/${digest}`, (_req, res) => void res.writeHead(307, { location: `http://127.0.0.1:${tokenPort}/blob` }).end());
        await expect(registry.openBlob('evil/app', digest, 0)).rejects.toMatchObject({ code: 'REGISTRY', message: expect.stringMatching(/https to plain http/) });
        await expect(registry.manifest('evil/app', 'x')).rejects.toMatchObject({ code: 'REGISTRY', message: expect.stringMatching(/only over https/) });
      } finally {
        await registry.close();
      }
      expect(tokenSaw).toEqual([]);
      // Without the CA file, the registry's certificate is not trusted.
      const untrusted = new Registry(fake.host, { plainHttp: false, attempts: 1 });
      await expect(untrusted.ping()).rejects.toThrow(/certificate/);
      await untrusted.close();
    } finally {
      await new Promise<void>((resolve) => tokenServer.close(() => resolve()));
    }
  });

  it('lists tags page by page, and refuses a page on another host', async () => {
    await setUp();
    let page = 0;
    fake.routes.set('GET /v2/evil/app/tags/list', (_req, res) => {
      page++;
      if (page === 1) return void res.writeHead(200, { 'content-type': 'application/json', link: '</v2/evil/app/tags/list?n=2&last=b>; rel="next"' }).end('{"name":"evil/app","tags":["a","b"]}');
      if (page === 2) return void res.writeHead(200, { 'content-type': 'application/json', link: '<http://elsewhere.example/v2/evil/app/tags/list?last=c>; rel="next"' }).end('{"name":"evil/app","tags":["c"]}');
      res.writeHead(500).end();
    });
    const registry = new Registry(fake.host, {});
    try {
      await expect(registry.tags('evil/app')).rejects.toMatchObject({ code: 'REGISTRY', message: expect.stringMatching(/another host/) });
      page = 0;
      fake.routes.set('GET /v2/good/app/tags/list', (req, res) => {
        const last = new URL(req.url!, 'http://x').searchParams.get('last');
        if (last === null) return void res.writeHead(200, { link: '</v2/good/app/tags/list?n=2&last=b>; rel="next"' }).end('{"tags":["a","b"]}');
        if (last === 'b') return void res.writeHead(200, { link: '</v2/good/app/tags/list?n=2&last=d>; rel="next"' }).end('{"tags":["c","d"]}');
        res.writeHead(200).end('{"tags":["e"]}');
      });
      expect(await registry.tags('good/app')).toEqual(['a', 'b', 'c', 'd', 'e']);
      fake.routes.set('GET /v2/bad/app/tags/list', (_req, res) => void res.writeHead(200).end('{"tags": [1, 2]}'));
      await expect(registry.tags('bad/app')).rejects.toMatchObject({ code: 'REGISTRY' });
      fake.routes.set('GET /v2/bad/app/tags/list', (_req, res) => void res.writeHead(200).end('tags: a, b'));
      await expect(registry.tags('bad/app')).rejects.toMatchObject({ code: 'REGISTRY', message: expect.stringMatching(/not JSON/) });
    } finally {
      await registry.close();
    }
  });

  it('a registry that refuses twice is UNAUTHENTICATED, the password in no message', async () => {
    await setUp();
    fake.routes.set('GET /v2/evil/app/manifests/x', (_req, res) => void res.writeHead(401, { 'www-authenticate': 'Basic realm="evil"' }).end());
    const error = await pull('evil/app:x').catch((e: Error) => e);
    expect(error).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(JSON.stringify({ message: (error as Error).message, stack: (error as Error).stack })).not.toContain('hunter2-secret');
    expect(fake.seen.filter((s) => s.path === '/v2/evil/app/manifests/x')).toHaveLength(2);
    nothingLeft();
  });

  it('refuses a token answer that is JSON but no token (null, a number, a token of the wrong type)', async () => {
    await setUp();
    const answers = ['null', '5', '"token"', '{"token": 5}', '{"token": {"a": 1}, "access_token": null}', '[]'];
    let answer = '';
    fake.routes.set('GET /token', (_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(answer));
    fake.routes.set('GET /v2/evil/app/manifests/x', (_req, res) => void res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${fake.host}/token",service="evil"` }).end());
    for (answer of answers) {
      await expect(pull('evil/app:x'), answer).rejects.toMatchObject({ code: 'REGISTRY', message: expect.stringMatching(/sent no usable token/) });
      nothingLeft();
    }
  });
});
