/**
 * Where credentials come from (strata's login file, Docker's `auths`, `credHelpers` and `credsStore` through
 * a real `docker-credential-*` program on PATH), how challenges parse, and the upload protocol details a
 * registry may ask for (`OCI-Chunk-Min-Length`), against a small registry this test plays.
 */
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImages } from '@strata/images';
import { credentialsFrom, parseChallenges, pushImage, removeLogin, saveLogin } from '@strata/registry';
import { buildImage, layer, layoutFiles, writeDirectory } from './helpers/images.js';
import { sha256 } from './helpers/raw-tar.js';

describe('credentials and challenges', () => {
  let work: string;
  let savedPath: string | undefined;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-credentials-'));
    // A credential helper speaking Docker's protocol: the host on stdin, JSON on stdout.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    const helper = join(bin, 'docker-credential-strata-test');
    writeFileSync(helper, `#!/bin/sh\n[ "$1" = get ] || exit 1\nhost=$(cat)\ncase "$host" in\n  helped.example) echo '{"ServerURL":"helped.example","Username":"helper-user","Secret":"helper-secret"}' ;;\n  token.example) echo '{"ServerURL":"token.example","Username":"<token>","Secret":"refresh-token"}' ;;\n  store.example) echo '{"ServerURL":"store.example","Username":"store-user","Secret":"store-secret"}' ;;\n  null.example) echo null ;;\n  number.example) echo '{"Username":"u","Secret":5}' ;;\n  *) echo "credentials not found in native keychain"; exit 1 ;;\nesac\n`);
    chmodSync(helper, 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${process.env.PATH}`;
  });
  afterAll(() => {
    process.env.PATH = savedPath;
    rmSync(work, { recursive: true, force: true });
  });

  it("reads strata's login file first, then Docker's auths, credHelpers and credsStore", async () => {
    const authFile = join(work, 'strata', 'auth.json');
    const dockerConfig = join(work, 'docker', 'config.json');
    mkdirSync(join(work, 'docker'));
    writeFileSync(
      dockerConfig,
      JSON.stringify({
        auths: {
          'both.example': { auth: Buffer.from('docker-user:docker-secret').toString('base64') },
          'https://index.docker.io/v1/': { auth: Buffer.from('hub-user:hub-secret').toString('base64') },
          'plain.example': { username: 'plain-user', password: 'plain-secret' },
          'identity.example': { identitytoken: 'id-token' },
        },
        credHelpers: { 'helped.example': 'strata-test', 'token.example': 'strata-test', 'missing.example': 'strata-test' },
        credsStore: 'strata-test',
      }),
    );
    saveLogin('both.example', { username: 'strata-user', password: 'strata-secret' }, authFile);
    expect(statSync(authFile).mode & 0o777).toBe(0o600);
    const lookup = credentialsFrom({ authFile, dockerConfig });
    expect(await lookup('both.example')).toEqual({ username: 'strata-user', password: 'strata-secret' });
    expect(await lookup('docker.io')).toEqual({ username: 'hub-user', password: 'hub-secret' });
    expect(await lookup('plain.example')).toEqual({ username: 'plain-user', password: 'plain-secret' });
    expect(await lookup('identity.example')).toEqual({ identityToken: 'id-token' });
    expect(await lookup('helped.example')).toEqual({ username: 'helper-user', password: 'helper-secret' });
    expect(await lookup('token.example')).toEqual({ identityToken: 'refresh-token' });
    expect(await lookup('missing.example')).toBeUndefined(); // its helper has nothing: not the store either
    expect(await lookup('store.example')).toEqual({ username: 'store-user', password: 'store-secret' });
    expect(await lookup('nowhere.example')).toBeUndefined();
    // A helper's answer that is JSON but no secret is none.
    expect(await lookup('null.example')).toBeUndefined();
    expect(await lookup('number.example')).toBeUndefined();

    expect(removeLogin('both.example', authFile)).toBe(true);
    expect(removeLogin('both.example', authFile)).toBe(false);
    expect(await lookup('both.example')).toEqual({ username: 'docker-user', password: 'docker-secret' });
    expect(readFileSync(authFile, 'utf8')).not.toContain('strata-secret');
  });

  it('takes a config with a field of the wrong type as none, as Docker does, and will not replace a broken login file', async () => {
    const dir = mkdtempSync(join(work, 'broken-'));
    const dockerConfig = join(dir, 'config.json');
    const authFile = join(dir, 'auth.json');
    const lookup = credentialsFrom({ authFile, dockerConfig });
    const good = { auth: Buffer.from('user:secret').toString('base64') };
    for (const broken of [{ 'a.example': { auth: 5 } }, { 'a.example': good, 'b.example': 'x' }, [good]]) {
      writeFileSync(dockerConfig, JSON.stringify({ auths: broken }));
      expect(await lookup('a.example')).toBeUndefined();
    }
    writeFileSync(dockerConfig, JSON.stringify({ auths: { 'a.example': good }, credsStore: 5 }));
    expect(await lookup('a.example')).toBeUndefined();
    // null is absent, as Go decodes it.
    writeFileSync(dockerConfig, JSON.stringify({ auths: { 'a.example': good, 'b.example': null, 'c.example': { auth: null, username: 'u', password: 'p' } }, credHelpers: null, credsStore: null }));
    expect(await lookup('a.example')).toEqual({ username: 'user', password: 'secret' });
    expect(await lookup('b.example')).toBeUndefined();
    expect(await lookup('c.example')).toEqual({ username: 'u', password: 'p' });

    for (const text of ['{"auths": {"a.example": ', JSON.stringify({ auths: { 'a.example': good }, credsStore: 5 })]) {
      writeFileSync(authFile, text);
      expect(() => saveLogin('new.example', { username: 'u', password: 'p' }, authFile)).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
      expect(() => removeLogin('a.example', authFile)).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
      expect(readFileSync(authFile, 'utf8')).toBe(text);
    }
  });

  it('keeps a login file that is a symlink a symlink, writing its target (dangling too), as Docker keeps its config', () => {
    const dotfiles = join(work, 'dotfiles');
    mkdirSync(dotfiles);
    const authFile = join(work, 'linked', 'auth.json');
    mkdirSync(join(work, 'linked'));
    symlinkSync('../dotfiles/auth.json', authFile); // relative, and dangling until the first login
    saveLogin('linked.example', { username: 'u', password: 'p' }, authFile);
    expect(lstatSync(authFile).isSymbolicLink()).toBe(true);
    expect(JSON.parse(readFileSync(join(dotfiles, 'auth.json'), 'utf8')).auths).toHaveProperty('linked.example');
    expect(statSync(join(dotfiles, 'auth.json')).mode & 0o777).toBe(0o600);
    expect(removeLogin('linked.example', authFile)).toBe(true);
    expect(lstatSync(authFile).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dotfiles, 'auth.json'), 'utf8')).not.toContain('linked.example');
  });

  it('parses WWW-Authenticate challenges, quoted commas and escapes included', () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
    ]);
    expect(parseChallenges('Basic realm="a \\"quoted\\" realm", Bearer realm=https://t.example/,service=s')).toEqual([
      { scheme: 'basic', params: { realm: 'a "quoted" realm' } },
      { scheme: 'bearer', params: { realm: 'https://t.example/', service: 's' } },
    ]);
    expect(parseChallenges('')).toEqual([]);
  });
});

describe('uploads as a registry asks for them', () => {
  it('sends chunks of at least OCI-Chunk-Min-Length, each from where the last ended', async () => {
    const work = mkdtempSync(join(tmpdir(), 'strata-chunks-'));
    const min = 3 * 1024 * 1024;
    const patches: { range: string; length: number }[] = [];
    const uploads = new Map<string, Buffer[]>();
    const stored = new Set<string>();
    let id = 0;
    const server: Server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.method === 'GET' && url.pathname === '/v2/') return void res.writeHead(200).end();
        if (req.method === 'HEAD') return void res.writeHead(stored.has(url.pathname.split('/').pop()!) ? 200 : 404).end();
        if (req.method === 'POST') {
          const u = String(++id);
          uploads.set(u, []);
          return void res.writeHead(202, { location: `/v2/t/app/blobs/uploads/${u}`, range: '0-0', 'oci-chunk-min-length': String(min) }).end();
        }
        const u = url.pathname.split('/').pop()!;
        if (req.method === 'PATCH') {
          patches.push({ range: String(req.headers['content-range']), length: body.length });
          uploads.get(u)!.push(body);
          const size = Buffer.concat(uploads.get(u)!).length;
          return void res.writeHead(202, { location: `/v2/t/app/blobs/uploads/${u}`, range: `0-${size - 1}` }).end();
        }
        if (req.method === 'PUT' && url.pathname.includes('/blobs/uploads/')) {
          const all = Buffer.concat([...uploads.get(u)!, body]);
          const digest = sha256(all);
          if (digest !== url.searchParams.get('digest')) return void res.writeHead(400).end();
          stored.add(digest);
          return void res.writeHead(201, { location: `/v2/t/app/blobs/${digest}` }).end();
        }
        if (req.method === 'PUT') return void res.writeHead(201, { 'docker-content-digest': sha256(body) }).end();
        res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
    const images = await openImages(join(work, 'root'), { driver: 'userspace' });
    try {
      // A layer of 8 MiB of incompressible bytes, stored uncompressed.
      const big = createHash('sha512');
      const data = Buffer.concat(Array.from({ length: 8 * 1024 * 16 }, (_, i) => big.copy().update(String(i)).digest()));
      const built = buildImage({ layers: [layer({ 'big.bin': data.toString('latin1') })], gzip: false });
      writeDirectory(join(work, 'layout'), layoutFiles(built.blobs, [{ ...built.manifestDescriptor, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }]));
      await images.import(join(work, 'layout'), { name: 'example.com/big' });
      const result = await pushImage(images, 'example.com/big:v1', `${host}/t/app:v1`, { chunkSize: 1024 * 1024 });
      expect(result.uploaded).toBe(2);
      expect(patches.length).toBeGreaterThanOrEqual(2);
      let next = 0;
      for (const [i, p] of patches.entries()) {
        expect(p.range).toBe(`${next}-${next + p.length - 1}`);
        if (i < patches.length - 1) expect(p.length).toBeGreaterThanOrEqual(min);
        next += p.length;
      }
    } finally {
      await images.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(work, { recursive: true, force: true });
    }
  });
});
