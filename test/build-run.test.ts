/**
 * What a RUN step's container is made of, beyond what the buildah comparison covers:
 * - the mount points its mounts need (and the directories above them) are made by the runtime in the step's
 *   tree and removed after it; the directory that held them keeps the time it should have: its own from
 *   before the step where only the stub changed it, the step's where the step wrote there too, and a
 *   symlink's target directory (the directory the runtime reached) rather than the symlink;
 * - `--network=none` gives the step a network of its own with loopback alone, and is a step of its own in
 *   the cache (`default` and `host` are the host's network, and one step);
 * - `--mount=type=ssh` gives the step a socket forwarding to an OpenSSH agent the build was given (the agent
 *   answers the step's request for its identities with the key added to it), `SSH_AUTH_SOCK` pointing at it,
 *   and leaves nothing in the layer; a required agent not given stops the build with the line;
 * - read-only bind mounts of one selection share one tree over the build (the same inodes in every step), a
 *   step that can write gets its own, and no tree outlives the build.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Images } from '@strata/images';
import { BASE, buildWith, imageTree, imageView, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';
import type { NodeRecord } from './helpers/snapshot.js';

const OLD = 1_000_000_000; // seconds: a time no step of this test runs at
/** A step writing the names of the network interfaces it sees, one a line, sorted. */
const LIST_INTERFACES = "RUN sed 1,2d /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort > /interfaces";

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap', 'ssh-agent'))('RUN', () => {
  let work: string;
  let images: Images;

  beforeAll(async () => {
    work = scratch('strata-build-run-');
    images = await rootWithBase(work);
  }, 30 * 60_000);

  afterAll(async () => {
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('leaves no stub, and gives the directory above it the time it should have', async () => {
    const dir = writeContext(join(work, 'context'), {
      Dockerfile: [
        `FROM ${BASE}`,
        `RUN mkdir -p /srv/kept /srv/wrote /real && ln -s /real /link && touch -d @${OLD} /srv/kept /srv/wrote /real`,
        'RUN --mount=type=tmpfs,target=/srv/kept/scratch --mount=type=tmpfs,target=/srv/wrote/scratch --mount=type=tmpfs,target=/link/deep/scratch touch /srv/wrote/file',
        '',
      ].join('\n'),
    });
    const { result } = await buildWith(images, { context: dir, tags: ['example.com/stubs:strata'] });
    const tree = await imageTree(images, result.names[0]!, work);
    const old = `${OLD}000000000`;
    for (const path of ['srv/kept/scratch', 'srv/wrote/scratch', 'real/deep', 'real/deep/scratch']) expect(tree.has(path), path).toBe(false);
    // Only the stub changed it: as before the step.
    expect(tree.get('srv/kept')).toMatchObject({ type: 'directory', mtimeNs: old });
    // The step wrote there too: the time the step left, not the one from before it.
    expect(tree.get('srv/wrote/file')).toMatchObject({ type: 'file' });
    expect(BigInt(tree.get('srv/wrote')!.mtimeNs!)).toBeGreaterThan(BigInt(old));
    // Made through a symlink: the directory it reached gets its time back; the symlink is as it was.
    expect(tree.get('real')).toMatchObject({ type: 'directory', mtimeNs: old });
    expect(tree.get('link')).toMatchObject({ type: 'symlink', linkname: '/real' });
  }, 10 * 60_000);

  it('gives --network=none a network of its own with loopback alone, and keys it apart', async () => {
    const none = await buildNetwork('none', '--network=none ');
    expect(none.tree.get('interfaces')?.sha256).toBe(sha('lo\n'));
    const host = await buildNetwork('host', '');
    expect(host.ran).toEqual([LIST_INTERFACES]); // not the cached step of --network=none
    // The host's interfaces, loopback among them (a machine with loopback alone could not tell the two apart).
    expect(host.tree.get('interfaces')?.size).toBeGreaterThan('lo\n'.length);
    // default and host are the same network here, and the same step.
    expect((await buildNetwork('host-again', '--network=host ')).ran).toEqual([]);
    expect((await buildNetwork('default-again', '--network=default ')).ran).toEqual([]);
    // The build's own default (docker build --network=none) for the steps without the flag; the flag wins.
    const dir = writeContext(join(work, 'network-build-default'), { Dockerfile: `FROM ${BASE}\n${LIST_INTERFACES}\n${LIST_INTERFACES.replace('> /interfaces', '> /host-interfaces').replace('RUN ', 'RUN --network=host ')}\n` });
    const { result } = await buildWith(images, { context: dir, network: 'none', tags: ['example.com/network:build-default'] });
    const tree = await imageTree(images, result.names[0]!, work);
    expect(tree.get('interfaces')?.sha256).toBe(sha('lo\n'));
    expect(tree.get('host-interfaces')?.size).toBeGreaterThan('lo\n'.length);
  }, 10 * 60_000);

  it('adds extra hosts to the /etc/hosts RUN sees (docker build --add-host), keyed by them, nothing in the layer', async () => {
    const dir = writeContext(join(work, 'hosts'), { Dockerfile: `FROM ${BASE}\nRUN getent hosts my.example > /resolved && grep -c . /etc/hosts > /count\n` });
    const first = await buildWith(images, { context: dir, extraHosts: { 'my.example': '10.1.2.3' } });
    const view = await imageView(images, first.result.target.digest);
    expect(String(await view.readFile('/resolved', 'utf8'))).toMatch(/^10\.1\.2\.3\s+my\.example\n$/);
    // The image has no /etc/hosts: the step's was a mount on a stub, gone with it.
    await expect(view.lstat('/etc/hosts')).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await buildWith(images, { context: dir, extraHosts: { 'my.example': '10.9.9.9' } });
    expect(again.ran).toHaveLength(1); // another address: another step
  }, 10 * 60_000);

  it("shows RUN its own cgroups, none of the host's", async () => {
    // The host's groups below each hierarchy's root (the harness's, this test runner's, the step's own as
    // seen from outside) are what /sys would show; the step's view is its own group as each root.
    const hostGroups = execFileSync('find', ['/sys/fs/cgroup', '-mindepth', '2', '-maxdepth', '3', '-type', 'd'], { encoding: 'utf8' });
    expect(hostGroups.trim()).not.toBe('');
    const dir = writeContext(join(work, 'cgroups'), {
      Dockerfile: `FROM ${BASE}\nRUN find /sys/fs/cgroup -mindepth 2 -maxdepth 3 -type d > /groups; ls /sys/fs/cgroup > /roots; grep -c ' /sys/fs/cgroup' /proc/self/mountinfo > /mounts\n`,
    });
    const { result } = await buildWith(images, { context: dir });
    const view = await imageView(images, result.target.digest);
    expect(String(await view.readFile('/groups', 'utf8'))).toBe('');
    expect(Number(String(await view.readFile('/mounts', 'utf8')))).toBeGreaterThan(0);
    // The same hierarchies as the host has (v1's controllers, or v2's files).
    const hostRoots = execFileSync('ls', ['/sys/fs/cgroup'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    const roots = String(await view.readFile('/roots', 'utf8')).split('\n').filter(Boolean);
    expect(roots.length).toBeGreaterThan(0);
    for (const root of roots) expect(hostRoots).toContain(root);
  }, 10 * 60_000);

  it("names RUN's sandbox as BuildKit does, resolvable in its /etc/hosts, or BUILDKIT_SANDBOX_HOSTNAME", async () => {
    // BuildKit's testDockerfileCheckHostname, with the default name as well as the build arg's.
    const dockerfile = [`FROM ${BASE}`, 'RUN hostname > /name && echo "$(hostname)" > /shell-name && getent hosts "$(hostname)" > /resolved && cat /etc/hosts > /hosts', ''].join('\n');
    const dir = writeContext(join(work, 'hostname'), { Dockerfile: dockerfile });
    const plain = await buildWith(images, { context: dir });
    let view = await imageView(images, plain.result.target.digest);
    expect(String(await view.readFile('/name', 'utf8'))).toBe('buildkitsandbox\n');
    expect(String(await view.readFile('/resolved', 'utf8'))).toMatch(/^127\.0\.0\.1\s+localhost buildkitsandbox\n$/);
    expect(String(await view.readFile('/hosts', 'utf8'))).toBe('127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n');
    const named = await buildWith(images, { context: dir, buildArgs: { BUILDKIT_SANDBOX_HOSTNAME: 'foo' } });
    expect(named.ran).toHaveLength(1); // another name: another step, as BuildKit keys it
    view = await imageView(images, named.result.target.digest);
    expect(String(await view.readFile('/shell-name', 'utf8'))).toBe('foo\n');
    expect(String(await view.readFile('/hosts', 'utf8'))).toContain('127.0.0.1\tlocalhost foo\n');
    await expect(buildWith(images, { context: dir, buildArgs: { BUILDKIT_SANDBOX_HOSTNAME: 'a b' } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  }, 10 * 60_000);

  it("gives RUN Docker's predefined proxy ARGs from build args, out of its key and the history unless declared", async () => {
    const dockerfile = [`FROM ${BASE}`, 'RUN echo "${HTTPS_PROXY:-none} ${no_proxy:-none}" > /proxy', 'ARG HTTP_PROXY', 'RUN echo "$HTTP_PROXY" > /declared', ''].join('\n');
    const dir = writeContext(join(work, 'proxy'), { Dockerfile: dockerfile });
    const first = await buildWith(images, { context: dir, tags: ['example.com/proxy:1'], buildArgs: { HTTPS_PROXY: 'http://user:secret@proxy.test:3128', no_proxy: 'localhost', HTTP_PROXY: 'http://plain.test:80' } });
    const view = await imageView(images, first.result.names[0]!);
    expect(await view.readFile('/proxy', 'utf8')).toBe('http://user:secret@proxy.test:3128 localhost\n');
    expect(await view.readFile('/declared', 'utf8')).toBe('http://plain.test:80\n');
    const history = JSON.stringify(first.result.config.history);
    expect(history).not.toContain('secret');
    expect(history).toContain('HTTP_PROXY=http://plain.test:80'); // declared: an ARG like any other
    expect(JSON.stringify(first.result.config.config)).not.toContain('proxy.test');
    // Another proxy: the first RUN is the same step; the declared one is not.
    const second = await buildWith(images, { context: dir, buildArgs: { HTTPS_PROXY: 'http://elsewhere.test:8080', HTTP_PROXY: 'http://other.test:80' } });
    expect(second.ran).toEqual(['RUN echo "$HTTP_PROXY" > /declared']);
  }, 10 * 60_000);

  it("gives a stage the ARGs its base stage declared, as BuildKit does (the Docker manual's scoping example)", async () => {
    const dockerfile = [
      `FROM ${BASE} AS base`,
      'ARG NAME="joe"',
      'ARG KEPT=parent',
      'ARG GIVEN=parent',
      'FROM base AS build',
      'ARG KEPT', // declared again without a value: the base stage's stays
      'ARG GIVEN', // a build argument: its value, in both stages
      'ENV SEEN=$NAME',
      'RUN echo "hello $NAME! $KEPT $GIVEN" > /hello',
      'FROM ' + BASE + ' AS unrelated',
      'RUN echo "[${NAME:-unset}]" > /hello',
      'FROM build',
      'COPY --from=unrelated /hello /unrelated',
      '',
    ].join('\n');
    const dir = writeContext(join(work, 'inherited-args'), { Dockerfile: dockerfile });
    const { result } = await buildWith(images, { context: dir, buildArgs: { GIVEN: 'cli' } });
    const view = await imageView(images, result.target.digest);
    expect(await view.readFile('/hello', 'utf8')).toBe('hello joe! parent cli\n');
    expect(await view.readFile('/unrelated', 'utf8')).toBe('[unset]\n'); // a stage not built on base has none of them
    const env = (result.config.config?.Env ?? []) as string[];
    expect(env).toContain('SEEN=joe');
    expect(env.some((e) => e.startsWith('NAME='))).toBe(false); // ARGs stay out of the image
    // The RUN's history names the ARGs it saw, inherited ones included, as BuildKit's does.
    expect(result.config.history!.map((h) => h.created_by)).toContain('RUN |3 NAME=joe KEPT=parent GIVEN=cli /bin/sh -c echo "hello $NAME! $KEPT $GIVEN" > /hello');
  }, 10 * 60_000);

  it("makes WORKDIR's directory when the tree lacks it, owned by the USER, even if nothing uses it, as BuildKit does", async () => {
    const dockerfile = [`FROM ${BASE}`, 'USER nobody', 'WORKDIR /home/app/work', 'RUN touch made-by-nobody', 'USER root', 'WORKDIR /etc', 'WORKDIR /unused/deep', 'USER ghost', 'WORKDIR /ghost', ''].join('\n');
    const dir = writeContext(join(work, 'workdir'), { Dockerfile: dockerfile });
    const { result } = await buildWith(images, { context: dir });
    const view = await imageView(images, result.target.digest);
    const owner = async (path: string) => {
      const st = await view.lstat(path);
      return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
    };
    expect(await owner('/home/app')).toBe('65534:65534 755');
    expect(await owner('/home/app/work')).toBe('65534:65534 755');
    expect(await owner('/home/app/work/made-by-nobody')).toBe('65534:65534 644');
    expect(await owner('/unused/deep')).toBe('0:0 755');
    expect(await owner('/ghost')).toBe('0:0 755'); // a user the image does not know: root's, as BuildKit gives it
    // A directory that is there already is no layer: WORKDIR /etc only changes the config.
    const history = result.config.history!.filter((h) => h.created_by?.startsWith('WORKDIR'));
    expect(history.map((h) => [h.created_by, h.empty_layer ?? false])).toEqual([
      ['WORKDIR /home/app/work', false],
      ['WORKDIR /etc', true],
      ['WORKDIR /unused/deep', false],
      ['WORKDIR /ghost', false],
    ]);
  }, 10 * 60_000);

  it('binds one copy of a selection into every read-only step that binds it, a private one where a step can write, none left after', async () => {
    const binds = () => readdirSync(tmpdir()).filter((name) => name.startsWith('strata-binds-'));
    const before = binds();
    // Each step writes the inode of what it sees: read-only steps share one tree, as BuildKit mounts one
    // snapshot; a rw step writes into its own, which no later step sees.
    const dockerfile = [
      `FROM ${BASE}`,
      'RUN --mount=type=bind,source=src,target=/mnt/a stat -c %i /mnt/a/f > /one',
      'RUN --mount=type=bind,source=src,target=/mnt/b stat -c %i /mnt/b/f > /two && cat /mnt/b/f > /two-content',
      'RUN --mount=type=bind,source=src,target=/mnt/c,rw stat -c %i /mnt/c/f > /three && echo changed > /mnt/c/f',
      'RUN --mount=type=bind,source=src,target=/mnt/d cat /mnt/d/f > /four && ! touch /mnt/d/new 2>/dev/null',
      'RUN --mount=type=bind,source=src/f,target=/mnt/file stat -c %i /mnt/file > /five',
      '',
    ].join('\n');
    const dir = writeContext(join(work, 'bind-shared'), { Dockerfile: dockerfile, 'src/f': 'bound\n' });
    const { result } = await buildWith(images, { context: dir });
    const view = await imageView(images, result.target.digest);
    const read = async (path: string) => String(await view.readFile(path, 'utf8'));
    expect(await read('/two')).toBe(await read('/one'));
    expect(await read('/three')).not.toBe(await read('/one'));
    expect(await read('/two-content')).toBe('bound\n');
    expect(await read('/four')).toBe('bound\n'); // the rw step's write went nowhere
    expect(readFileSync(join(dir, 'src/f'), 'utf8')).toBe('bound\n');
    expect(await read('/five')).not.toBe(''); // a file's selection is a tree of its own
    expect(binds()).toEqual(before);
    // A build that fails after a shared bind leaves nothing behind either.
    const failing = writeContext(join(work, 'bind-shared-fails'), { Dockerfile: `FROM ${BASE}\nRUN --mount=type=bind,source=src,target=/mnt/a false\n`, 'src/f': 'x\n' });
    await expect(buildWith(images, { context: failing })).rejects.toThrow(/line 2: RUN .* failed with exit status 1/);
    expect(binds()).toEqual(before);
  }, 10 * 60_000);

  it('fills a cache mount from a stage on its first use, and keeps it apart from the same id without from, as BuildKit keys it', async () => {
    const dockerfile = [
      `FROM ${BASE} AS seed`,
      'RUN mkdir -p /seed/sub && echo seeded > /seed/sub/file',
      `FROM ${BASE}`,
      'RUN --mount=type=cache,target=/c,from=seed,source=/seed cat /c/sub/file > /first && echo added > /c/new',
      'RUN --mount=type=cache,target=/c,from=seed,source=/seed cat /c/new > /second',
      'RUN --mount=type=cache,target=/c ls /c > /plain',
      '',
    ].join('\n');
    const dir = writeContext(join(work, 'cache-from'), { Dockerfile: dockerfile });
    const { result } = await buildWith(images, { context: dir });
    const view = await imageView(images, result.target.digest);
    const read = async (path: string) => String(await view.readFile(path, 'utf8'));
    expect(await read('/first')).toBe('seeded\n');
    expect(await read('/second')).toBe('added\n'); // the same cache, kept between the steps
    expect(await read('/plain')).toBe(''); // the id alone is another cache
    await expect(view.lstat('/c/sub')).rejects.toMatchObject({ code: 'ENOENT' }); // never in a layer
    // Without from, source is a directory of the cache, as BuildKit mounts a subpath; a missing one is refused.
    const sub = writeContext(join(work, 'cache-source'), {
      Dockerfile: `FROM ${BASE}\nRUN --mount=type=cache,id=sub,target=/c mkdir -p /c/sel/deeper && echo benign > /c/sel/deeper/benign.txt\nRUN --mount=type=cache,id=sub,source=/sel/deeper,target=/v,ro cat /v/benign.txt > /via-source\n`,
    });
    const viaSource = await imageView(images, (await buildWith(images, { context: sub })).result.target.digest);
    expect(String(await viaSource.readFile('/via-source', 'utf8'))).toBe('benign\n');
    const missing = writeContext(join(work, 'cache-source-missing'), { Dockerfile: `FROM ${BASE}\nRUN --mount=type=cache,id=sub,target=/c,source=absent true\n` });
    await expect(buildWith(images, { context: missing })).rejects.toThrow(/Dockerfile line 2: RUN --mount=type=cache,id=sub: the cache's source "absent" is not in the cache/);
  }, 10 * 60_000);

  it('gives a secret as an environment variable with env= (Dockerfile 1.10), alone or beside its file, as the reference shows', async () => {
    const dockerfile = [
      `FROM ${BASE}`,
      'ENV API_KEY=from-the-image',
      'RUN --mount=type=secret,id=API_KEY,env=API_KEY echo "$API_KEY" > /env-only && ls /run/secrets > /listing 2>&1 || true',
      'RUN --mount=type=secret,source=token,env=TOKEN,target=/etc/token echo "$TOKEN $(cat /etc/token)" > /both',
      'RUN --mount=type=secret,id=absent,env=ABSENT echo "${ABSENT-unset}" > /absent',
      'RUN echo "$API_KEY" > /after',
      '',
    ].join('\n');
    const dir = writeContext(join(work, 'secret-env'), { Dockerfile: dockerfile });
    const { result } = await buildWith(images, { context: dir, secrets: { API_KEY: Buffer.from('k3y'), token: Buffer.from('t0ken') } });
    const view = await imageView(images, result.target.digest);
    const read = async (path: string) => String(await view.readFile(path, 'utf8'));
    expect(await read('/env-only')).toBe('k3y\n'); // over the image's variable of that name, for this step only
    expect(await read('/listing')).toMatch(/No such file|^$/); // no file when env alone is asked for
    expect(await read('/both')).toBe('t0ken t0ken\n');
    expect(await read('/absent')).toBe('unset\n');
    expect(await read('/after')).toBe('from-the-image\n');
    expect(JSON.stringify(result.config)).not.toMatch(/k3y|t0ken/);
    await expect(buildWith(images, { context: writeContext(join(work, 'secret-env-bad'), { Dockerfile: `FROM ${BASE}\nRUN --mount=type=secret,id=a,env=1X true\n` }) })).rejects.toThrow(/Dockerfile line 2: --mount env="1X" is not a variable's name/);
  }, 10 * 60_000);

  it('runs RUN --security=insecure privileged when the build allows security.insecure, and refuses it otherwise', async () => {
    const dockerfile = [
      `FROM ${BASE}`,
      'RUN grep CapEff /proc/self/status > /sandboxed',
      'RUN --security=insecure grep CapEff /proc/self/status > /insecure && mkdir /m && mount -t tmpfs none /m && umount /m && ls /dev > /devices && rmdir /m',
      '',
    ].join('\n');
    const dir = writeContext(join(work, 'insecure'), { Dockerfile: dockerfile });
    await expect(buildWith(images, { context: dir })).rejects.toThrow(/Dockerfile line 3: RUN --security=insecure needs the security.insecure entitlement/);
    const { result } = await buildWith(images, { context: dir, allow: ['security.insecure'] });
    const view = await imageView(images, result.target.digest);
    // Every capability this (root) test process has, which is all the kernel's; Docker's fourteen otherwise.
    const own = /CapEff:\s*(\w+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]!;
    expect(await view.readFile('/insecure', 'utf8')).toBe(`CapEff:\t${own}\n`);
    expect(await view.readFile('/sandboxed', 'utf8')).toBe('CapEff:\t00000000a80425fb\n');
    // The host's devices (a loop or a block device the runtime would not make), where the sandbox has six.
    const devices = String(await view.readFile('/devices', 'utf8')).split('\n');
    expect(devices.length).toBeGreaterThan(20);
    expect(devices).toContain('null');
  }, 10 * 60_000);

  it('forwards an SSH agent to RUN --mount=type=ssh, and leaves nothing of it in the layer', async () => {
    const agentSocket = join(work, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', agentSocket], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(agentSocket); i++) await new Promise((r) => setTimeout(r, 50));
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'strata-test-key', '-f', join(work, 'key')]);
      execFileSync('ssh-add', ['-q', join(work, 'key')], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket }, stdio: 'ignore' });
      // Asks the agent for its identities (SSH2_AGENTC_REQUEST_IDENTITIES) and prints their count and comments.
      const ask = `perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Peer => $ENV{SSH_AUTH_SOCK}) or die $!; print $s pack("NC", 1, 11); read($s, $l, 4); read($s, $m, unpack("N", $l)); ($t, $n) = unpack("CN", $m); $m = substr($m, 5); print "$t $n"; for (1..$n) { ($b, $c) = unpack("N/a N/a", $m); $m = substr($m, 8 + length($b) + length($c)); print " $c" } print "\\n"'`;
      const dir = writeContext(join(work, 'ssh'), {
        Dockerfile: [
          `FROM ${BASE}`,
          `RUN --mount=type=ssh ${ask} > /identities && echo "$SSH_AUTH_SOCK $(stat -c %a:%u "$SSH_AUTH_SOCK")" > /agent`,
          `RUN --mount=type=ssh,id=deploy,target=/tmp/deploy.sock,mode=0660,uid=1234 stat -c %a:%u /tmp/deploy.sock > /deploy && test "$SSH_AUTH_SOCK" = /tmp/deploy.sock`,
          'RUN --mount=type=ssh,id=absent echo "$SSH_AUTH_SOCK $(test -S "$SSH_AUTH_SOCK" && echo there || echo not there)" > /absent',
          '',
        ].join('\n'),
      });
      const { result } = await buildWith(images, { context: dir, tags: ['example.com/ssh:1'], ssh: { default: agentSocket, deploy: agentSocket } });
      const tree = await imageTree(images, result.names[0]!, work);
      const view = await imageView(images, result.names[0]!);
      // 12: SSH2_AGENT_IDENTITIES_ANSWER, with the one key added.
      expect(await view.readFile('/identities', 'utf8')).toBe('12 1 strata-test-key\n');
      expect(await view.readFile('/agent', 'utf8')).toBe('/run/buildkit/ssh_agent.0 600:0\n');
      expect(await view.readFile('/deploy', 'utf8')).toBe('660:1234\n');
      // An agent not given and not required: the step runs without it, as in BuildKit.
      expect(await view.readFile('/absent', 'utf8')).toBe('/run/buildkit/ssh_agent.0 not there\n');
      for (const path of ['run/buildkit', 'tmp/deploy.sock']) expect(tree.has(path), path).toBe(false);

      writeContext(dir, { Dockerfile: `FROM ${BASE}\nRUN --mount=type=ssh,id=missing,required true\n` });
      await expect(buildWith(images, { context: dir, ssh: { default: agentSocket } })).rejects.toThrow(/Dockerfile line 2: RUN --mount=type=ssh: the SSH agent "missing" is required and was not given/);
    } finally {
      agent.kill();
    }
  }, 10 * 60_000);

  /** Builds LIST_INTERFACES with `network` flags in a context of its own. */
  async function buildNetwork(name: string, network: string): Promise<{ ran: string[]; tree: Map<string, NodeRecord> }> {
    const dir = writeContext(join(work, `network-${name}`), { Dockerfile: `FROM ${BASE}\n${LIST_INTERFACES.replace('RUN ', `RUN ${network}`)}\n` });
    const { result, ran } = await buildWith(images, { context: dir, tags: [`example.com/network:${name}`] });
    return { ran, tree: await imageTree(images, result.names[0]!, work) };
  }
});

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
