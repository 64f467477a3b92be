/**
 * ADD of a git repository against BuildKit's own expectations (its dockerfile_addgit_test.go: the same
 * repositories, made by git, served as a "dumb http" remote by a plain file server, and the same URLs and
 * outcomes): refs by fragment and by query, tags, branches and commits, `--checksum` and `?commit=` (a prefix,
 * a mismatch, garbage), `--keep-git-dir` (a repository at the commit, its remote without credentials), a
 * subdirectory, submodules (on by default, off by query), `--chown`, `mtime=commit`, and a cached step that
 * fetches nothing until the branch moves; and a repository as a named context (buildx's `--build-context
 * NAME=URL`), read by COPY --from and FROM. buildah 1.28 clones git URLs too, but not the query form, nor
 * `--keep-git-dir` or `--checksum`. Built on the userspace driver: no RUN.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WritableLayer } from '@strata/core';
import { parsePlatform, type Images } from '@strata/images';
import { build, type BuildEvent } from '@strata/build';
import { buildWith, imageView, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { serveDirectory } from './helpers/http-files.js';
import { needs } from './helpers/oracle.js';

function shell(dir: string, commands: string[]): void {
  for (const command of commands) execFileSync('sh', ['-c', command], { cwd: dir, stdio: 'ignore', env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: dir, GIT_AUTHOR_DATE: '2020-01-02T03:04:05Z', GIT_COMMITTER_DATE: '2020-01-02T03:04:05Z' } });
}

function revParse(dir: string, ref: string): string {
  return execFileSync('git', ['rev-parse', ref], { cwd: dir }).toString().trim();
}

const INIT = ['git init -q -b master', 'git config user.email test', 'git config user.name test', 'git config protocol.file.allow always'];

describe.skipIf(!needs('root', 'umoci', 'skopeo', 'debootstrap', 'git'))('ADD of a git repository', () => {
  let work: string;
  let images: Images;
  let n = 0;
  const servers: { close: () => void }[] = [];
  /** BuildKit's first repository: three tagged commits of one file. */
  let tags: { url: string; v2: string; v3: string };
  /** Its query-string repository: branches, a subdirectory, a submodule. */
  let query: { url: string; v2: string; latest: string; dir: string };

  beforeAll(async () => {
    work = scratch('strata-build-git-');
    images = await rootWithBase(work, 'root', 'userspace');

    const tagged = join(work, 'tagged');
    mkdirSync(tagged);
    shell(tagged, [...INIT, ...['v0.0.1', 'v0.0.2', 'v0.0.3'].flatMap((tag) => [`echo foo of ${tag} >foo`, 'git add foo', `git commit -q -m ${tag}`, `git tag ${tag}`]), 'git update-server-info']);
    const taggedServer = await serveDirectory(tagged);
    servers.push(taggedServer);
    tags = { url: `${taggedServer.origin}/.git`, v2: revParse(tagged, 'v0.0.2'), v3: revParse(tagged, 'v0.0.3') };

    const submodule = join(work, 'submodule');
    mkdirSync(submodule);
    shell(submodule, [...INIT, 'echo 123 >file', 'git add file', 'git commit -q -m initial', 'git update-server-info']);
    const submoduleServer = await serveDirectory(submodule);
    servers.push(submoduleServer);
    const repo = join(work, 'query');
    mkdirSync(repo);
    shell(repo, [
      ...INIT,
      'echo base >foo',
      `git submodule --quiet add ${submoduleServer.origin}/.git submod`,
      'git add foo submod',
      'git commit -q -m initial',
      'git tag v0.0.1',
      'git branch base',
      'echo feature >foo',
      'mkdir sub',
      'echo subfeature >sub/foo',
      'git add foo sub',
      'git commit -q -m feature',
      'git branch feature',
      'git checkout -q -B master base',
      'echo v0.0.2 >foo',
      'git add foo',
      'git commit -q -m v0.0.2',
      'git tag -a -m release v0.0.2',
      'echo latest >foo',
      'git add foo',
      'git commit -q -m latest',
      'git tag latest',
      'git update-server-info',
    ]);
    const queryServer = await serveDirectory(repo);
    servers.push(queryServer);
    query = { url: `${queryServer.origin}/.git`, v2: revParse(repo, 'v0.0.2^{commit}'), latest: revParse(repo, 'latest'), dir: repo };
  }, 30 * 60_000);

  afterAll(async () => {
    for (const server of servers) server.close();
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  async function built(dockerfile: string): Promise<{ layer: WritableLayer; ran: string[]; history: string }> {
    const dir = writeContext(join(work, `context-${++n}`), { Dockerfile: dockerfile });
    const { result, ran } = await buildWith(images, { context: dir });
    const layer = await imageView(images, result.target.digest);
    return { layer, ran, history: JSON.stringify(result.config.history) };
  }

  const text = async (layer: WritableLayer, path: string) => String(await layer.readFile(path, 'utf8'));

  it("adds a tag's tree, with --keep-git-dir a repository at its commit, checked by --checksum, as BuildKit's test expects", async () => {
    const { layer } = await built(
      [
        'FROM scratch',
        `ADD ${tags.url}#v0.0.1 /x`,
        `ARG REPO="${tags.url}"`,
        'ARG TAG="v0.0.2"',
        `ADD --keep-git-dir=true --chown=4242:8484 --checksum=${tags.v2} \${REPO}#\${TAG} /buildkit-chowned`,
        `ADD --checksum=${tags.v3} \${REPO}#v0.0.3 /nogitdir`,
        `ADD --keep-git-dir=true --checksum=${tags.v3} \${REPO}#${tags.v3} /commitdir`,
        '',
      ].join('\n'),
    );
    expect(await text(layer, '/x/foo')).toBe('foo of v0.0.1\n');
    await expect(layer.lstat('/x/.git')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await text(layer, '/buildkit-chowned/foo')).toBe('foo of v0.0.2\n');
    expect(await layer.lstat('/buildkit-chowned/foo')).toMatchObject({ uid: 4242, gid: 8484 });
    expect(await layer.lstat('/buildkit-chowned/.git/HEAD')).toMatchObject({ uid: 4242, gid: 8484 });
    expect(await text(layer, '/buildkit-chowned/.git/HEAD')).toBe(`${tags.v2}\n`);
    expect(await text(layer, '/nogitdir/foo')).toBe('foo of v0.0.3\n');
    await expect(layer.lstat('/nogitdir/.git')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await text(layer, '/commitdir/foo')).toBe('foo of v0.0.3\n');
    expect(await text(layer, '/commitdir/.git/HEAD')).toBe(`${tags.v3}\n`);
    // Modes as a checkout with umask 022 makes them.
    expect((await layer.lstat('/x/foo')).mode & 0o7777).toBe(0o644);
  }, 300_000);

  it('refuses a checksum that does not match, or is not a commit hash', async () => {
    await expect(built(`FROM scratch\nADD --checksum=${tags.v2} ${tags.url}#v0.0.3 /faildir\n`)).rejects.toThrow(/Dockerfile line 2: ADD expected checksum to match/);
    await expect(built(`FROM scratch\nADD --checksum=foobar ${tags.url}#v0.0.3 /faildir\n`)).rejects.toThrow(/invalid checksum foobar for Git URL, expected hex commit hash/);
    await expect(built(`FROM scratch\nADD ${tags.url}#v9.9.9 /faildir\n`)).rejects.toThrow(/Dockerfile line 2: ADD repository does not contain ref v9.9.9/);
  }, 300_000);

  // BuildKit's testGitQueryString: the URL, and what /repo/foo (or the target's file) holds, or the error.
  const cases: { name: string; url: () => string; file?: string; out?: () => string; error?: RegExp }[] = [
    { name: 'tag with invalid commit', url: () => `${query.url}?tag=v0.0.2&commit=${query.latest}`, error: /expected checksum to match/ },
    { name: 'old style ref', url: () => `${query.url}#v0.0.2`, out: () => 'v0.0.2\n' },
    { name: 'querystring ref', url: () => `${query.url}?ref=base`, out: () => 'base\n' },
    { name: 'querystring branch', url: () => `${query.url}?branch=base`, out: () => 'base\n' },
    { name: 'querystring invalid branch', url: () => `${query.url}?branch=invalid`, error: /repository does not contain ref/ },
    { name: 'tag as branch', url: () => `${query.url}?branch=v0.0.2`, error: /repository does not contain ref/ },
    { name: 'allowed mixed refs', url: () => `${query.url}?tag=v0.0.2#refs/tags/v0.0.2`, out: () => 'v0.0.2\n' },
    { name: 'v2 by commit', url: () => `${query.url}?commit=${query.latest}`, out: () => 'latest\n' },
    { name: 'v2 by commit (wrong short)', url: () => `${query.url}?commit=${query.v2.slice(0, 8)}`, error: /expected checksum to match/ },
    { name: 'v2 by commit (short)', url: () => `${query.url}?commit=${query.latest.slice(0, 8)}`, out: () => 'latest\n' },
    { name: 'v2 ref by commit', url: () => `${query.url}?ref=${query.v2}`, out: () => 'v0.0.2\n' },
    { name: 'v2 ref by commit (short)', url: () => `${query.url}?ref=${query.v2.slice(0, 8)}`, error: /repository does not contain ref/ },
    { name: 'tag with commit', url: () => `${query.url}?tag=v0.0.2&commit=${query.v2}`, out: () => 'v0.0.2\n' },
    { name: 'commit with commit', url: () => `${query.url}?ref=${query.v2}&commit=${query.v2}`, out: () => 'v0.0.2\n' },
    { name: 'mismatch refs', url: () => `${query.url}?tag=v0.0.2#refs/heads/master`, error: /ref conflicts/ },
    { name: 'sub old-style', url: () => `${query.url}#feature:sub`, out: () => 'subfeature\n' },
    { name: 'sub query', url: () => `${query.url}?subdir=sub&ref=feature`, out: () => 'subfeature\n' },
    { name: 'withgit', url: () => `${query.url}?keep-git-dir=true`, file: '.git/HEAD', out: () => `${query.latest}\n` },
    { name: 'withgitandtag', url: () => `${query.url}?tag=v0.0.2&keep-git-dir=true`, file: '.git/HEAD', out: () => `${query.v2}\n` },
    { name: 'withgit-default', url: () => query.url, file: '.git/HEAD', error: /ENOENT/ },
    { name: 'withgit-valueless', url: () => `${query.url}?keep-git-dir&submodules`, file: '.git/HEAD', out: () => `${query.latest}\n` },
    { name: 'withgit-forbidden', url: () => `${query.url}?keep-git-dir=false`, file: '.git/HEAD', error: /ENOENT/ },
    { name: 'withsubmod', url: () => query.url, file: 'submod/file', out: () => '123\n' },
    { name: 'withsubmodset', url: () => `${query.url}?submodules=true`, file: 'submod/file', out: () => '123\n' },
    { name: 'withsubmodempty', url: () => `${query.url}?submodules`, file: 'submod/file', out: () => '123\n' },
    { name: 'withoutsubmod', url: () => `${query.url}?submodules=false`, file: 'submod/file', error: /ENOENT/ },
  ];
  for (const c of cases) {
    it(`reads the query form as BuildKit does: ${c.name}`, async () => {
      const read = async () => text((await built(`FROM scratch\nADD ${c.url()} /repo/\n`)).layer, `/repo/${c.file ?? 'foo'}`);
      if (c.error) await expect(read()).rejects.toThrow(c.error);
      else expect(await read()).toBe(c.out!());
    }, 300_000);
  }

  it('keys the step by the commit: cached while the branch stays, fetched again once it moves; credentials stay out of the image', async () => {
    const url = query.url.replace('http://', 'http://someone:s3cret@');
    const dockerfile = `FROM scratch\nADD --keep-git-dir ${url}?branch=base&mtime=commit /repo/\n`;
    const first = await built(dockerfile);
    expect(first.ran).toHaveLength(1);
    expect(first.history).not.toContain('s3cret');
    expect(await text(first.layer, '/repo/.git/config')).not.toContain('s3cret');
    // mtime=commit: the commit's time (the test's fixed one), not the checkout's.
    expect((await first.layer.lstat('/repo/foo')).mtimeMs).toBe(Date.parse('2020-01-02T03:04:05Z'));
    expect((await built(dockerfile)).ran).toEqual([]);
    shell(query.dir, ['git checkout -q base', 'echo moved >foo', 'git commit -q -am moved', 'git checkout -q master', 'git update-server-info']);
    const moved = await built(dockerfile);
    expect(moved.ran).toHaveLength(1);
    expect(await text(moved.layer, '/repo/foo')).toBe('moved\n');
  }, 300_000);

  it('keeps a hostile repository inside its checkout: a subdir through a symlink, a submodule on the builder\'s files', async () => {
    const hostile = join(work, 'hostile');
    mkdirSync(hostile);
    const local = join(work, 'local-secret');
    mkdirSync(local);
    shell(local, [...INIT, 'echo secret >s', 'git add s', 'git commit -q -m s']);
    shell(hostile, [...INIT, 'ln -s /etc out', 'echo x >x', 'git add out x', 'git commit -q -m links', 'git tag links', `git -c protocol.file.allow=always submodule --quiet add ${local} sub`, 'git commit -q -m sub', 'git tag sub', 'git update-server-info']);
    const server = await serveDirectory(hostile);
    servers.push(server);
    // The symlink itself is copied as a symlink; a subdir reached through it is refused.
    const { layer } = await built(`FROM scratch\nADD ${server.origin}/.git#links /r/\n`);
    expect(String(await layer.readlink('/r/out'))).toBe('/etc');
    await expect(built(`FROM scratch\nADD ${server.origin}/.git#links:out /r/\n`)).rejects.toThrow(/leads out of the repository/);
    // As a named context too, the subdir itself or below it, and the build leaves no checkout behind.
    const copy = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nCOPY --from=r / /r/\n' });
    for (const subdir of ['out', 'out/ssl']) {
      await expect(buildWith(images, { context: copy, contexts: { r: `${server.origin}/.git#links:${subdir}` } })).rejects.toThrow(/Dockerfile line 2: the named context "r": ".*" leads out of context "r"/);
    }
    // A submodule whose URL is a path of the builder's: git refuses the file transport.
    await expect(built(`FROM scratch\nADD ${server.origin}/.git#sub /r/\n`)).rejects.toThrow(/git submodule failed: .*(transport 'file' not allowed|not allowed)/);
  }, 300_000);

  it('reads a git repository given as a named context (--build-context NAME=URL#ref:subdir), for COPY --from and FROM', async () => {
    const dockerfile = ['FROM feature AS tree', 'FROM scratch', 'COPY --from=feature / /from-git/', 'COPY --from=tree /foo /from-stage', 'COPY --from=tagged foo /tagged', ''].join('\n');
    const dir = writeContext(join(work, `context-${++n}`), { Dockerfile: dockerfile });
    const contexts = { feature: `${query.url}#feature:sub`, tagged: `${tags.url}#v0.0.2` };
    const { result } = await buildWith(images, { context: dir, contexts });
    const layer = await imageView(images, result.target.digest);
    expect(await layer.readdir('/from-git')).toEqual(['foo']); // the subdirectory alone, no .git
    expect(await text(layer, '/from-git/foo')).toBe('subfeature\n');
    expect(await layer.lstat('/from-git/foo')).toMatchObject({ uid: 0, gid: 0 });
    expect(await text(layer, '/from-stage')).toBe('subfeature\n');
    expect(await text(layer, '/tagged')).toBe('foo of v0.0.2\n');
    // A ref the repository lacks names the context and the line; the build leaves no checkout behind.
    const ingests = dirname(images.content.temporaryPath());
    const before = readdirSync(ingests);
    await expect(buildWith(images, { context: dir, contexts: { ...contexts, feature: `${query.url}#no-such-branch` } })).rejects.toThrow(/Dockerfile line 1: the named context "feature": .*no-such-branch/);
    expect(readdirSync(ingests)).toEqual(before);
  }, 300_000);

  it('builds a git repository as the build context (docker build URL#ref:dir): its Dockerfile, no .dockerignore, nothing left', async () => {
    const repo = join(work, 'as-context');
    mkdirSync(join(repo, 'app'), { recursive: true });
    writeFileSync(join(repo, 'app', 'Dockerfile'), 'FROM scratch\nCOPY . /src/\n');
    writeFileSync(join(repo, 'app', 'Dockerfile.alt'), 'FROM scratch\nCOPY hello.txt /alt\n');
    writeFileSync(join(repo, 'app', 'hello.txt'), 'hello\n');
    writeFileSync(join(repo, 'app', '.dockerignore'), 'hello.txt\n'); // a repository's is not applied, as in BuildKit
    writeFileSync(join(repo, 'secret-outside-app'), 'not in the context\n');
    shell(repo, [...INIT, 'mkdir evil', 'ln -s /etc/passwd evil/Dockerfile', 'ln -s ../secret-outside-app app/up', 'git add -A', 'git commit -q -m app', 'git update-server-info']);
    const server = await serveDirectory(repo);
    servers.push(server);
    const url = `${server.origin}/.git`;
    const { result } = await buildWith(images, { context: `${url}#master:app` });
    const layer = await imageView(images, result.target.digest);
    expect((await layer.readdir('/src')).sort()).toEqual(['.dockerignore', 'Dockerfile', 'Dockerfile.alt', 'hello.txt', 'up']);
    expect(await text(layer, '/src/hello.txt')).toBe('hello\n');
    expect(await layer.lstat('/src/hello.txt')).toMatchObject({ uid: 0, gid: 0 });
    expect(await layer.readlink('/src/up')).toBe('../secret-outside-app'); // a symlink, copied as one
    const alt = await buildWith(images, { context: `${url}#master:app`, dockerfile: 'Dockerfile.alt' });
    expect(await text(await imageView(images, alt.result.target.digest), '/alt')).toBe('hello\n');
    // The whole repository, its .git kept as BuildKit keeps it when asked.
    const kept = await buildWith(images, { context: `${url}#master`, dockerfile: 'app/Dockerfile', buildArgs: { BUILDKIT_CONTEXT_KEEP_GIT_DIR: 'true' } });
    const keptLayer = await imageView(images, kept.result.target.digest);
    expect(await text(keptLayer, '/src/.git/HEAD')).toMatch(/^ref: refs\/heads\/master\n$|^[0-9a-f]{40}\n$/);
    expect(await text(keptLayer, '/src/app/hello.txt')).toBe('hello\n');
    const dropped = await buildWith(images, { context: `${url}#master`, dockerfile: 'app/Dockerfile' });
    await expect((await imageView(images, dropped.result.target.digest)).lstat('/src/.git')).rejects.toMatchObject({ code: 'ENOENT' });
    // A Dockerfile that is a symlink leading out of the context is refused, never read; a missing ref names itself; no checkout stays.
    const ingests = dirname(images.content.temporaryPath());
    const before = readdirSync(ingests);
    await expect(buildWith(images, { context: `${url}#master:evil` })).rejects.toThrow(/the build context .*: "Dockerfile" leads out of the build context \(a symlink to \/etc\/passwd\)/);
    await expect(buildWith(images, { context: `${url}#no-such-branch` })).rejects.toThrow(/the build context .*no-such-branch/);
    await expect(buildWith(images, { context: `${url}#master:nowhere` })).rejects.toThrow(/the build context .*"nowhere" is not a directory of the repository/);
    expect(readdirSync(ingests)).toEqual(before);
  }, 300_000);

  it('fetches a git named context once for every platform of a build: each image has the same commit, as BuildKit solves one source', async () => {
    const repo = join(work, 'moving');
    mkdirSync(repo);
    shell(repo, [...INIT, 'echo first >foo', 'git add foo', 'git commit -q -m first', 'git update-server-info']);
    const server = await serveDirectory(repo);
    servers.push(server);
    const dir = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nCOPY --from=src foo /foo\n' });
    let moved = false;
    // The branch moves once the first platform has read the context: a second fetch would see it.
    const moveBranch = (event: BuildEvent) => {
      if (moved || event.type !== 'done' || event.layer === null) return;
      shell(repo, ['echo second >foo', 'git commit -q -am second', 'git update-server-info']);
      moved = true;
    };
    const result = await build(images, { context: dir, platforms: ['linux/amd64', 'linux/arm64'], contexts: { src: `${server.origin}/.git#master` }, onEvent: moveBranch });
    expect(moved).toBe(true);
    for (const platform of ['linux/amd64', 'linux/arm64']) {
      const unpacked = await images.unpack(result.target.digest, { platform: { platform: parsePlatform(platform) } });
      expect(await text(await images.snapshotter.open(unpacked.chainID!), '/foo'), platform).toBe('first\n');
    }
  }, 300_000);

  it('refuses a git repository beside other sources, and in COPY', async () => {
    writeFileSync(join(work, 'unused'), '');
    await expect(built(`FROM scratch\nADD ${tags.url}#v0.0.1 Dockerfile /x/\n`)).rejects.toThrow(/Dockerfile line 2: ADD .*: a git repository is to be ADD's only source/);
    await expect(built(`FROM scratch\nCOPY ${tags.url}#v0.0.1 /x/\n`)).rejects.toThrow(/Dockerfile line 2: COPY .*: COPY takes no URLs or repositories/);
  }, 300_000);
});

/** OpenSSH's server on 127.0.0.1 for root, taking one key, and an agent holding that key. */
async function sshServer(dir: string): Promise<{ port: number; agent: string; close: () => void }> {
  mkdirSync('/run/sshd', { recursive: true }); // its privilege separation directory
  for (const key of ['host', 'client']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, key)]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')));
  const agent = join(dir, 'agent.sock');
  const agentProcess = spawn('ssh-agent', ['-D', '-a', agent], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(agent); i++) await new Promise((r) => setTimeout(r, 50));
  execFileSync('ssh-add', ['-q', join(dir, 'client')], { env: { ...process.env, SSH_AUTH_SOCK: agent }, stdio: 'ignore' });
  for (let attempt = 0; ; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const config = join(dir, 'sshd_config');
    writeFileSync(config, [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host')}`, `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', `PidFile ${join(dir, 'sshd.pid')}`, ''].join('\n'));
    const server = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: 'ignore' });
    const listening = await new Promise<boolean>((resolve) => {
      const until = Date.now() + 5000;
      const probe = () => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => (socket.destroy(), resolve(true)));
        socket.once('error', () => (Date.now() > until || server.exitCode !== null ? resolve(false) : setTimeout(probe, 50)));
      };
      probe();
    });
    if (listening) return { port, agent, close: () => (server.kill(), agentProcess.kill()) };
    server.kill();
    if (attempt > 5) throw new Error('sshd would not listen');
  }
}

describe.skipIf(!needs('root', 'umoci', 'skopeo', 'debootstrap', 'git', 'sshd', 'ssh-agent'))('ADD of a git repository over ssh', () => {
  let work: string;
  let images: Images;
  let server: Awaited<ReturnType<typeof sshServer>>;
  let repo: string;

  beforeAll(async () => {
    work = scratch('strata-build-git-ssh-');
    images = await rootWithBase(work, 'root', 'userspace');
    repo = join(work, 'repo');
    mkdirSync(repo);
    shell(repo, [...INIT, 'echo over ssh >foo', 'git add foo', 'git commit -q -m one', 'git tag v1', 'echo later >foo', 'git commit -q -am two']);
    mkdirSync(join(work, 'ssh'));
    server = await sshServer(join(work, 'ssh'));
  }, 30 * 60_000);

  afterAll(async () => {
    server?.close();
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("fetches through the build's SSH agent, and says it needs one without", async () => {
    const url = `ssh://root@127.0.0.1:${server.port}${repo}`;
    const dir = writeContext(join(work, 'context'), { Dockerfile: `FROM scratch\nADD --keep-git-dir ${url}#v1 /repo/\nADD ${url}?ref=master /latest/\n` });
    const { result } = await buildWith(images, { context: dir, ssh: { default: server.agent } });
    const layer = await imageView(images, result.target.digest);
    expect(String(await layer.readFile('/repo/foo', 'utf8'))).toBe('over ssh\n');
    expect(String(await layer.readFile('/repo/.git/HEAD', 'utf8'))).toBe(`${revParse(repo, 'v1')}\n`);
    expect(String(await layer.readFile('/latest/foo', 'utf8'))).toBe('later\n');
    await expect(buildWith(images, { context: dir, noCache: true })).rejects.toThrow(/Dockerfile line 2: ADD ssh:\/\/root@127\.0\.0\.1:\d+.*: an ssh remote needs the build's SSH agent \(strata build --ssh default\)/);
  }, 300_000);
});
