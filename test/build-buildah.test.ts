/**
 * strata build against buildah (`buildah bud --layers --isolation chroot`, Debian's), on the same Dockerfile
 * and context, from the same minbase image: COPY (directories, two directories into one, single files,
 * renames, --chown by names and by numbers alone, --chmod), an automatic platform ARG in a RUN, ADD of a local tar (alone, and with a directory into one new directory), ADD
 * of URLs (served on 127.0.0.1: with and without Last-Modified, an archive kept as it is, --chmod, --chown), RUN
 * (shell work, a user made with useradd, a step run as that user), ENV, WORKDIR, USER, ARG, and a
 * multi-stage COPY --from. Both results, unpacked and mounted by the kernel, give the same tree and the same
 * config.
 *
 * Known and kept differences, listed where they are left out of the comparison:
 * - times of what RUN made or touched (each build runs at its own moment), and of directories;
 * - symlink times below the second: buildah does not keep them (strata does, as BuildKit); the context's
 *   symlink has a whole-second time;
 * - setuid and setgid bits of copied files: buildah 1.28 loses them (its chown after the chmod clears them);
 *   strata keeps them, as Docker does;
 * - `/etc/hosts`: the image has none; buildah's chroot isolation leaves the empty file it bind-mounted
 *   over, strata (as Docker) leaves nothing of the files it binds for RUN;
 * - the directory `COPY --chmod=640 config/ /etc/app/` makes: buildah gives it 0755, strata the octal mode,
 *   as BuildKit's copy does (its testCopyChmod; build-copy-flags tests it).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lutimesSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostPlatform, type Images } from '@strata/images';
import { BASE, Buildah, buildWith, imageTree, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { serveFiles } from './helpers/http-files.js';
import { needs } from './helpers/oracle.js';
import { diffSnapshots, type NodeRecord } from './helpers/snapshot.js';

const DOCKERFILE = `
FROM ${BASE} AS builder
ARG GREETING=hello
ARG TARGETARCH
WORKDIR /src
COPY app/ ./
RUN set -e; echo "$GREETING from $(pwd) on $TARGETARCH" > built.txt; mkdir -p out; cp -p *.sh out/; chmod 0750 out; ln -s built.txt latest

FROM ${BASE}
ENV APP_HOME=/opt/app LANG=C.UTF-8
WORKDIR $APP_HOME
COPY --from=builder /src/out ./bin/
COPY --from=builder /src/built.txt /src/latest ./
COPY --chown=nobody:nogroup --chmod=640 config/ /etc/app/
ADD vendor.tar.gz /opt/vendor/
COPY notes.txt single.txt /opt/docs/
COPY single.txt /opt/docs/renamed.txt
COPY --chown=42 single.txt /opt/docs/by-uid-with-entry.txt
COPY --chown=4321 single.txt /opt/docs/by-uid.txt
COPY --chown=_apt: single.txt /opt/docs/by-name.txt
COPY tree /opt/tree
COPY over1/ over2/ /opt/over/
ADD vendor.tar.gz over3/ /opt/mixed/
ADD ORIGIN/files/hello.txt ORIGIN/files/nodate.txt /opt/dl/
ADD --chmod=640 ORIGIN/files/vendor.tar.gz /opt/dl/archive.tgz
ADD --chown=nobody:nogroup ORIGIN/files/hello.txt?v=2 /opt/dl/owned/
RUN useradd -m -u 1234 builder && mkdir -p /var/lib/app && chown builder:builder /var/lib/app && rm -rf /usr/share/doc/apt /etc/motd
USER builder
RUN echo "$(id -u):$(id -g) $HOME" > /var/lib/app/who && touch /var/lib/app/.hidden
USER root
LABEL org.example.purpose=test
EXPOSE 8080
ENTRYPOINT ["/opt/app/bin/run.sh"]
CMD ["--serve"]
`;

const MTIME = 1_600_000_000;

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

describe.skipIf(!needs('root', 'overlay', 'buildah', 'umoci', 'skopeo', 'debootstrap', 'gnu-tar'))('strata build against buildah', () => {
  let work: string;
  let images: Images;
  let buildah: Buildah;
  let context: string;
  let server: Awaited<ReturnType<typeof serveFiles>> | undefined;

  beforeAll(async () => {
    work = scratch('strata-build-buildah-');
    images = await rootWithBase(work);
    buildah = new Buildah(work);
    context = writeContext(join(work, 'context'), {
      Dockerfile: '', // written below, once the files its ADDs fetch are served
      '.dockerignore': 'app/*.log\n**/secret*\n',
      'app/run.sh': { content: '#!/bin/sh\necho run\n', mode: 0o755, mtime: MTIME },
      'app/lib.sh': { content: 'helper() { :; }\n', mode: 0o644, mtime: MTIME },
      'app/debug.log': 'ignored\n',
      'app/secret.key': 'never copied\n',
      'config/app.conf': { content: 'port=8080\n', mode: 0o600, mtime: MTIME },
      'config/nested/extra.conf': { content: 'x=1\n', mtime: MTIME },
      'notes.txt': { content: 'notes\n', mtime: MTIME },
      'single.txt': { content: 'single\n', mode: 0o4755, mtime: MTIME },
      'tree/a/b/c.txt': { content: 'deep\n', mtime: MTIME },
      'tree/link': { symlink: 'a/b/c.txt', mtime: MTIME },
      'tree/empty': { dir: true, mode: 0o700 },
      'tree/exec': { content: '#!/bin/sh\n', mode: 0o700, mtime: MTIME },
      // Two sources into one new directory, with names in common: the later one's file wins, directories merge.
      'over1/same.txt': { content: 'first\n', mtime: MTIME },
      'over1/only1.txt': { content: 'one\n', mtime: MTIME },
      'over1/sub/a.txt': { content: 'a\n', mtime: MTIME },
      'over2/same.txt': { content: 'second, longer\n', mode: 0o600, mtime: MTIME },
      'over2/sub/b.txt': { content: 'b\n', mtime: MTIME },
      // After an archive extracted into a new directory, a source with one of its names: the later one wins.
      'over3/lib/v.txt': { content: 'not the vendored one\n', mtime: MTIME },
      'over3/extra.txt': { content: 'extra\n', mtime: MTIME },
    });
    // Names only bytes spell (Latin-1, a byte no UTF-8 starts with): copied and linked by their bytes.
    const latin1 = (path: string) => Buffer.from(`${context}/${path}`, 'latin1');
    mkdirSync(latin1('tree/d\xe9'));
    writeFileSync(latin1('tree/caf\xe9'), 'latin-1\n');
    writeFileSync(latin1('tree/d\xe9/inner\xff'), 'inner\n');
    symlinkSync(Buffer.from('caf\xe9', 'latin1'), latin1('tree/l\x80'));
    for (const path of ['tree/caf\xe9', 'tree/d\xe9/inner\xff', 'tree/l\x80']) lutimesSync(latin1(path), MTIME, MTIME);
    // A gzipped tar with its own owners and modes (GNU tar writes it), for ADD to extract.
    writeContext(join(work, 'vendor'), { 'lib/v.txt': { content: 'vendored\n', mtime: MTIME }, 'bin/tool': { content: 'tool\n', mode: 0o755, mtime: MTIME } });
    execFileSync('tar', ['-C', join(work, 'vendor'), '--owner=1000', '--group=1000', '-czf', join(context, 'vendor.tar.gz'), 'lib', 'bin']);
    // What the ADDs of URLs fetch, from both builders.
    const lastModified = new Date(MTIME * 1000).toUTCString();
    server = await serveFiles(
      {
        '/files/hello.txt': { body: Buffer.from('fetched\n'), lastModified },
        '/files/nodate.txt': { body: Buffer.from('no date\n') },
        '/files/vendor.tar.gz': { body: readFileSync(join(context, 'vendor.tar.gz')), lastModified },
      },
      join(work, 'served.json'),
    );
    writeFileSync(join(context, 'Dockerfile'), DOCKERFILE.replaceAll('ORIGIN', server.origin));
  }, 30 * 60_000);

  afterAll(async () => {
    server?.close();
    await images?.close();
    buildah?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** The trees of `<name>:buildah` and `<name>:strata`, comparable; buildah's empty /etc/hosts (its mount point) left out. */
  async function bothTrees(name: string): Promise<{ theirs: Map<string, NodeRecord>; mine: Map<string, NodeRecord> }> {
    const theirs = comparable(buildah.tree(`${name}:buildah`));
    theirs.delete('etc/hosts');
    return { theirs, mine: comparable(await imageTree(images, `${name}:strata`, work)) };
  }

  /** A tree with the times left out where each build has its own (RUN's work, directories). */
  function comparable(tree: Map<string, NodeRecord>): Map<string, NodeRecord> {
    const out = new Map<string, NodeRecord>();
    for (const [path, record] of tree) {
      const copied = /^(opt\/(app|docs|tree|vendor|dl)|etc\/app)\//.test(path) && record.type !== 'directory' && !/^opt\/app\/(built\.txt|latest)$/.test(path);
      const { mtimeNs, ...rest } = record;
      if (!copied || mtimeNs === undefined) out.set(path, rest);
      else out.set(path, record);
    }
    return out;
  }

  it('gives the same tree and config as buildah bud', async () => {
    const ours = await buildWith(images, { context, tags: ['example.com/built:strata'] });
    buildah.build(context, 'example.com/built:buildah');
    expect(ours.result.names).toEqual(['example.com/built:strata']);

    const theirs = comparable(buildah.tree('example.com/built:buildah'));
    expect(theirs.get('etc/hosts')).toMatchObject({ type: 'file', size: 0 });
    theirs.delete('etc/hosts');
    for (const path of ['opt/docs/single.txt', 'opt/docs/renamed.txt', 'opt/docs/by-uid-with-entry.txt', 'opt/docs/by-uid.txt', 'opt/docs/by-name.txt']) {
      expect(theirs.get(path)!.mode).toBe(0o755);
      theirs.get(path)!.mode = 0o4755;
    }
    expect(theirs.get('etc/app')!.mode).toBe(0o755);
    theirs.get('etc/app')!.mode = 0o640;
    const mine = comparable(await imageTree(images, 'example.com/built:strata', work));
    expect(diffSnapshots(theirs, mine, 40)).toEqual([]);
    // What the comparison rests on, checked directly.
    expect(mine.get('etc/app/app.conf')).toMatchObject({ mode: 0o640, uid: 65534, gid: 65534 });
    expect(mine.get('opt/vendor/bin/tool')).toMatchObject({ mode: 0o755, uid: 1000, gid: 1000 });
    expect(mine.get('opt/docs/single.txt')).toMatchObject({ mode: 0o4755, uid: 0, mtimeNs: `${MTIME}000000000` });
    // A number alone is the group too, passwd entry or none; a name with an empty group, its primary group.
    expect(mine.get('opt/docs/by-uid-with-entry.txt')).toMatchObject({ uid: 42, gid: 42 });
    expect(mine.get('opt/docs/by-uid.txt')).toMatchObject({ uid: 4321, gid: 4321 });
    expect(mine.get('opt/docs/by-name.txt')).toMatchObject({ uid: 42, gid: 65534 });
    expect(mine.has('opt/app/bin/debug.log') || mine.has('src/secret.key')).toBe(false);
    expect(mine.get('var/lib/app/who')).toMatchObject({ uid: 1234 });
    expect(mine.get('opt/app/built.txt')).toMatchObject({ sha256: sha(`hello from /src on ${hostPlatform().architecture}\n`) });
    expect(mine.get('opt/tree/d\udce9/inner\udcff')).toMatchObject({ type: 'file', mtimeNs: `${MTIME}000000000` });
    expect(mine.get('opt/tree/l\udc80')).toMatchObject({ type: 'symlink', linkname: 'caf\udce9' });
    expect(mine.get('opt/dl/hello.txt')).toMatchObject({ mode: 0o600, uid: 0, mtimeNs: `${MTIME}000000000` });
    expect(mine.get('opt/dl/nodate.txt')).toMatchObject({ mode: 0o600, mtimeNs: '0' });
    expect(mine.get('opt/dl/archive.tgz')).toMatchObject({ type: 'file', mode: 0o640 });
    expect(mine.get('opt/dl/owned/hello.txt')).toMatchObject({ mode: 0o600, uid: 65534, gid: 65534 });

    const config = images.inspect('example.com/built:strata').config.config as Record<string, unknown>;
    const theirConfig = buildah.config('example.com/built:buildah');
    for (const key of ['Env', 'Cmd', 'Entrypoint', 'User', 'WorkingDir', 'ExposedPorts']) expect(config[key], key).toEqual(theirConfig[key]);
    const labels = { ...(theirConfig.Labels as Record<string, string>) };
    delete labels['io.buildah.version'];
    expect(config.Labels).toEqual(labels);
  }, 10 * 60_000);

  it('gives the same tree as buildah for an apt-get install', async () => {
    const dir = writeContext(join(work, 'apt-context'), {
      Dockerfile: `FROM ${BASE}\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tree >/dev/null && rm -rf /var/lib/apt/lists/*\n`,
    });
    await buildWith(images, { context: dir, tags: ['example.com/apt:strata'] });
    buildah.build(dir, 'example.com/apt:buildah');
    const strip = (tree: Map<string, NodeRecord>) => {
      const out = new Map<string, NodeRecord>();
      for (const [path, record] of tree) {
        if (VOLATILE.some((re) => re.test(path))) continue;
        const { mtimeNs, ...rest } = record;
        void mtimeNs;
        out.set(path, rest);
      }
      return out;
    };
    const theirs = strip(buildah.tree('example.com/apt:buildah'));
    theirs.delete('etc/hosts');
    const mine = strip(await imageTree(images, 'example.com/apt:strata', work));
    expect(diffSnapshots(theirs, mine, 40)).toEqual([]);
    expect(mine.get('usr/bin/tree')).toMatchObject({ type: 'file', mode: 0o755 });
  }, 10 * 60_000);

  it('runs RUN --mount=type=cache and type=tmpfs as buildah does, none of them in a layer', async () => {
    // buildah keeps its caches outside its store, in its TMPDIR (the Buildah helper's, under `work`): one of this run's own.
    const id = `strata-test-${Date.now()}`;
    const dir = writeContext(join(work, 'mount-context'), {
      Dockerfile: [
        `FROM ${BASE}`,
        `RUN --mount=type=cache,target=/var/cache/test-mount,id=${id} echo first >> /var/cache/test-mount/seen && mkdir -p /opt/mounts && cp /var/cache/test-mount/seen /opt/mounts/one`,
        `RUN --mount=type=cache,id=${id},sharing=locked,target=/var/cache/test-mount cat /var/cache/test-mount/seen > /opt/mounts/two`,
        'RUN --mount=type=tmpfs,target=/tmp/scratch echo x > /tmp/scratch/f && ls -a /tmp/scratch > /opt/mounts/tmpfs',
        `RUN --mount=type=cache,id=${id}-owned,target=/var/lib/test-mount/owned,uid=1234,gid=1234,mode=0700 stat -c '%u:%g %a' /var/lib/test-mount/owned > /opt/mounts/owned`,
        '',
      ].join('\n'),
    });
    await buildWith(images, { context: dir, tags: ['example.com/mounts:strata'] });
    buildah.build(dir, 'example.com/mounts:buildah');
    const { theirs, mine } = await bothTrees('example.com/mounts');
    expect(mine.get('opt/mounts/one')?.sha256).toBe(sha('first\n'));
    expect(mine.get('opt/mounts/two')?.sha256).toBe(sha('first\n')); // the same cache, locked
    expect(mine.get('opt/mounts/tmpfs')?.sha256).toBe(sha('.\n..\nf\n'));
    expect(mine.get('opt/mounts/owned')?.sha256).toBe(sha('1234:1234 700\n'));
    // The mount points the runtime made are gone, as in BuildKit; buildah 1.28 removes a cache's target but
    // leaves a directory it made above one, and a tmpfs's target: the differences, listed here.
    for (const path of ['var/cache/test-mount', 'tmp/scratch', 'var/lib/test-mount/owned', 'var/lib/test-mount']) expect(mine.has(path), path).toBe(false);
    for (const path of ['var/lib/test-mount', 'tmp/scratch']) {
      expect(theirs.get(path), path).toMatchObject({ type: 'directory' });
      theirs.delete(path);
    }
    expect(diffSnapshots(theirs, mine, 40)).toEqual([]);
    // The cache outlives the build: a second build sees what the first left, and the step is not cached
    // by the cache's contents (noCache here; the key is build-cache's test).
    const again = await buildWith(images, { context: dir, tags: ['example.com/mounts:again'], noCache: true });
    expect(again.ran).toHaveLength(4);
    expect((await imageTree(images, 'example.com/mounts:again', work)).get('opt/mounts/one')?.sha256).toBe(sha('first\nfirst\n'));
  }, 10 * 60_000);

  it('gives RUN --mount=type=secret the secret as buildah does, in no layer and no key', async () => {
    const secretFile = join(work, 'token.txt');
    writeFileSync(secretFile, 's3cret-value\n');
    const dir = writeContext(join(work, 'secret-context'), {
      Dockerfile: [
        `FROM ${BASE}`,
        'RUN --mount=type=secret,id=token mkdir -p /opt/secrets && sha256sum < /run/secrets/token > /opt/secrets/sum && stat -c %a /run/secrets/token > /opt/secrets/mode',
        'RUN --mount=type=secret,id=token,target=/etc/token.conf,mode=0440 stat -c %a /etc/token.conf > /opt/secrets/target-mode',
        'RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo absent > /opt/secrets/absent',
        '',
      ].join('\n'),
    });
    const first = await buildWith(images, { context: dir, tags: ['example.com/secrets:strata'], secrets: { token: readFileSync(secretFile) } });
    buildah.build(dir, 'example.com/secrets:buildah', ['--secret', `id=token,src=${secretFile}`]);
    const { theirs, mine } = await bothTrees('example.com/secrets');
    expect(mine.get('opt/secrets/sum')?.sha256).toBe(sha(`${sha('s3cret-value\n')}  -\n`));
    expect(mine.get('opt/secrets/mode')?.sha256).toBe(sha('400\n'));
    expect(mine.get('opt/secrets/target-mode')?.sha256).toBe(sha('440\n'));
    expect(mine.has('run/secrets/token') || mine.has('run/secrets') || mine.has('etc/token.conf')).toBe(false);
    // buildah 1.28 leaves the directory it made for the secret: the difference, listed here.
    expect(theirs.get('run/secrets')).toMatchObject({ type: 'directory' });
    theirs.delete('run/secrets');
    expect(diffSnapshots(theirs, mine, 40)).toEqual([]);
    // Nowhere in the image's blobs, and another secret value keys the same steps.
    const manifest = JSON.parse(readFileSync(images.content.path(first.result.target.digest), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    for (const { digest } of [manifest.config, ...manifest.layers]) expect(readFileSync(images.content.path(digest)).includes('s3cret-value')).toBe(false);
    const again = await buildWith(images, { context: dir, secrets: { token: Buffer.from('another\n') } });
    expect(again.ran).toEqual([]);
    // A required secret that was not given is the line's error.
    const required = writeContext(join(work, 'secret-required'), { Dockerfile: `FROM ${BASE}\nRUN --mount=type=secret,id=token,required true\n` });
    await expect(buildWith(images, { context: required })).rejects.toThrow('Dockerfile line 2: RUN --mount=type=secret: the secret "token" is required and was not given');
  }, 10 * 60_000);

  it('runs RUN --mount=type=bind of the context and of a stage as buildah does, writes with rw discarded', async () => {
    const dir = writeContext(join(work, 'bind-context'), {
      Dockerfile: [
        `FROM ${BASE} AS maker`,
        'RUN mkdir /out && echo made > /out/f',
        `FROM ${BASE}`,
        'RUN --mount=type=bind,source=src,target=/mnt/src mkdir -p /opt/binds && ls /mnt/src > /opt/binds/listing && cat /mnt/src/a.txt > /opt/binds/bound',
        'RUN --mount=type=bind,from=maker,source=/out,target=/mnt/out cp /mnt/out/f /opt/binds/from-stage',
        'RUN --mount=type=bind,source=src/a.txt,target=/etc/bound.txt cat /etc/bound.txt > /opt/binds/file',
        'RUN --mount=type=bind,source=src,target=/mnt/rw,rw touch /mnt/rw/new && ls /mnt/rw > /opt/binds/rw',
        '',
      ].join('\n'),
      '.dockerignore': 'src/*.log\n',
      'src/a.txt': { content: 'bound\n', mtime: MTIME },
      'src/b.txt': { content: 'also\n', mtime: MTIME },
      'src/skip.log': 'excluded by .dockerignore, as from any COPY\n',
    });
    await buildWith(images, { context: dir, tags: ['example.com/binds:strata'] });
    expect(readdirSync(join(dir, 'src')).sort()).toEqual(['a.txt', 'b.txt', 'skip.log']); // rw wrote nothing back (buildah 1.28 does)
    buildah.build(dir, 'example.com/binds:buildah');
    const { theirs, mine } = await bothTrees('example.com/binds');
    expect(mine.get('opt/binds/listing')?.sha256).toBe(sha('a.txt\nb.txt\n'));
    expect(mine.get('opt/binds/bound')?.sha256).toBe(sha('bound\n'));
    expect(mine.get('opt/binds/from-stage')?.sha256).toBe(sha('made\n'));
    expect(mine.get('opt/binds/file')?.sha256).toBe(sha('bound\n'));
    expect(mine.get('opt/binds/rw')?.sha256).toBe(sha('a.txt\nb.txt\nnew\n'));
    for (const path of ['mnt/src', 'mnt/out', 'mnt/rw', 'etc/bound.txt']) expect(mine.has(path), path).toBe(false);
    // buildah 1.28 binds the context without its .dockerignore (BuildKit binds the context as it sends it,
    // filtered): the listings that show skip.log are the differences, listed here.
    for (const [path, listing] of [['opt/binds/listing', 'a.txt\nb.txt\nskip.log\n'], ['opt/binds/rw', 'a.txt\nb.txt\nnew\nskip.log\n']] as const) {
      expect(theirs.get(path)?.sha256, path).toBe(sha(listing));
      theirs.delete(path);
      mine.delete(path);
    }
    expect(diffSnapshots(theirs, mine, 40)).toEqual([]);
  }, 10 * 60_000);
});

/** What two runs of apt-get write differently whatever runs them: logs and caches with times in them. */
const VOLATILE = [/^var\/log\//, /^var\/cache\/(debconf|ldconfig|apt)\//, /^var\/lib\/dpkg\/(status-old|triggers\/)/];
