/**
 * strata against a real registry (Debian's docker-registry, the distribution project's server) started here
 * on 127.0.0.1: anonymous, with htpasswd basic auth, and with token auth against a token server this test
 * runs. In each mode: strata pushes the two-layer image and skopeo copies it back to a layout umoci unpacks
 * to the source's tree; skopeo pushes it and strata pulls and unpacks it to that tree; a push sharing the
 * base uploads only what is new, and a push to another repository mounts, as the registry's access log
 * shows. The CLI logs in, pulls, lists tags and logs out against the token registry.
 */
import { execFile as execFileCb, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImages, platformImages, readManifest, type Images } from '@strata/images';
import { pullImage, pushImage, type Credentials } from '@strata/registry';
import { aptImage, type AptImage } from '../benchmarks/inputs.js';
import { needs } from './helpers/oracle.js';
import { TestRegistry, type RegistryAuth } from './helpers/registry.js';
import { diffSnapshots, type NodeRecord } from './helpers/snapshot.js';
import { chainTree, picture } from './helpers/unpacked.js';

// Asynchronous: the token server answers from this process, so a synchronous child would wait on itself.
const execFile = promisify(execFileCb);
const run = async (cmd: string, args: string[], input?: string) => {
  const child = execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, XDG_CONFIG_HOME: configHome, DOCKER_CONFIG: join(configHome, 'docker') } });
  if (input !== undefined) child.child.stdin!.end(input);
  return child;
};
const CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'bin', 'strata.cjs');
let configHome = '';

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap', 'docker-registry', 'htpasswd', 'openssl'))('pull and push against docker-registry', () => {
  let work: string;
  let apt: AptImage;
  let expected: Map<string, NodeRecord>;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-registry-'));
    configHome = join(work, 'config');
    apt = aptImage();
    execFileSync('umoci', ['unpack', '--image', `${apt.layout}:apt`, join(work, 'umoci-bundle')], { stdio: 'ignore' });
    expected = picture(join(work, 'umoci-bundle', 'rootfs'));
  }, 30 * 60_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** The tree umoci unpacks from what skopeo copies out of the registry. */
  async function skopeoTree(registry: TestRegistry, ref: string): Promise<Map<string, NodeRecord>> {
    const out = mkdtempSync(join(work, 'skopeo-'));
    await run('skopeo', ['copy', '--quiet', ...registry.skopeoFlags('src'), `docker://${ref}`, `oci:${out}/layout:x`]);
    await run('umoci', ['unpack', '--image', `${out}/layout:x`, `${out}/bundle`]);
    return picture(`${out}/bundle/rootfs`);
  }

  describe.each(['none', 'basic', 'token'] as RegistryAuth[])('%s auth', (mode) => {
    let registry: TestRegistry;
    let images: Images;
    let credentials: (host: string) => Promise<Credentials | undefined>;

    beforeAll(async () => {
      registry = await TestRegistry.start(join(work, `registry-${mode}`), mode);
      credentials = async () => (mode === 'none' ? undefined : { username: registry.user, password: registry.password });
      images = await openImages(join(work, `root-${mode}`));
      await images.import(apt.layout, { name: 'example.com/apt' });
    }, 120_000);
    afterAll(async () => {
      await images?.close();
      await registry?.stop();
    });

    it('pushes the base, then the image on it uploading only the new layer, then mounts it into another repository; skopeo and umoci read it back', async () => {
      const host = registry.host;
      const base = await pushImage(images, 'example.com/apt:base', `${host}/team/app:base`, { credentials });
      expect(base).toMatchObject({ uploaded: 2, mounted: 0, existed: 0 });
      const before = registry.requests().length;
      const full = await pushImage(images, 'example.com/apt:apt', `${host}/team/app:apt`, { credentials });
      expect(full).toMatchObject({ uploaded: 2, mounted: 0, existed: 1 }); // the new layer and the config
      const [chosen] = platformImages(images.content, images.image('example.com/apt:apt').target, { all: true });
      const [baseLayer, newLayer] = readManifest(images.content, chosen!.manifestDescriptor).layers.map((l) => l.digest);
      const second = registry.requests().slice(before);
      const uploadsOf = (digest: string) => second.filter((r) => r.startsWith('PUT ') && r.endsWith(' 201') && (r.includes(`digest=${encodeURIComponent(digest)}`) || r.includes(`digest=${digest}`)));
      expect(uploadsOf(newLayer!)).toHaveLength(1);
      expect(uploadsOf(baseLayer!)).toHaveLength(0);
      expect(second.filter((r) => r.startsWith('HEAD ') && r.includes(baseLayer!) && r.endsWith(' 200'))).toHaveLength(1);
      expect(second.filter((r) => r.endsWith(' 401')).length).toBeLessThanOrEqual(1); // one challenge, learnt before the blobs

      const beforeMount = registry.requests().length;
      const other = await pushImage(images, 'example.com/apt:apt', `${host}/other/app:1`, { credentials });
      expect(other).toMatchObject({ uploaded: 0, mounted: 3, existed: 0, bytes: 0 });
      const third = registry.requests().slice(beforeMount);
      expect(third.filter((r) => r.startsWith('POST /v2/other/app/blobs/uploads/?') && r.includes('mount=') && r.includes('from=team') && r.endsWith(' 201'))).toHaveLength(3);
      expect(third.filter((r) => r.startsWith('PUT /v2/other/app/blobs/') || r.startsWith('PATCH /v2/other/app/blobs/'))).toHaveLength(0);
      if (mode === 'token') {
        // The token for the mount carried both repositories' scopes.
        expect(registry.tokenRequests().some((t) => t.scope.includes('repository:other/app:pull,push') && t.scope.includes('repository:team/app:pull'))).toBe(true);
      }

      expect(diffSnapshots(expected, await skopeoTree(registry, `${host}/team/app:apt`))).toEqual([]);
      expect(diffSnapshots(expected, await skopeoTree(registry, `${host}/other/app:1`))).toEqual([]);
    }, 300_000);

    it("pulls what skopeo pushed, named as pulled, and unpacks it to umoci's tree; a second pull on the base fetches only the new layer", async () => {
      const host = registry.host;
      await run('skopeo', ['copy', '--quiet', ...registry.skopeoFlags('dest'), `oci:${apt.layout}:base`, `docker://${host}/sk/app:base`]);
      await run('skopeo', ['copy', '--quiet', ...registry.skopeoFlags('dest'), `oci:${apt.layout}:apt`, `docker://${host}/sk/app:apt`]);
      const fresh = await openImages(join(work, `pull-${mode}`));
      try {
        const first = await pullImage(fresh, `${host}/sk/app:base`, { credentials, unpack: true });
        expect(first).toMatchObject({ name: `${host}/sk/app:base`, fetched: 2, present: 0, refetched: 0 }); // config and layer
        const events: string[] = [];
        const second = await pullImage(fresh, `${host}/sk/app:apt`, { credentials, unpack: true, onProgress: (e) => e.kind === 'blob' && events.push(e.state) });
        expect(second).toMatchObject({ name: `${host}/sk/app:apt`, fetched: 2, present: 1 }); // config and new layer; the base layer was there
        expect(events.filter((s) => s === 'exists')).toHaveLength(1);
        expect(fresh.images.get(`${host}/sk/app:apt`)?.target.digest).toBe(second.target.digest);
        expect(diffSnapshots(expected, await chainTree(fresh, second.chainID!, work))).toEqual([]);
        // The source label lets a later push to this registry mount instead of upload.
        expect(fresh.content.info(second.target.digest).labels[`containerd.io/distribution.source.${host}`]).toBe('sk/app');
      } finally {
        await fresh.close();
      }
    }, 300_000);

    if (mode === 'none') {
      it('compresses plain layers on the way, as docker push does: gzip in the registry, the same tree, the same digests on a second push; as stored when asked', async () => {
        const host = registry.host;
        // A plain layer, as a build writes them: the apt image squashed above its base, uncompressed.
        await images.squash('example.com/apt:apt', 'example.com/apt:plain', { base: 'example.com/apt:base', compression: 'none' });
        const local = images.image('example.com/apt:plain').target;
        const pushed = await pushImage(images, 'example.com/apt:plain', `${host}/plain/app:1`, { credentials, compression: 'gzip' });
        expect(pushed.digest).not.toBe(local.digest);
        const raw = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/plain/app:1`])).stdout) as { layers: { mediaType: string }[] };
        expect(raw.layers.map((l) => l.mediaType.replace(/^application\/vnd\.(oci|docker)\.image\.(layer\.v1|rootfs\.diff)\./, ''))).toEqual(
          raw.layers.map(() => expect.stringMatching(/^tar[+.]gzip$/)),
        );
        expect(diffSnapshots(expected, await skopeoTree(registry, `${host}/plain/app:1`))).toEqual([]);
        // Again, elsewhere: the same manifest, the compressed layer found again, nothing uploaded but by mount.
        const again = await pushImage(images, 'example.com/apt:plain', `${host}/plain/app:2`, { credentials, compression: 'gzip' });
        expect(again).toMatchObject({ digest: pushed.digest, uploaded: 0 });
        // As stored: the local manifest.
        expect((await pushImage(images, 'example.com/apt:plain', `${host}/plain/app:3`, { credentials })).digest).toBe(local.digest);
        // The CLI compresses by default; --compression none pushes as stored.
        const root = join(work, `root-${mode}`);
        const cli = await run(CLI, ['--root', root, 'push', 'example.com/apt:plain', `${host}/plain/cli:1`, '--quiet']);
        expect(cli.stdout).toContain(pushed.digest);
        const stored = await run(CLI, ['--root', root, 'push', 'example.com/apt:plain', `${host}/plain/cli:2`, '--quiet', '--compression', 'none']);
        expect(stored.stdout).toContain(local.digest);
      }, 300_000);
    }

    if (mode === 'token') {
      it('the CLI logs in (0600, the password never printed), pulls with the saved login, lists tags and logs out', async () => {
        const host = registry.host;
        const root = join(work, 'cli-root');
        mkdirSync(configHome, { recursive: true });
        const wrong = await run(CLI, ['login', host, '-u', registry.user, '--password-stdin'], 'not-the-password\n').catch((e: { code: number; stderr: string; stdout: string }) => e);
        expect((wrong as { code: number }).code).toBe(1);
        expect((wrong as { stderr: string }).stderr).toContain('UNAUTHENTICATED');
        expect(`${(wrong as { stderr: string }).stderr}${(wrong as { stdout: string }).stdout}`).not.toContain('not-the-password');

        const login = await run(CLI, ['login', host, '-u', registry.user, '--password-stdin'], `${registry.password}\n`);
        expect(login.stdout).toBe('Login Succeeded\n');
        expect(`${login.stdout}${login.stderr}`).not.toContain(registry.password);
        const authFile = join(configHome, 'strata', 'auth.json');
        expect(statSync(authFile).mode & 0o777).toBe(0o600);
        expect(Object.keys(JSON.parse(readFileSync(authFile, 'utf8')).auths)).toEqual([host]);

        const pulled = await run(CLI, ['--root', root, 'pull', `${host}/sk/app:apt`, '--unpack']);
        expect(pulled.stdout).toMatch(new RegExp(`^Pulled ${host}/sk/app:apt@sha256:[0-9a-f]{64}: 3 blob\\(s\\) fetched`));
        expect(pulled.stdout).toMatch(/Unpacked .*: sha256:[0-9a-f]{64}\n$/);
        expect(pulled.stderr).toMatch(/exists|transferring/); // plain progress lines: stderr is not a terminal
        expect(pulled.stderr).not.toContain(registry.password);

        const pushed = await run(CLI, ['--root', root, 'push', `${host}/sk/app:apt`, `${host}/cli/app:v1`, '--quiet']);
        expect(pushed.stdout).toMatch(/: 0 blob\(s\) uploaded \(0 B\), 3 mounted, 0 already there\n$/);
        expect(pushed.stderr).toBe('');

        const tags = await run(CLI, ['image', 'ls-remote', `${host}/sk/app`, '--json']);
        expect(JSON.parse(tags.stdout).sort()).toEqual(['apt', 'base']);

        const logout = await run(CLI, ['logout', host]);
        expect(logout.stdout).toContain(host);
        const after = await run(CLI, ['image', 'ls-remote', `${host}/sk/app`]).catch((e: { code: number; stderr: string }) => e);
        expect((after as { code: number }).code).toBe(1);
        expect((after as { stderr: string }).stderr).toContain('UNAUTHENTICATED');
      }, 300_000);
    }
  });
});
