/**
 * COPY and ADD as BuildKit's frontend (dockerfile 1.19 and 1.20) carries them out where buildah 1.28 has no
 * such flags: `--exclude` (BuildKit's own integration test of it, its context and expected files, is the
 * oracle for the first case), `--parents` (the cases of the Dockerfile reference), a wildcard that matches
 * nothing (BuildKit's empty-wildcard test), `ADD --unpack`, and named contexts (`--build-context`, as buildx
 * documents them). Built on the userspace driver: no RUN.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, copyFileSync, linkSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Images } from '@strata/images';
import type { WritableLayer } from '@strata/core';
import { aptImage } from '../benchmarks/inputs.js';
import { BASE, buildWith, type ContextFiles, imageView, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { serveFiles } from './helpers/http-files.js';
import { needs } from './helpers/oracle.js';

/** BuildKit's exclude test context: four directories of files by extension, and two symlinks. */
const EXCLUDE_CONTEXT: ContextFiles = {
  'dir1/file-101.png': '2',
  'dir1/file-102.txt': '3',
  'dir1/file-103.jpeg': '4',
  'dir2/file-201.pdf': '6',
  'dir2/file-202.jpeg': '7',
  'dir2/file-203.png': '8',
  'dir3/file-301.mp3': '9',
  'dir3/file-302.mpeg': '10',
  'dir4/file-401.txt': '11',
  'dir4/file-402.txt': { symlink: 'file-401.txt' },
  'dir4/file-403.txt': { symlink: 'file-404.txt' },
};

describe.skipIf(!needs('root', 'umoci', 'skopeo', 'debootstrap'))('COPY and ADD flags of BuildKit', () => {
  let work: string;
  let images: Images;
  let n = 0;

  beforeAll(async () => {
    work = scratch('strata-build-copy-flags-');
    images = await rootWithBase(work, 'root', 'userspace');
  }, 30 * 60_000);

  afterAll(async () => {
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  async function built(dockerfile: string, files: ContextFiles, prepare?: (dir: string) => void): Promise<{ layer: WritableLayer; history: string[]; ran: string[] }> {
    const dir = writeContext(join(work, `context-${++n}`), { ...files, Dockerfile: dockerfile });
    prepare?.(dir);
    const { result, ran } = await buildWith(images, { context: dir });
    const layer = await imageView(images, result.target.digest);
    return { layer, history: (result.config.history ?? []).map((h) => h.created_by ?? ''), ran };
  }

  /** Every path under `dir`, with a file's content or a symlink's target. */
  async function listing(layer: WritableLayer, dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const visit = async (path: string) => {
      for (const name of (await layer.readdir(path)).sort()) {
        const child = `${path}/${name}`;
        const st = await layer.lstat(child);
        if (st.isDirectory()) {
          out[`${child.slice(dir.length + 1)}/`] = '';
          await visit(child);
        } else out[child.slice(dir.length + 1)] = st.isSymbolicLink() ? `-> ${String(await layer.readlink(child))}` : String(await layer.readFile(child, 'utf8'));
      }
    };
    await visit(dir);
    return out;
  }

  it("--exclude leaves out what its patterns match below each source, as BuildKit's exclude test expects", async () => {
    const { layer } = await built(
      [
        'FROM scratch AS builder1',
        'COPY --exclude=*/*.png --exclude=*/*.jpeg . /1',
        'FROM scratch AS builder2',
        'COPY --exclude=*/*.pdf --exclude=*/*.txt . /2',
        'FROM scratch AS builder3',
        'ADD --exclude=*.mp3 dir3/ /3/',
        'FROM scratch AS builder4',
        'COPY --exclude=*.mp3 --exclude=*.jpeg --exclude=*.png --exclude=*.pdf --exclude=*.txt dir* /4/',
        'FROM scratch AS builder5',
        'ADD --exclude=*.mp* --exclude=*.jpeg --exclude=*.png --exclude=*.pdf dir* /5',
        'FROM scratch AS builder6',
        'ADD --exclude=* dir* /6',
        'FROM scratch',
        ...[1, 2, 3, 4, 5, 6].map((i) => `COPY --from=builder${i} / /builder${i}`),
        '',
      ].join('\n'),
      { ...EXCLUDE_CONTEXT, '.dockerignore': 'Dockerfile\n.dockerignore\n' },
    );
    expect(await listing(layer, '/builder1/1')).toEqual({
      'dir1/': '',
      'dir1/file-102.txt': '3',
      'dir2/': '',
      'dir2/file-201.pdf': '6',
      'dir3/': '',
      'dir3/file-301.mp3': '9',
      'dir3/file-302.mpeg': '10',
      'dir4/': '',
      'dir4/file-401.txt': '11',
      'dir4/file-402.txt': '-> file-401.txt',
      'dir4/file-403.txt': '-> file-404.txt',
    });
    expect(await listing(layer, '/builder2/2')).toEqual({
      'dir1/': '',
      'dir1/file-101.png': '2',
      'dir1/file-103.jpeg': '4',
      'dir2/': '',
      'dir2/file-202.jpeg': '7',
      'dir2/file-203.png': '8',
      'dir3/': '',
      'dir3/file-301.mp3': '9',
      'dir3/file-302.mpeg': '10',
      'dir4/': '',
    });
    expect(await listing(layer, '/builder3/3')).toEqual({ 'file-302.mpeg': '10' });
    expect(await listing(layer, '/builder4/4')).toEqual({ 'file-302.mpeg': '10' });
    expect(await listing(layer, '/builder5/5')).toEqual({ 'file-102.txt': '3', 'file-401.txt': '11', 'file-402.txt': '-> file-401.txt', 'file-403.txt': '-> file-404.txt' });
    expect(await listing(layer, '/builder6/6')).toEqual({});
  }, 300_000);

  it('--exclude takes exceptions, keeps a source it names itself, and enters the history and the key', async () => {
    const context: ContextFiles = { 'd/a.txt': 'a', 'd/keep.txt': 'k', 'd/sub/b.txt': 'b', 'd/sub/keep': 'kk', 'd/sub/other': 'o', 'top.txt': 't' };
    const dockerfile = (exclude: string) => `FROM scratch\nCOPY ${exclude} d /x/\nCOPY --exclude=*.txt top.txt /y/\n`;
    const { layer, history } = await built(dockerfile('--exclude=*.txt --exclude=!keep.txt --exclude=sub --exclude=!sub/keep'), context);
    // sub/ is excluded but holds an exception: it is made, with only what the exception keeps.
    expect(await listing(layer, '/x')).toEqual({ 'keep.txt': 'k', 'sub/': '', 'sub/keep': 'kk' });
    // As in BuildKit's copy, the patterns are matched below a source, never against the source itself.
    expect(await listing(layer, '/y')).toEqual({ 'top.txt': 't' });
    expect(history).toContain('COPY --exclude=*.txt --exclude=!keep.txt --exclude=sub --exclude=!sub/keep d /x/');
    const other = await built(dockerfile('--exclude=sub'), context);
    expect(await listing(other.layer, '/x')).toEqual({ 'a.txt': 'a', 'keep.txt': 'k' });
  }, 300_000);

  it("--parents keeps each source's path, from a /./ pivot when there is one, as the Dockerfile reference shows", async () => {
    const context: ContextFiles = {
      'x/a.txt': 'xa',
      'y/a.txt': 'ya',
      'x/y/a.txt': 'xya',
      'x/y/b.txt': 'xyb',
      'x/y/c.md': 'xyc',
      'src/a.txt': 'sa',
      'src/x/b.txt': 'sb',
      'src/x/y/c.txt': 'sc',
      'src/x/y/d.md': 'sd',
      'lib/e.txt': 'le',
      'private/f.txt': { content: 'pf', mode: 0o640 },
      private: { dir: true, mode: 0o750 },
      'packages/a/package.json': 'pa',
      'packages/a/src/index.js': 'ia',
      'packages/b/package.json': 'pb',
      'packages/b/node/package.json': 'nested',
    };
    const { layer } = await built(
      [
        'FROM scratch AS app',
        'COPY dist /app/dist/',
        'FROM scratch',
        'COPY ./x/a.txt ./y/a.txt /no_parents/',
        'COPY --parents ./x/a.txt ./y/a.txt /parents/',
        'COPY --parents ./x/./y/*.txt /pivot/',
        'COPY --parents ./src/**/*.txt /globstar/',
        'COPY --parents --exclude=**/c.txt src/x /excluded/',
        'COPY --from=app --parents /app/./dist/*.js /stage/',
        'COPY --parents private/f.txt nomatch*/x /meta/',
        'COPY --parents packages/*/package.json /mono/',
        'COPY --link --parents --exclude=**/*.md ./x/./y/ /linked/',
        '',
      ].join('\n'),
      { ...context, 'dist/a.js': 'ja', 'dist/b.css': 'cb' },
    );
    expect(await listing(layer, '/no_parents')).toEqual({ 'a.txt': 'ya' });
    expect(await listing(layer, '/parents')).toEqual({ 'x/': '', 'x/a.txt': 'xa', 'y/': '', 'y/a.txt': 'ya' });
    expect(await listing(layer, '/pivot')).toEqual({ 'y/': '', 'y/a.txt': 'xya', 'y/b.txt': 'xyb' });
    expect(await listing(layer, '/globstar')).toEqual({ 'src/': '', 'src/a.txt': 'sa', 'src/x/': '', 'src/x/b.txt': 'sb', 'src/x/y/': '', 'src/x/y/c.txt': 'sc' });
    expect(await listing(layer, '/excluded')).toEqual({ 'src/': '', 'src/x/': '', 'src/x/b.txt': 'sb', 'src/x/y/': '', 'src/x/y/d.md': 'sd' });
    expect(await listing(layer, '/stage')).toEqual({ 'dist/': '', 'dist/a.js': 'ja' });
    // The directories on the way are the source's own (its mode), and a wildcard that matches nothing adds nothing.
    expect(await listing(layer, '/meta')).toEqual({ 'private/': '', 'private/f.txt': 'pf' });
    expect((await layer.lstat('/meta/private/f.txt')).mode & 0o777).toBe(0o640);
    expect((await layer.lstat('/meta/private')).mode & 0o777).toBe(0o750);
    // With --link too (the layer made on an empty tree), and --exclude.
    expect(await listing(layer, '/linked')).toEqual({ 'y/': '', 'y/a.txt': 'xya', 'y/b.txt': 'xyb' });
    // The monorepo case the flag was made for: each package's manifest, nothing else of it.
    expect(await listing(layer, '/mono')).toEqual({ 'packages/': '', 'packages/a/': '', 'packages/a/package.json': 'pa', 'packages/b/': '', 'packages/b/package.json': 'pb' });
  }, 300_000);

  it('takes a wildcard that matches nothing, as BuildKit does, and several files into a directory the image has', async () => {
    const { layer } = await built('FROM scratch\nCOPY a.txt /etc/\nCOPY foo nomatch* /\nCOPY nomatch* /none/\nCOPY a.txt b.txt /etc\n', { foo: 'contents0', 'a.txt': 'a', 'b.txt': 'b' });
    expect(await layer.readFile('/foo', 'utf8')).toBe('contents0');
    await expect(layer.lstat('/none')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await listing(layer, '/etc')).toEqual({ 'a.txt': 'a', 'b.txt': 'b' });
    await expect(built('FROM scratch\nCOPY a.txt b.txt /file\n', { 'a.txt': 'a', 'b.txt': 'b' })).rejects.toThrow(/line 2: COPY with more than one source file the destination must be a directory/);
  }, 300_000);

  it('keeps the hardlinks within one source (the context, a stage, an archive), as BuildKit copies them, and not across sources', async () => {
    const { layer } = await built(
      ['FROM scratch AS stage', 'COPY tree /t/', 'FROM scratch', 'COPY tree /ctx/', 'COPY --from=stage /t /from/', 'ADD links.tar /tar/', 'COPY tree/a tree/sub/b /two/', ''].join('\n'),
      { 'tree/a': 'linked', 'tree/c': 'alone', 'tree/sub/keep': 'k' },
      (dir) => {
        linkSync(join(dir, 'tree/a'), join(dir, 'tree/sub/b'));
        execFileSync('tar', ['-cf', join(dir, 'links.tar'), '-C', join(dir, 'tree'), '.']); // GNU tar: sub/b as a hardlink entry to a
      },
    );
    const inode = (path: string) => {
      const stat = layer.view.stat(path)!;
      return { nlink: stat.nlink, identity: stat.identity };
    };
    for (const dir of ['ctx', 'from', 'tar']) {
      const [a, b] = [inode(`${dir}/a`), inode(`${dir}/sub/b`)];
      expect(a.nlink, dir).toBe(2);
      expect(b, dir).toEqual(a);
      expect(await layer.readFile(`/${dir}/sub/b`, 'utf8')).toBe('linked');
      expect(inode(`${dir}/c`).nlink).toBe(1);
    }
    // Two sources are two copies, as BuildKit's copier runs once for each.
    expect([inode('two/a').nlink, inode('two/b').nlink]).toEqual([1, 1]);
  }, 300_000);

  it('takes --from=NAME, a name given twice, from the last stage of it, as BuildKit does', async () => {
    const { layer } = await built(['FROM scratch AS a', 'COPY one /one', 'FROM a AS a', 'COPY two /two', 'FROM scratch', 'COPY --from=a / /out/', ''].join('\n'), { one: '1', two: '2' });
    expect(await listing(layer, '/out')).toEqual({ one: '1', two: '2' });
  }, 300_000);

  it('tells a context whose names share a file from one with copies: each builds its own COPY layer, not the cached one', async () => {
    const dockerfile = 'FROM scratch\nCOPY tree /t/\n';
    const files: ContextFiles = { 'tree/a': 'same', 'tree/b': 'same', 'tree/c': 'same' };
    const linkAB = (dir: string) => {
      rmSync(join(dir, 'tree/b'));
      linkSync(join(dir, 'tree/a'), join(dir, 'tree/b'));
    };
    const linkAC = (dir: string) => {
      rmSync(join(dir, 'tree/c'));
      linkSync(join(dir, 'tree/a'), join(dir, 'tree/c'));
    };
    const nlinks = (layer: WritableLayer) => ['a', 'b', 'c'].map((name) => layer.view.stat(`t/${name}`)!.nlink);
    const copies = await built(dockerfile, files);
    expect(nlinks(copies.layer)).toEqual([1, 1, 1]);
    const ab = await built(dockerfile, files, linkAB);
    expect(ab.ran).toEqual(['COPY tree /t/']);
    expect(nlinks(ab.layer)).toEqual([2, 2, 1]);
    // The same bytes and the same number of links, another pair of names.
    const ac = await built(dockerfile, files, linkAC);
    expect(ac.ran).toEqual(['COPY tree /t/']);
    expect(nlinks(ac.layer)).toEqual([2, 1, 2]);
    // And the same structure again is a hit.
    expect((await built(dockerfile, files, linkAB)).ran).toEqual([]);
  }, 300_000);

  it("expands each word of COPY on its own, as BuildKit does: an empty one is the context's root, one with spaces one path", async () => {
    const { layer } = await built(
      ['FROM scratch', 'ARG EMPTY', 'ARG TWO="a b"', 'COPY ${EMPTY} /ctx/', 'COPY ${TWO} /two/', 'COPY "a b" /quoted/', ''].join('\n'),
      { a: 'A', b: 'B', 'a b': 'AB' },
    );
    expect(Object.keys(await listing(layer, '/ctx')).sort()).toEqual(['Dockerfile', 'a', 'a b', 'b']);
    expect(await listing(layer, '/two')).toEqual({ 'a b': 'AB' });
    expect(await listing(layer, '/quoted')).toEqual({ 'a b': 'AB' });
  }, 300_000);

  it('--chmod takes symbolic modes (Dockerfile 1.14), applied to each file and directory copied', async () => {
    const context: ContextFiles = { 'bin/run.sh': { content: 'run', mode: 0o644 }, 'bin/data': { content: 'd', mode: 0o600 }, 'tree/exec': { content: 'e', mode: 0o744 }, 'tree/sub/plain': { content: 'p', mode: 0o640 }, 'tree/sub': { dir: true, mode: 0o700 } };
    const { layer } = await built('FROM scratch\nCOPY --chmod=+x bin/run.sh /usr/local/bin/\nCOPY --chmod=u=rwX,go=rX tree /opt/tree/\nCOPY --chmod=g=u,o= bin /g/\n', context);
    const mode = async (path: string) => ((await layer.lstat(path)).mode & 0o7777).toString(8);
    expect(await mode('/usr/local/bin/run.sh')).toBe('755');
    expect([await mode('/opt/tree/exec'), await mode('/opt/tree/sub'), await mode('/opt/tree/sub/plain')]).toEqual(['755', '755', '644']);
    expect([await mode('/g/run.sh'), await mode('/g/data')]).toEqual(['660', '660']);
  }, 300_000);

  it("--chmod's octal mode is the mode of the directories COPY makes too, as BuildKit's testCopyChmod expects", async () => {
    // BuildKit's test (its Dockerfile less the RUN steps that stat what this reads directly, `${mode}` as a
    // literal), then what its copy does beside it: a symbolic mode leaves the made directories 0755, and so
    // does an archive's extraction (its unpack makes them), where a plain copy of it takes the mode.
    const { layer } = await built(
      [
        'FROM scratch',
        'COPY --chmod=0644 foo /',
        'COPY --chmod=777 bar /baz',
        'COPY --chmod=0 foo /foobis',
        'COPY --chmod=777 foo /parent/foo',
        'COPY --chmod=770 foo /parent/sub/foo',
        'COPY --chmod=755 foo /footer',
        'COPY --chmod=u+x foo /symbolic/made/foo',
        'COPY --chmod=700 dir /copied/tree/',
        'ADD --chmod=640 a.tar /unpacked/here/',
        '',
      ].join('\n'),
      { foo: { content: 'foo-contents', mode: 0o600 }, bar: { content: 'bar-contents', mode: 0o700 }, 'dir/sub/x': { content: 'x', mode: 0o644 } },
      (dir) => {
        writeContext(join(work, 'chmod-tar'), { 'inside/f': { content: 'f', mode: 0o644 } });
        execFileSync('tar', ['-cf', join(dir, 'a.tar'), '-C', join(work, 'chmod-tar'), 'inside']);
      },
    );
    const mode = async (path: string) => ((await layer.lstat(path)).mode & 0o7777).toString(8).padStart(4, '0');
    expect(await mode('/foo')).toBe('0644');
    expect(await mode('/baz')).toBe('0777');
    expect(await mode('/foobis')).toBe('0000');
    expect(await mode('/parent')).toBe('0777');
    expect(await mode('/parent/sub')).toBe('0770');
    expect(await mode('/footer')).toBe('0755');
    expect([await mode('/symbolic'), await mode('/symbolic/made'), await mode('/symbolic/made/foo')]).toEqual(['0755', '0755', '0700']);
    expect([await mode('/copied'), await mode('/copied/tree'), await mode('/copied/tree/sub'), await mode('/copied/tree/sub/x')]).toEqual(['0700', '0700', '0700', '0700']);
    expect([await mode('/unpacked'), await mode('/unpacked/here'), await mode('/unpacked/here/inside/f')]).toEqual(['0755', '0755', '0644']);
  }, 300_000);

  it('reads named contexts (--build-context): an image for FROM and --from, a directory with its .dockerignore, a stage replaced', async () => {
    const shared = writeContext(join(work, 'shared'), { 'lib/a.txt': { content: 'a', mode: 0o640, mtime: 1_500_000_000 }, 'lib/secret.key': 'no', '.dockerignore': '**/*.key\n' });
    // Another user's file: a directory's files are root's in the build, as BuildKit's client sends them.
    chownSync(join(shared, 'lib/a.txt'), 1234, 5678);
    const dir = writeContext(join(work, `context-${++n}`), {
      Dockerfile: [
        'FROM scratch AS replaced',
        'COPY never-there /x',
        'FROM base-alias AS from-image',
        'FROM scratch',
        'COPY --from=shared lib/ /lib-shared/',
        'COPY --from=replaced /etc/debian_version /replaced',
        'COPY --from=from-image /etc/os-release /os-release',
        '',
      ].join('\n'),
    });
    const contexts = { shared, replaced: `docker-image://${BASE}`, 'base-alias': `docker-image://${BASE}` };
    const { result } = await buildWith(images, { context: dir, contexts });
    const layer = await imageView(images, result.target.digest);
    const base = await imageView(images, BASE);
    expect(await listing(layer, '/lib-shared')).toEqual({ 'a.txt': 'a' });
    expect(await layer.lstat('/lib-shared/a.txt')).toMatchObject({ uid: 0, gid: 0, mode: 0o100640 });
    expect(String(await layer.readFile('/replaced', 'utf8'))).toBe(String(await base.readFile('/etc/debian_version', 'utf8')));
    expect(String(await layer.readFile('/os-release', 'utf8'))).toBe(String(await base.readFile('/etc/os-release', 'utf8')));
    // The directory's .dockerignore applies, and what is not there names the context.
    const missing = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nCOPY --from=shared lib/secret.key /k\n' });
    await expect(buildWith(images, { context: missing, contexts })).rejects.toThrow(/Dockerfile line 2: COPY "lib\/secret.key" is not in context "shared"/);
    // FROM a directory: the stage's root is its files (the .dockerignore applied), root's, times kept, as
    // BuildKit starts a stage from a local source; a RUN-less stage builds on the userspace driver too.
    const from = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM shared AS tree\nCOPY --from=shared /lib/a.txt /again.txt\n' });
    const fromTree = await buildWith(images, { context: from, contexts });
    const root = await imageView(images, fromTree.result.target.digest);
    expect(await listing(root, '/')).toEqual({ '.dockerignore': '**/*.key\n', 'again.txt': 'a', 'lib/': '', 'lib/a.txt': 'a' });
    expect(await root.lstat('/lib/a.txt')).toMatchObject({ uid: 0, gid: 0, mode: 0o100640, mtimeMs: 1_500_000_000_000 });
    expect(fromTree.result.config.rootfs.diff_ids).toHaveLength(2);
    await expect(buildWith(images, { context: from, contexts: { shared: join(work, 'nowhere') } })).rejects.toThrow(/the named context "shared" is neither docker-image:\/\/REF, oci-layout:\/\/PATH, a git repository, an http\(s\) URL nor a directory/);
  }, 300_000);

  it('reads an image of an OCI layout as a named context (oci-layout://PATH:TAG or @DIGEST), as buildx does', async () => {
    // umoci's layout of the bench image, tagged `base` and `apt`: the tag and a digest (of `apt`'s manifest,
    // by index.json) pick one, which is imported without a name.
    const { layout } = aptImage();
    const apt = (JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] }).manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'apt')!.digest;
    const dir = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM tagged\nCOPY --from=pinned /usr/bin/python3 /python3\n' });
    const names = images.list().map((i) => i.name);
    const contexts = { tagged: `oci-layout://${layout}:base`, pinned: `oci-layout://${layout}@${apt}` };
    const { result } = await buildWith(images, { context: dir, contexts });
    const built = await imageView(images, result.target.digest);
    const base = await imageView(images, BASE);
    expect(String(await built.readFile('/etc/debian_version', 'utf8'))).toBe(String(await base.readFile('/etc/debian_version', 'utf8')));
    expect((await built.lstat('/python3')).size).toBeGreaterThan(0); // the apt change's layer, not minbase's
    await expect(base.lstat('/usr/bin/python3')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(result.config.rootfs.diff_ids.slice(0, 1)).toEqual((await images.platformImage(BASE)).config.rootfs.diff_ids);
    expect(images.image(apt).target.digest).toBe(apt); // in the store by its digest
    expect(images.list().map((i) => i.name).filter((name) => name !== undefined && !names.includes(name))).toEqual([result.names[0]].filter(Boolean)); // no name added for the layout's images
    const missing = { ...contexts, tagged: `oci-layout://${layout}:nosuchtag` };
    await expect(buildWith(images, { context: dir, contexts: missing })).rejects.toThrow(/Dockerfile line 1: the named context "tagged": the layout has no image tagged "nosuchtag"/);
  }, 300_000);

  it('pulls every image it names once with pullAlways (docker build --pull), and only missing ones without', async () => {
    const dir = writeContext(join(work, `context-${++n}`), { Dockerfile: `FROM ${BASE}\nCOPY --from=${BASE} /etc/hostname /h\nFROM ${BASE}\n` });
    const pulled: string[] = [];
    const pull = async (reference: string) => void pulled.push(reference);
    await buildWith(images, { context: dir, pull });
    expect(pulled).toEqual([]); // the root has it
    await buildWith(images, { context: dir, pull, pullAlways: true });
    expect(pulled).toEqual([BASE]);
  }, 300_000);

  it('ADD --unpack: a local archive kept whole with false, a downloaded one extracted with true', async () => {
    const source = writeContext(join(work, 'tar-source'), { 'pkg/bin/tool': 'tool', 'pkg/README': 'readme' });
    const archive = join(work, 'pkg.tar.gz');
    execFileSync('tar', ['-czf', archive, '-C', source, 'pkg']);
    const bytes = readFileSync(archive);
    const server = await serveFiles({ '/pkg.tar.gz': { body: bytes } }, join(work, 'served.json'));
    try {
      const { layer } = await built(
        [
          'FROM scratch',
          'ADD pkg.tar.gz /local/',
          'ADD --chmod=600 pkg.tar.gz /chmodded/',
          'ADD --unpack=false pkg.tar.gz /kept/',
          `ADD ${server.origin}/pkg.tar.gz /fetched/`,
          `ADD --unpack ${server.origin}/pkg.tar.gz /unpacked/`,
          '',
        ].join('\n'),
        {},
        (dir) => copyFileSync(archive, join(dir, 'pkg.tar.gz')),
      );
      expect(await listing(layer, '/local')).toEqual({ 'pkg/': '', 'pkg/README': 'readme', 'pkg/bin/': '', 'pkg/bin/tool': 'tool' });
      // --chmod is for what ADD copies, not what it unpacks: the archive's modes stay, as BuildKit's unpack keeps them.
      expect([(await layer.lstat('/chmodded/pkg/README')).mode & 0o777, (await layer.lstat('/chmodded/pkg/bin')).mode & 0o777]).toEqual([0o644, 0o755]);
      expect(Buffer.compare(Buffer.from(await layer.readFile('/kept/pkg.tar.gz')), bytes)).toBe(0);
      expect(Buffer.compare(Buffer.from(await layer.readFile('/fetched/pkg.tar.gz')), bytes)).toBe(0);
      expect(await listing(layer, '/unpacked')).toEqual({ 'pkg/': '', 'pkg/README': 'readme', 'pkg/bin/': '', 'pkg/bin/tool': 'tool' });
    } finally {
      server.close();
    }
  }, 300_000);
});
