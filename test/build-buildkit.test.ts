/**
 * Builds against what BuildKit's own integration tests expect (frontend/dockerfile/dockerfile_copy_test.go,
 * dockerfile_add_test.go, dockerfile_args_test.go, dockerfile_onbuild_test.go, dockerfile_core_test.go,
 * dockerfile_mount_test.go, dockerfile_dockerignore_test.go, dockerfile_source_date_epoch_test.go,
 * dockerfile_history_test.go, dockerfile_export_test.go, dockerfile_image_test.go, dockerfile_namedcontext_test.go,
 * dockerfile_cache_test.go):
 * the same contexts and steps, restated here for the Debian base (busybox's
 * `adduser -D` is `useradd -U`, its `nobody` group Debian's `nogroup`, `==` in `[` is `=`, `echo -n` is
 * `printf %s`), and images those tests push to a registry tagged in the root instead. Where a test checks the
 * image from inside, a RUN step here checks the same and fails the build otherwise; where it checks the
 * exported tree, this reads the image. Among them: an empty destination is the workdir, with `--link` too; a
 * socket in the context arrives as an empty file; symlinks are followed to their files; owners of what
 * already exists stay; an archive that only implies a directory where the image has a symlink extracts
 * through the symlink; `TARGETSTAGE` names the target; a proxy build arg of either case gives RUN both, out
 * of the step's key; ONBUILD triggers build the stages they name; a `dockerfile` stands for a missing
 * `Dockerfile`; a mount's fields take the stage's ENV; a malformed `.dockerignore` is refused; platforms are
 * normalised (`linux/arm` is arm/v7); a scratch image's workdir is `/`; an exported archive or layout carries
 * the names `-o name=` gives; a named context of `docker-image://scratch` is the empty image.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Images } from '@strata/images';
import type { WritableLayer } from '@strata/core';
import { BASE, buildWith, type ContextFiles, imageView, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';
import { rawTar, type RawEntry } from './helpers/raw-tar.js';

/** A shell function for RUN steps: fails the step unless path $1 has owner $2 (uid:gid), naming what it has. */
const OWNER = 'owner() { a=$(stat -c %u:%g "$1"); [ "$a" = "$2" ] || { echo "$1 is $a, not $2"; exit 1; }; }';
const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap'))("builds as BuildKit's tests expect them", () => {
  let work: string;
  let images: Images;
  let n = 0;

  beforeAll(async () => {
    work = scratch('strata-build-buildkit-');
    images = await rootWithBase(work);
  }, 30 * 60_000);

  afterAll(async () => {
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** Builds `dockerfile` in a context of `files` (made ready by `prepare`), and opens the image's tree. */
  async function built(dockerfile: string, files: ContextFiles = {}, options: { buildArgs?: Record<string, string>; target?: string; prepare?: (dir: string) => void; context?: string } = {}): Promise<WritableLayer> {
    const dir = options.context ?? writeContext(join(work, `context-${++n}`), { ...files, Dockerfile: dockerfile });
    options.prepare?.(dir);
    const { result } = await buildWith(images, { context: dir, ...(options.buildArgs ? { buildArgs: options.buildArgs } : {}), ...(options.target ? { target: options.target } : {}) });
    return imageView(images, result.target.digest);
  }

  const read = async (layer: WritableLayer, path: string) => String(await layer.readFile(path, 'utf8'));

  it('takes an empty destination for the workdir, with --link too, and keeps a trailing slash a directory (testEmptyDestDir, testCopyLink*DestDir, testPreserveDestDirSlash)', async () => {
    const files = { testfile: 'contents0' };
    await built(`FROM ${BASE}\nENV empty=""\nCOPY testfile $empty\nRUN [ "$(cat testfile)" = "contents0" ]\n`, files);
    await built(`FROM ${BASE}\nCOPY testfile /sample/\nRUN [ "$(cat /sample/testfile)" = "contents0" ]\n`, files);
    for (const dest of ['.', '$empty']) {
      const layer = await built(`FROM ${BASE}\nWORKDIR /var/www\nENV empty=""\nCOPY --link testfile ${dest}\nRUN [ "$(cat testfile)" = "contents0" ]\n`, files);
      expect(await read(layer, '/var/www/testfile')).toBe('contents0');
    }
  }, 120_000);

  it("keeps the owners of what exists, gives new files their source's or --chown's (testCopyChownExistingDir)", async () => {
    const dockerfile = [
      `FROM ${BASE} AS source`,
      'RUN touch /file && chown 100:200 /file && mkdir -p /dir/subdir && touch /dir/subdir/nestedfile && chown 100:200 /dir && chown 101:201 /dir/subdir && chown 102:202 /dir/subdir/nestedfile',
      `FROM ${BASE} AS test_base`,
      'RUN mkdir -p /existingdir/existingsubdir && touch /existingdir/existingfile && chown 500:600 /existingdir && chown 501:601 /existingdir/existingsubdir /existingdir/existingfile',
      'FROM test_base AS copy_from',
      'COPY --from=source /file .',
      'COPY --from=source /dir /dir',
      'COPY --from=source /dir/. /existingdir',
      `RUN ${OWNER}; owner /file 100:200 && owner /dir 0:0 && owner /dir/subdir 101:201 && owner /dir/subdir/nestedfile 102:202 && owner /existingdir 500:600 && owner /existingdir/existingsubdir 501:601 && owner /existingdir/existingfile 501:601 && owner /existingdir/subdir 101:201 && owner /existingdir/subdir/nestedfile 102:202`,
      'FROM test_base AS copy_from_chowned',
      'COPY --from=source --chown=300:400 /file .',
      'COPY --from=source --chown=300:400 /dir /dir',
      'COPY --from=source --chown=300:400 /dir/. /existingdir',
      `RUN ${OWNER}; for p in /file /dir /dir/subdir /dir/subdir/nestedfile /existingdir/subdir /existingdir/subdir/nestedfile; do owner $p 300:400; done && owner /existingdir 500:600 && owner /existingdir/existingsubdir 501:601 && owner /existingdir/existingfile 501:601`,
      '',
    ].join('\n');
    await built(dockerfile);
    await built(dockerfile, {}, { target: 'copy_from' });
  }, 120_000);

  it('chowns by names, build args and variables, a directory made for the copy included (testCopyChownCreateDest, testCopyChown)', async () => {
    await built(
      `FROM ${BASE}\nARG group\nENV owner user01\nRUN useradd -U user && useradd -U user01\nCOPY --chown=user:user . /dest\nCOPY --chown=\${owner}:\${group} . /dest01\nRUN [ "$(stat -c "%U %G" /dest)" = "user user" ] && [ "$(stat -c "%U %G" /dest01)" = "user01 user" ]\n`,
      {},
      { buildArgs: { group: 'user' } },
    );
    const layer = await built(
      `FROM ${BASE}\nENV owner 1000\nCOPY --chown=daemon foo /\nCOPY --chown=1000:nogroup bar /baz\nARG group\nCOPY --chown=\${owner}:\${group} foo /foobis\nRUN stat -c "%U %G" /foo > /fooowner && stat -c "%u %G" /baz/sub > /subowner && stat -c "%u %G" /foobis > /foobisowner\n`,
      { foo: 'foo-contents', 'bar/sub': '' },
      { buildArgs: { group: 'nogroup' } },
    );
    expect([await read(layer, '/fooowner'), await read(layer, '/subowner'), await read(layer, '/foobisowner')]).toEqual(['daemon daemon\n', '1000 nogroup\n', '1000 nogroup\n']);
  }, 120_000);

  it('follows symlinks in the context and in a stage to the files they name (testCopyThroughSymlink*, testCopyFollowAllSymlinks, testCopySymlinks)', async () => {
    let layer = await built('FROM scratch\nCOPY link/foo .\n', { link: { symlink: 'sub' }, 'sub/foo': 'contents' });
    expect(await read(layer, '/foo')).toBe('contents');
    layer = await built(`FROM ${BASE} AS build\nRUN mkdir -p /out/sub && ln -s /out/sub /sub && ln -s out/sub /sub2 && printf data > /sub/foo\nFROM scratch\nCOPY --from=build /sub/foo .\nCOPY --from=build /sub2/foo bar\n`);
    expect([await read(layer, '/foo'), await read(layer, '/bar')]).toEqual(['data', 'data']);
    // A directory's symlink is copied as one; named as a source, it is followed.
    layer = await built('FROM scratch\nCOPY foo /\nCOPY foo/sub bar\n', { bar: 'bar-contents', 'foo/sub': { symlink: '../bar' } });
    expect(await layer.readlink('/sub')).toBe('../bar');
    expect(await read(layer, '/bar')).toBe('bar-contents');
    layer = await built('FROM scratch\nCOPY foo /\nCOPY sub/l* alllinks/\n', {
      bar: 'bar-contents',
      foo: { symlink: 'bar' },
      'sub/lfile': 'lfile-contents',
      'sub/l0': { symlink: 'subfile' },
      'sub/subfile': 'subfile-contents',
      'sub/l1': { symlink: 'second' },
      'sub/second': { symlink: 'baz' },
      'sub/baz': 'baz-contents',
    });
    expect([await read(layer, '/foo'), await read(layer, '/alllinks/l0'), await read(layer, '/alllinks/lfile'), await read(layer, '/alllinks/l1')]).toEqual(['bar-contents', 'subfile-contents', 'lfile-contents', 'baz-contents']);
    expect((await layer.lstat('/alllinks/l1')).isFile()).toBe(true);
  }, 120_000);

  it('copies a socket of the context as an empty file with its mode (testCopySocket)', async () => {
    const layer = await built('FROM scratch\nCOPY . /\n', {}, {
      prepare: (dir) => execFileSync('python3', ['-c', 'import os, socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o600)', join(dir, 'socket.sock')]),
    });
    const st = await layer.lstat('/socket.sock');
    expect([st.isFile(), st.size, st.mode & 0o7777]).toEqual([true, 0, 0o600]);
  }, 120_000);

  it('overwrites what a copy made before, and expands a source word (testCopyOverrideFiles, testCopyVarSubstitution)', async () => {
    let layer = await built('FROM scratch\nCOPY sub sub\nCOPY sub sub\nCOPY files/foo.go dest/foo.go\nCOPY files/foo.go dest/foo.go\nCOPY files dest\n', { 'sub/dir1/dir2/foo': 'foo-contents', 'files/foo.go': 'foo.go-contents' });
    expect([await read(layer, '/sub/dir1/dir2/foo'), await read(layer, '/dest/foo.go')]).toEqual(['foo-contents', 'foo.go-contents']);
    layer = await built('FROM scratch\nENV FOO bar\nCOPY $FOO baz\n', { bar: 'bar-contents' });
    expect(await read(layer, '/baz')).toBe('bar-contents');
  }, 120_000);

  it('matches wildcards and copies a directory\'s contents however its path ends (testCopyWildcards)', async () => {
    const layer = await built(
      'FROM scratch\nCOPY *.go /gofiles/\nCOPY f*.go foo2.go\nCOPY sub/* /subdest/\nCOPY sub/*/dir2/foo /subdest2/\nCOPY sub/*/dir2/foo /subdest3/bar\nCOPY . all/\nCOPY sub/dir1/ subdest4\nCOPY sub/dir1/. subdest5\nCOPY sub/dir1 subdest6\n',
      { 'foo.go': 'foo-contents', 'bar.go': 'bar-contents', 'sub/dir1/dir2/foo': 'foo-contents' },
    );
    const expected: Record<string, string> = {
      'gofiles/foo.go': 'foo-contents',
      'gofiles/bar.go': 'bar-contents',
      'foo2.go': 'foo-contents',
      'subdest/dir2/foo': 'foo-contents',
      'subdest2/foo': 'foo-contents',
      'subdest3/bar': 'foo-contents',
      'all/foo.go': 'foo-contents',
      'subdest4/dir2/foo': 'foo-contents',
      'subdest5/dir2/foo': 'foo-contents',
      'subdest6/dir2/foo': 'foo-contents',
    };
    for (const [path, content] of Object.entries(expected)) expect(await read(layer, `/${path}`), path).toBe(content);
  }, 120_000);

  it('resolves destinations against relative and parent workdirs, and keeps names as written (testCopyRelative, testCopyUnicodePath)', async () => {
    const has = (path: string) => `RUN [ "$(cat ${path})" = hello ]`;
    await built(
      [
        `FROM ${BASE}`,
        'WORKDIR /test1',
        'WORKDIR test2',
        'RUN [ "$PWD" = /test1/test2 ]',
        'COPY foo ./',
        has('/test1/test2/foo'),
        'ADD foo ./bar/baz',
        has('/test1/test2/bar/baz'),
        'COPY foo ./bar/baz2',
        has('/test1/test2/bar/baz2'),
        'WORKDIR ..',
        'COPY foo ./',
        has('/test1/foo'),
        'COPY foo /test3/',
        has('/test3/foo'),
        'WORKDIR /test4',
        'COPY . .',
        has('/test4/foo'),
        'WORKDIR /test5/test6',
        'COPY foo ../',
        has('/test5/foo'),
        '',
      ].join('\n'),
      { foo: 'hello' },
    );
    const layer = await built('FROM scratch\nCOPY test-äöü.txt /\nCOPY test-%C3%A4%C3%B6%C3%BC.txt /\nCOPY test+aou.txt /\n', { 'test-äöü.txt': 'foo', 'test-%C3%A4%C3%B6%C3%BC.txt': 'bar', 'test+aou.txt': 'baz' });
    expect([await read(layer, '/test-äöü.txt'), await read(layer, '/test-%C3%A4%C3%B6%C3%BC.txt'), await read(layer, '/test+aou.txt')]).toEqual(['foo', 'bar', 'baz']);
  }, 120_000);

  it('extracts an ADDed archive as BuildKit does: through the image\'s symlinks where it only implies a parent, its parents made, --chown over its owners, several by a wildcard (testDockerfileAddArchive*, testDockerfileAddChownArchive)', async () => {
    const dir = (name: string): RawEntry => ({ name, type: '5', mode: 0o755 });
    const file = (name: string, data: string): RawEntry => ({ name, type: '0', mode: 0o644, data });
    const archives = (entries: Record<string, RawEntry[]>) => (context: string) => {
      for (const [name, list] of Object.entries(entries)) writeFileSync(join(context, name), name.endsWith('.gz') ? gzipSync(rawTar(list)) : rawTar(list));
    };
    // The image has var/run -> /run (absolute); an archive naming var/run/act/… but not var/run lands in /run.
    const head = 'ref: refs/heads/main\n';
    let layer = await built('FROM scratch\nADD rootfs.tar /\nADD payload.tar /\n', {}, {
      prepare: archives({
        'rootfs.tar': [dir('run/'), dir('var/'), { name: 'var/run', type: '2', linkname: '/run', mode: 0o777 }],
        'payload.tar': [
          ...['var/run/act/', 'var/run/act/actions/', 'var/run/act/actions/broad/', 'var/run/act/actions/broad/.git/'].map(dir),
          file('var/run/act/actions/broad/.git/HEAD', head),
          { name: 'var/run/act/actions/broad/.git/HEAD.link', type: '1', linkname: 'var/run/act/actions/broad/.git/HEAD', mode: 0o644 },
        ],
      }),
    });
    expect(await layer.readlink('/var/run')).toBe('/run');
    expect([await read(layer, '/run/act/actions/broad/.git/HEAD'), await read(layer, '/run/act/actions/broad/.git/HEAD.link')]).toEqual([head, head]);
    // One file by two names (the layer keeps the hardlink).
    expect([(await layer.stat('/run/act/actions/broad/.git/HEAD')).nlink, (await layer.stat('/run/act/actions/broad/.git/HEAD.link')).nlink]).toEqual([2, 2]);
    // An archive that names the symlink's path as a directory replaces it, as an extraction does.
    layer = await built('FROM scratch\nADD rootfs.tar /\nADD payload.tar /\n', {}, {
      prepare: archives({ 'rootfs.tar': [dir('run/'), dir('var/'), { name: 'var/run', type: '2', linkname: '/run', mode: 0o777 }], 'payload.tar': [dir('var/run/'), file('var/run/x', 'x')] }),
    });
    expect((await layer.lstat('/var/run')).isDirectory()).toBe(true);
    expect(await read(layer, '/var/run/x')).toBe('x');
    layer = await built('FROM scratch\nADD t.tar.gz /\n', {}, { prepare: archives({ 't.tar.gz': [file('etc/dnf/dnf.conf', 'content0')] }) });
    expect(await read(layer, '/etc/dnf/dnf.conf')).toBe('content0');
    layer = await built('FROM scratch\nADD --chown=100:200 t.tar /out/\n', {}, { prepare: archives({ 't.tar': [file('foo', 'content0')] }) });
    for (const path of ['/out', '/out/foo']) expect([(await layer.lstat(path)).uid, (await layer.lstat(path)).gid], path).toEqual([100, 200]);
    layer = await built('FROM scratch\nADD *.tar /dest\n', {}, { prepare: archives({ 't.tar': [file('foo', 'content0')], 'b.tar': [file('bar', 'content1')] }) });
    expect([await read(layer, '/dest/foo'), await read(layer, '/dest/bar')]).toEqual(['content0', 'content1']);
  }, 120_000);

  it("gives --chmod's symbolic modes what GNU chmod gives the same file (testChmodNonOctal)", async () => {
    const cases: [source: 'file' | 'dir', name: string, mode: string][] = [
      ['file', 'f1', 'go-w'],
      ['file', 'f2', 'u=rw,g=r,o=r'],
      ['file', 'f3', 'a+X'],
      ['dir', 'd1', 'go-w'],
      ['dir', 'd2', 'u+rw,g+r,o-x,o+w'],
      ['dir', 'd3', 'a+X'],
    ];
    const expected = cases.map(([source, name, mode]) =>
      source === 'dir'
        ? `RUN mkdir -p /input/dirs/${name} && cp -a /input/dir /input/dirs/${name}/${name} && cp -a /input/dirs/${name}/. /expected/ && chmod ${mode} /expected/${name}`
        : `RUN cp -a /input/file /expected/${name} && chmod ${mode} /expected/${name}`,
    );
    const copies = cases.map(([source, name, mode]) => (source === 'dir' ? `COPY --from=base --chmod=${mode} /input/dirs/${name} /` : `COPY --from=base --chmod=${mode} /input/file /${name}`));
    const checks = cases.map(([, name]) => `RUN [ "$(stat -c %A /actual/${name})" = "$(stat -c %A /expected/${name})" ] || { stat -c '%n %A' /actual/${name} /expected/${name}; exit 1; }`);
    await built(
      [
        `FROM ${BASE} AS base`,
        'RUN mkdir /input /expected && touch /input/file && chmod 666 /input/file && mkdir /input/dir && chmod 124 /input/dir',
        ...expected,
        'FROM scratch AS result',
        ...copies,
        'FROM base',
        'COPY --from=result / /actual/',
        ...checks,
        '',
      ].join('\n'),
    );
  }, 120_000);

  it('names the target stage TARGETSTAGE: the one asked for, else the last one\'s name, else "default" (testTargetStageNameArg)', async () => {
    const base = `FROM ${BASE} AS base\nWORKDIR /out\nRUN printf %s "value:$TARGETSTAGE" > /out/first\nARG TARGETSTAGE\nRUN printf %s "value:$TARGETSTAGE" > /out/second\nFROM scratch AS foo\nCOPY --from=base /out/ /\nFROM scratch\nCOPY --from=base /out/ /\n`;
    for (const [dockerfile, target, expected] of [
      [base, 'foo', 'value:foo'],
      [base, undefined, 'value:default'],
      [`${base}FROM scratch AS final\nCOPY --from=base /out/ /\n`, undefined, 'value:final'],
    ] as const) {
      const layer = await built(dockerfile, {}, target ? { target } : {});
      expect([await read(layer, '/first'), await read(layer, '/second')]).toEqual(['value:', expected]);
    }
  }, 120_000);

  it("gives RUN a proxy build arg of either case in both cases, empty ones not, and keeps them out of the step's key (testBuiltinArgs)", async () => {
    const context = writeContext(join(work, `context-${++n}`), {
      Dockerfile: `FROM ${BASE} AS build\nARG FOO\nARG BAR\nARG BAZ=bazcontent\nRUN printf %s $HTTP_PROXY::$NO_PROXY::$FOO::$BAR::$BAZ > /out\n`,
    });
    const out = async (buildArgs: Record<string, string>) => read(await built('', {}, { context, buildArgs }), '/out');
    expect(await out({ FOO: 'foocontents', http_proxy: 'hpvalue', NO_PROXY: 'npvalue' })).toBe('hpvalue::npvalue::foocontents::::bazcontent');
    // Another proxy is the same step: the cache answers, with what the first run wrote.
    expect(await out({ FOO: 'foocontents', http_proxy: 'hpvalue2' })).toBe('hpvalue::npvalue::foocontents::::bazcontent');
    expect(await out({ FOO: 'foocontents2', http_proxy: 'hpvalue2' })).toBe('hpvalue2::::foocontents2::::bazcontent');
  }, 120_000);

  it('expands global and stage ARGs as BuildKit does: several on a line, quoted, in FROM, with defaults and required ones (testGlobalArgErrors, testArgDefaultExpansion, testMultiArgs, testQuotedMetaArgs, testDefaultEnvWithArgs, testEmptyStringArgInEnv, testEnvEmptyFormatting)', async () => {
    const builds = (dockerfile: string, buildArgs: Record<string, string> = {}) => buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: dockerfile }), buildArgs });
    await expect(builds(`ARG FOO=\${FOO:?"custom error"}\nFROM ${BASE}\n`)).rejects.toThrow(/FOO: custom error/);
    await builds(`ARG FOO=\${FOO:?"custom error"}\nFROM ${BASE}\n`, { FOO: 'bar' });
    await expect(builds('FROM scratch\nARG FOO\nARG BAR=${FOO:?"foo missing"}\n')).rejects.toThrow(/FOO: foo missing/);
    for (const buildArgs of [{ FOO: '123' }, { BAR: '123' }]) await builds('FROM scratch\nARG FOO\nARG BAR=${FOO:?"foo missing"}\n', buildArgs);
    // The base image's name is made of global ARGs (busy$a2 there, ba$a2 here).
    let layer = await built('ARG a1="foo bar" a2=se\nARG a3="$a2-foo"\nFROM example.com/base:ba$a2 AS build\nARG a3 a4="123 456" a1\nRUN printf %s "$a1:$a3:$a4" > /out\n');
    expect(await read(layer, '/out')).toBe('foo bar:se-foo:123 456');
    layer = await built('ARG a1="se"\nARG a2="$a1-foo"\nFROM example.com/base:ba$a1 AS build\nARG a2\nARG a3="bar-$a2"\nRUN printf %s $a3 > /out\n');
    expect(await read(layer, '/out')).toBe('bar-se-foo');
    const script = { 'myscript.sh': { content: '#!/usr/bin/env sh\nprintf %s "$my_arg $*" > /out\n', mode: 0o700 } };
    const withDefaults = 'ARG image=idlebase\nFROM example.com/base:${image#idle} AS build\nARG my_arg\nENV my_arg "my_arg=${my_arg:-def_val}"\nENV my_trimmed_arg "${my_arg%%e*}"\nCOPY myscript.sh myscript.sh\nRUN ./myscript.sh $my_arg $my_trimmed_arg\n';
    for (const [buildArgs, expected] of [
      [{}, 'my_arg=def_val my_arg=def_val my_arg=d'],
      [{ my_arg: '' }, 'my_arg=def_val my_arg=def_val my_arg=d'],
      [{ my_arg: 'override' }, 'my_arg=override my_arg=override my_arg=ov'],
    ] as const) {
      expect(await read(await built(withDefaults, script, { buildArgs }), '/out')).toBe(expected);
    }
    const env = await read(await built(`FROM ${BASE}\nARG FOO\nARG BAR=\nRUN env > /env.txt\n`), '/env.txt');
    expect(env.split('\n')).toContain('BAR=');
    expect(env).not.toMatch(/^FOO=/m);
    await built(`FROM ${BASE}\nENV myenv foo%sbar\nRUN [ "$myenv" = 'foo%sbar' ]\n`);
  }, 240_000);

  it("runs ONBUILD triggers as BuildKit does: once, in a stage built on the stage that set them, and with the stages they name built (dockerfile_onbuild_test.go)", async () => {
    const tagged = async (dockerfile: string, tag: string) => buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: dockerfile }), tags: [tag] });
    // testOnBuildCleared: a child of the image runs the trigger; a grandchild does not again.
    await tagged(`FROM ${BASE}\nONBUILD RUN mkdir -p /out && printf 11 >> /out/foo\n`, 'example.com/onbuild:base');
    await tagged('FROM example.com/onbuild:base\n', 'example.com/onbuild:child');
    let layer = await built('FROM example.com/onbuild:child AS base\nFROM example.com/onbuild:child\nCOPY --from=base /out /\n');
    expect(await read(layer, '/foo')).toBe('11');
    // testOnBuildWithChildStage: a stage on a stage that ran the image's trigger does not run it again.
    await tagged(`FROM ${BASE}\nONBUILD RUN mkdir -p /out && touch /out/didrun\n`, 'example.com/onbuild:stage');
    layer = await built('FROM example.com/onbuild:stage AS base\nRUN [ -f /out/didrun ] && touch /step1\nRUN rm /out/didrun\nRUN [ ! -f /out/didrun ] && touch /step2\nFROM base AS child\nRUN [ ! -f /out/didrun ] && touch /step3\n');
    for (const step of ['/step1', '/step2', '/step3']) expect((await layer.lstat(step)).isFile(), step).toBe(true);
    // testOnBuildInheritedStageRun and …WithFrom: a stage's ONBUILD runs in the stage built on it, a stage it names built first.
    layer = await built(`FROM ${BASE} AS base\nONBUILD RUN mkdir -p /out && printf 11 >> /out/foo\nFROM base AS mid\nRUN cp /out/foo /out/bar\n`);
    expect(await read(layer, '/out/bar')).toBe('11');
    layer = await built(`FROM ${BASE} AS src\nRUN mkdir -p /in && printf 12 > /in/file\nFROM ${BASE} AS base\nONBUILD COPY --from=src /in/file /out/foo\nFROM base AS mid\nRUN cp /out/foo /out/bar\n`);
    expect(await read(layer, '/out/bar')).toBe('12');
    // testOnBuildNamedContext and testOnBuildNewDeps: an image's trigger names stages of the Dockerfile built on it, which nothing else needs.
    await tagged(`FROM ${BASE}\nONBUILD COPY --from=otherstage /testfile /out/foo\n`, 'example.com/onbuild:named');
    layer = await built(`FROM ${BASE} AS otherstage\nRUN printf hello > /testfile\nFROM example.com/onbuild:named AS inputstage\nFROM scratch\nCOPY --from=inputstage /out/foo /bar\n`);
    expect(await read(layer, '/bar')).toBe('hello');
    await tagged(`FROM ${BASE}\nONBUILD RUN --mount=type=bind,target=/in,from=inputstage mkdir /out && cat /in/foo > /out/bar\n`, 'example.com/onbuild:deps');
    layer = await built(`FROM ${BASE} AS inputstage\nRUN printf foo > /foo\nFROM example.com/onbuild:deps AS base\nRUN printf bar3 > /out/bar3\n`);
    expect([await read(layer, '/out/bar'), await read(layer, '/out/bar3')]).toEqual(['foo', 'bar3']);
    // testOnBuildWithCacheMount: the trigger's cache mount is the child's.
    await tagged(`FROM ${BASE}\nONBUILD RUN --mount=type=cache,target=/cache printf 42 >> /cache/foo && printf 11 >> /bar\n`, 'example.com/onbuild:cache');
    await built('FROM example.com/onbuild:cache\nRUN --mount=type=cache,target=/cache [ "$(cat /cache/foo)" = "42" ] && [ "$(cat /bar)" = "11" ]\n');
  }, 240_000);

  it("reads the Dockerfile, follows symlinks and gives users and ports as BuildKit's core tests expect (dockerfile_core_test.go)", async () => {
    // testDockerfileLowercase (moby#10858), from a directory and from an archive, and testSymlinkedDockerfile.
    const lower = writeContext(join(work, `context-${++n}`), { dockerfile: 'FROM scratch\nENV foo bar\n' });
    expect((await buildWith(images, { context: lower })).result.config.config?.Env).toContain('foo=bar');
    execFileSync('tar', ['-cf', join(work, 'lower.tar'), '-C', lower, 'dockerfile']);
    expect((await buildWith(images, { context: join(work, 'lower.tar') })).result.config.config?.Env).toContain('foo=bar');
    const linked = writeContext(join(work, `context-${++n}`), { 'Dockerfile.web': 'FROM scratch\nENV foo web\n', Dockerfile: { symlink: 'Dockerfile.web' } });
    expect((await buildWith(images, { context: linked })).result.config.config?.Env).toContain('foo=web');
    // testSymlinkDestination: a COPY into a symlink an ADDed archive made goes where it points.
    const layer = await built('FROM scratch\nADD t.tar /\nCOPY foo /symlink/\n', { foo: 'content0' }, {
      prepare: (dir) => writeFileSync(join(dir, 't.tar'), rawTar([{ name: 'symlink', type: '2', linkname: '../tmp/symlink-target', mode: 0o755 }])),
    });
    expect(await read(layer, '/tmp/symlink-target/foo')).toBe('content0');
    // testContextChangeDirToFile: a context's directory become a file is copied as the file.
    const changing = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nCOPY foo /\n', 'foo/bar': 'contents' });
    await built('', {}, { context: changing });
    rmSync(join(changing, 'foo'), { recursive: true });
    writeFileSync(join(changing, 'foo'), 'contents2');
    expect(await read(await built('', {}, { context: changing }), '/foo')).toBe('contents2');
    // testExposeExpansion and testLabels (a --label beside the Dockerfile's).
    const ports = await buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nARG PORTS="3000 4000/udp"\nEXPOSE $PORTS\nEXPOSE 5000\n' }) });
    expect(Object.keys(ports.result.config.config?.ExposedPorts as object).sort()).toEqual(['3000/tcp', '4000/udp', '5000/tcp']);
    const labels = await buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nLABEL foo=bar\n' }), labels: { bar: 'baz' } });
    expect(labels.result.config.config?.Labels).toEqual({ foo: 'bar', bar: 'baz' });
    // testUserAdditionalGids (CVE-2023-25173): a user's groups are its own, never root's supplementary ones.
    await built(`FROM ${BASE}\nSHELL ["/bin/sh", "-euxc"]\nRUN [ "$(id)" = "uid=0(root) gid=0(root) groups=0(root)" ]\nUSER 1234\nRUN [ "$(id)" = "uid=1234 gid=0(root) groups=0(root)" ]\nUSER 1234:1234\nRUN [ "$(id)" = "uid=1234 gid=1234 groups=1234" ]\nUSER daemon\nRUN [ "$(id)" = "uid=1(daemon) gid=1(daemon) groups=1(daemon)" ]\n`);
    // testTargetMistype.
    const mistyped = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch AS build\nCOPY Dockerfile /out\nFROM scratch\nCOPY --from=build /out /\n' });
    await expect(buildWith(images, { context: mistyped, target: 'bulid' })).rejects.toThrow('target stage "bulid" is not in the Dockerfile (did you mean build?)');
  }, 240_000);

  it("mounts as BuildKit's mount tests expect: the context, tmpfs, caches by id with their owners and variables, a stage read-write, refusals with suggestions (dockerfile_mount_test.go)", async () => {
    await built(`FROM ${BASE}\nRUN --mount=target=/context [ "$(cat /context/testfile)" = "contents0" ]\n`, { testfile: 'contents0' });
    await built(`FROM ${BASE}\nRUN --mount=target=/mytmp,type=tmpfs touch /mytmp/foo\nRUN [ ! -f /mytmp/foo ]\n`);
    // testMountInvalid, with BuildKit's suggestions.
    for (const [line, message] of [
      ['RUN --mont=target=/mytmp,type=tmpfs /bin/true', /RUN --mont is not supported \(did you mean --mount\?\)/],
      ['RUN --mount=typ=tmpfs /bin/true', /takes no typ \(did you mean type\?\)/],
      ['RUN --mount=type=tmp /bin/true', /type="tmp" is not a mount type .*\(did you mean tmpfs\?\)/],
    ] as const) {
      await expect(buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: `FROM scratch\n${line}\n` }) })).rejects.toThrow(message);
    }
    // testMountRWCache: a read-write mount of a stage leaves nothing; a context change the stage does not copy keeps the step.
    const rw = writeContext(join(work, `context-${++n}`), {
      Dockerfile: `FROM ${BASE} AS build\nCOPY cachebust /\nRUN mkdir out && echo foo > out/foo\nFROM ${BASE} AS second\nRUN --mount=from=build,src=out,target=/out,rw touch /out/bar && head -c 100 /dev/urandom | sha256sum > /unique\n`,
      cachebust: '0',
    });
    const first = await read(await built('', {}, { context: rw }), '/unique');
    writeFileSync(join(rw, 'cachebust'), '1');
    expect(await read(await built('', {}, { context: rw }), '/unique')).toBe(first);
    // testCacheMountUser, testCacheMountDefaultID, testMountEnvVar, testMountArg, testMountEnvAcrossStages, testMountMetaArg.
    await built(`FROM ${BASE}\nRUN --mount=type=cache,target=/mycache,uid=1001,gid=1002,mode=0751 [ "$(stat -c "%u %g %f" /mycache)" = "1001 1002 41e9" ]\n`);
    await built(`FROM ${BASE}\nRUN --mount=type=cache,target=/mycache touch /mycache/foo\nRUN --mount=type=cache,target=/mycache2 [ ! -f /mycache2/foo ]\nRUN --mount=type=cache,target=/mycache [ -f /mycache/foo ]\n`);
    await built(`FROM ${BASE}\nENV SOME_PATH=/mycache\nRUN --mount=type=cache,target=/mycache touch /mycache/foo\nRUN --mount=type=cache,target=$SOME_PATH [ -f $SOME_PATH/foo ]\n`);
    await built(`FROM ${BASE}\nARG MNT_TYPE=cache\nRUN --mount=type=$MNT_TYPE,target=/mycache2 touch /mycache2/foo\nRUN --mount=type=cache,target=/mycache2 [ -f /mycache2/foo ]\n`);
    await built(`FROM ${BASE} AS stage1\nENV MNT_ID=mycache\nENV MNT_TYPE2=cache\nRUN --mount=type=cache,id=mycache,target=/abcabc touch /abcabc/foo\nRUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/cbacba [ -f /cbacba/foo ]\nFROM stage1\nRUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/whatever [ -f /whatever/foo ]\n`);
    await built(`ARG META_PATH=/tmp/meta\nFROM ${BASE}\nARG META_PATH\nRUN --mount=type=cache,id=mycache,target=/tmp/meta touch /tmp/meta/foo\nRUN --mount=type=cache,id=mycache,target=$META_PATH [ -f /tmp/meta/foo ]\n`);
    // testMountTmpfsSize.
    expect(await read(await built(`FROM ${BASE}\nRUN --mount=type=tmpfs,target=/dev/shm,size=128m mount | grep /dev/shm > /tmpfssize\n`), '/tmpfssize')).toContain('size=131072k');
    // testMountDuplicate (moby/buildkit#4123): two binds of the context, the changed file seen.
    const twice = writeContext(join(work, `context-${++n}`), {
      Dockerfile: `FROM ${BASE}\nRUN --mount=source=.,target=/tmp/test --mount=source=b.txt,target=/tmp/b.txt cat /tmp/test/a.txt /tmp/b.txt > /combined.txt\n`,
      'a.txt': 'foo\n',
      'b.txt': 'bar\n',
    });
    expect(await read(await built('', {}, { context: twice }), '/combined.txt')).toBe('foo\nbar\n');
    writeFileSync(join(twice, 'a.txt'), 'updated\n');
    expect(await read(await built('', {}, { context: twice }), '/combined.txt')).toBe('updated\nbar\n');
  }, 300_000);

  it("filters the context as BuildKit's dockerignore tests expect: exceptions, the Dockerfile and the ignore file left out, a malformed file refused (dockerfile_dockerignore_test.go)", async () => {
    const layer = await built('FROM scratch\nCOPY . .\n', { foo: 'foo-contents', bar: 'bar-contents', baz: 'baz-contents', bay: 'bay-contents', '.dockerignore': '\nba*\nDockerfile\n!bay\n.dockerignore\n' });
    expect((await layer.readdir('/')).sort()).toEqual(['bay', 'foo']);
    const invalid = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nCOPY . .\n', '.dockerignore': '!\n' });
    await expect(buildWith(images, { context: invalid })).rejects.toThrow('.dockerignore: illegal exclusion pattern: "!"');
  }, 120_000);

  it("takes SOURCE_DATE_EPOCH from a build arg or a global ARG's default, as BuildKit's source date epoch tests expect (dockerfile_source_date_epoch_test.go)", async () => {
    const created = async (dockerfile: string, buildArgs: Record<string, string> = {}) => {
      const { result } = await buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: dockerfile }), buildArgs });
      return [result.config.created, ...(result.config.history ?? []).map((h) => h.created)];
    };
    // testSourceDateEpochWithoutExporter: the image's and every step's time.
    expect(await created('FROM scratch\nENTRYPOINT foo bar\nCOPY Dockerfile .\n', { SOURCE_DATE_EPOCH: '1700000001' })).toEqual(Array(3).fill('2023-11-14T22:13:21Z'));
    // testSourceDateEpochDockerfileDefault and …Override.
    const withDefault = 'ARG SOURCE_DATE_EPOCH=1445412480\nFROM scratch\nCOPY Dockerfile .\n';
    expect(await created(withDefault)).toEqual(Array(2).fill('2015-10-21T07:28:00Z'));
    expect(await created(withDefault, { SOURCE_DATE_EPOCH: '1700000002' })).toEqual(Array(2).fill('2023-11-14T22:13:22Z'));
    // testSourceDateEpochDockerfileDefaultInvalid.
    await expect(created('ARG SOURCE_DATE_EPOCH=not-a-timestamp\nFROM scratch\nCOPY Dockerfile .\n')).rejects.toThrow('invalid SOURCE_DATE_EPOCH: not-a-timestamp');
  }, 120_000);

  it("records the history BuildKit's history tests expect: a stage's own steps, which make layers, and the ARGs a RUN saw in the order first declared (dockerfile_history_test.go)", async () => {
    let { result } = await buildWith(images, {
      context: writeContext(join(work, `context-${++n}`), {
        Dockerfile: `FROM ${BASE} AS base\nENV foo=bar\nCOPY foo /foo2\nFROM ${BASE}\nLABEL lbl=val\nCOPY --from=base foo2 foo3\nWORKDIR /workdir\nRUN echo bar > foo4\nRUN ls\nEXPOSE 2375 5000 1234/udp\n`,
        foo: 'contents0',
      }),
    });
    const own = (result.config.history ?? []).slice(-6).map((h) => [h.created_by, h.empty_layer === true]);
    expect(own).toEqual([
      [expect.stringContaining('lbl=val'), true],
      [expect.stringMatching(/^COPY .*foo2 .*foo3/), false],
      [expect.stringContaining('/workdir'), false],
      [expect.stringContaining('echo bar > foo4'), false],
      [expect.stringContaining('ls'), false],
      [expect.stringContaining('2375 5000 1234/udp'), true],
    ]);
    expect(result.config.rootfs.diff_ids).toHaveLength((result.config.history ?? []).filter((h) => !h.empty_layer).length);
    // testExportedHistoryFlattenArgs (moby/buildkit#5505): an ARG declared again keeps its place, with its last value.
    ({ result } = await buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: `FROM ${BASE}\nARG foo=bar\nARG bar=123\nARG foo=bar2\nRUN ls /etc/\n` }) }));
    const history = (result.config.history ?? []).map((h) => h.created_by);
    expect(history.slice(-4)).toEqual(['ARG foo=bar', 'ARG bar=123', 'ARG foo=bar2', 'RUN |2 foo=bar2 bar=123 /bin/sh -c ls /etc/']);
  }, 120_000);

  it("exports as BuildKit's export and image tests expect: platforms normalised and split, names given by -o name=, a scratch image's config (dockerfile_export_test.go, dockerfile_image_test.go)", async () => {
    const root = join(work, 'cli-root');
    const strata = (args: string[]) => {
      const r = spawnSync(process.execPath, [cli, '--root', root, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
      expect(r.status, r.stderr).toBe(0);
      return r;
    };
    const out = (name: string) => join(work, `out-${++n}-${name}`);
    const json = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
    const blob = (dir: string, digest: string) => join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
    const untar = (archive: string) => {
      const dir = `${archive}.d`;
      mkdirSync(dir);
      execFileSync('tar', ['-xf', archive, '-C', dir]);
      return dir;
    };

    // testExportMultiPlatform: linux/arm is arm/v7, each platform in a directory of its own.
    const arches = writeContext(join(work, `context-${++n}`), {
      Dockerfile: 'FROM scratch\nARG TARGETARCH\nARG TARGETPLATFORM\nLABEL target=$TARGETPLATFORM\nCOPY arch-$TARGETARCH whoami\n',
      'arch-arm': 'i am arm',
      'arch-amd64': 'i am amd64',
      'arch-s390x': 'i am s390x',
      'arch-ppc64le': 'i am ppc64le',
    });
    const split = out('split');
    strata(['build', '-q', '--platform', 'windows/amd64,linux/arm,linux/s390x', '-o', `type=local,dest=${split}`, arches]);
    expect(readdirSync(split).sort()).toEqual(['linux_arm_v7', 'linux_s390x', 'windows_amd64']);
    expect(readFileSync(join(split, 'windows_amd64', 'whoami'), 'utf8')).toBe('i am amd64');
    expect(readFileSync(join(split, 'linux_arm_v7', 'whoami'), 'utf8')).toBe('i am arm');
    expect(readFileSync(join(split, 'linux_s390x', 'whoami'), 'utf8')).toBe('i am s390x');
    const archive = untar((() => {
      const path = out('multi.tar');
      strata(['build', '-q', '--platform', 'windows/amd64,linux/arm/v6,linux/ppc64le', '-o', `type=oci,dest=${path}`, arches]);
      return path;
    })());
    const top = json(join(archive, 'index.json')).manifests as { digest: string }[];
    expect(top).toHaveLength(1);
    const list = json(blob(archive, top[0]!.digest)).manifests as { digest: string; platform: Record<string, string> }[];
    expect(list.map((m) => [m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean).join('/'))).toEqual(['windows/amd64', 'linux/arm/v6', 'linux/ppc64le']);
    for (const [i, [os, arch, platform, whoami]] of [['windows', 'amd64', 'windows/amd64', 'i am amd64'], ['linux', 'arm', 'linux/arm/v6', 'i am arm'], ['linux', 'ppc64le', 'linux/ppc64le', 'i am ppc64le']].entries()) {
      const manifest = json(blob(archive, list[i]!.digest));
      expect(manifest.layers).toHaveLength(1);
      expect(manifest.layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip'); // as BuildKit's OCI exporter compresses
      expect(execFileSync('tar', ['-xOf', blob(archive, manifest.layers[0].digest), 'whoami'], { encoding: 'utf8' })).toBe(whoami);
      const config = json(blob(archive, manifest.config.digest));
      expect([config.os, config.architecture, config.config.Labels.target]).toEqual([os, arch, platform]);
    }

    // testTarExporterBasic and testTarExporterMulti: the filesystem as one tar, split by platform when several.
    const stages = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch AS stage-linux\nCOPY foo forlinux\n\nFROM scratch AS stage-darwin\nCOPY bar fordarwin\n\nFROM stage-$TARGETOS\n', foo: 'data', bar: 'data2' });
    const one = out('one.tar');
    strata(['build', '-q', '-o', `type=tar,dest=${one}`, stages]);
    expect(execFileSync('tar', ['-xOf', one, 'forlinux'], { encoding: 'utf8' })).toBe('data');
    const two = out('two.tar');
    strata(['build', '-q', '--platform', 'linux/amd64,darwin/amd64', '-o', `type=tar,dest=${two}`, stages]);
    expect(execFileSync('tar', ['-xOf', two, 'linux_amd64/forlinux'], { encoding: 'utf8' })).toBe('data');
    expect(execFileSync('tar', ['-xOf', two, 'darwin_amd64/fordarwin'], { encoding: 'utf8' })).toBe('data2');

    // testOCILayoutMultiname: name=a,b (quoted, as buildx reads -o as CSV) gives both names to the one
    // manifest, in a layout and in an archive alike.
    const heredoc = writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nCOPY <<EOF /foo\nhello\nEOF\n' });
    const validate = (index: Record<string, any>) => {
      const [a, b] = index.manifests as { digest: string; annotations: Record<string, string> }[];
      expect(index.manifests).toHaveLength(2);
      expect(a!.digest).toBe(b!.digest);
      expect([a!.annotations['io.containerd.image.name'], b!.annotations['io.containerd.image.name']]).toEqual(['docker.io/org/repo:tag1', 'docker.io/org/repo:tag2']);
      expect([a!.annotations['org.opencontainers.image.ref.name'], b!.annotations['org.opencontainers.image.ref.name']]).toEqual(['tag1', 'tag2']);
    };
    const layout = out('layout');
    strata(['build', '-q', '-o', `type=oci,dest=${layout},tar=false,"name=org/repo:tag1,org/repo:tag2",compression=uncompressed`, heredoc]);
    validate(json(join(layout, 'index.json')));
    const plain = json(blob(layout, json(join(layout, 'index.json')).manifests[0].digest));
    expect(plain.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar']);
    const named = out('named.tar');
    strata(['build', '-q', '-o', `type=oci,dest=${named},"name=org/repo:tag1,org/repo:tag2"`, heredoc]);
    validate(JSON.parse(execFileSync('tar', ['-xOf', named, 'index.json'], { encoding: 'utf8' })));
    // A docker archive, as docker save writes one: the image once, with both tags.
    const docker = out('docker.tar');
    strata(['build', '-q', '-t', 'org/repo:tag1', '-t', 'org/repo:tag2', '-o', `type=docker,dest=${docker}`, heredoc]);
    expect(JSON.parse(execFileSync('tar', ['-xOf', docker, 'manifest.json'], { encoding: 'utf8' })).map((m: { RepoTags: string[] }) => m.RepoTags)).toEqual([['org/repo:tag1', 'org/repo:tag2']]);
    const r = spawnSync(process.execPath, [cli, '--root', root, 'build', '-q', '-o', `type=oci,dest=${out('bad.tar')},name="a,b"`, heredoc], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    expect(r.stderr).toContain('a quote inside an unquoted field');
    const zstdDocker = spawnSync(process.execPath, [cli, '--root', root, 'build', '-q', '-o', `type=docker,dest=${out('bad-docker.tar')},compression=zstd`, heredoc], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    expect(zstdDocker.stderr).toContain('-o compression= is for type=oci and the image exporters');

    // testDockerfileScratchConfig: a platform, the root as its workdir, Docker's PATH, one empty-layer step.
    const { result } = await buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nENV foo=bar\n' }) });
    expect(result.config.os).not.toBe('');
    expect(result.config.architecture).not.toBe('');
    expect(result.config.config?.WorkingDir).toBe('/');
    expect(result.config.rootfs).toEqual({ type: 'layers', diff_ids: [] });
    expect((result.config.history ?? []).map((h) => [h.created_by, h.empty_layer])).toEqual([[expect.stringContaining('ENV foo=bar'), true]]);
    expect(result.config.config?.Env).toEqual(expect.arrayContaining(['foo=bar', expect.stringMatching(/^PATH=/)]));

    // testPullScratch: an image from scratch with no layer serves as a base.
    await buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM scratch\nLABEL foo=bar\n' }), tags: ['docker.io/moby/testpullscratch:latest'] });
    const child = (await buildWith(images, { context: writeContext(join(work, `context-${++n}`), { Dockerfile: 'FROM docker.io/moby/testpullscratch:latest\nLABEL bar=baz\nCOPY foo .\n', foo: 'foo-contents' }) })).result;
    expect(child.config.rootfs.diff_ids).toHaveLength(1);
    expect(child.config.config?.Labels).toEqual({ foo: 'bar', bar: 'baz' });
    expect(await read(await imageView(images, child.target.digest), '/foo')).toBe('foo-contents');
  }, 300_000);

  it("resolves named contexts as BuildKit's namedcontext tests expect: an image for a stage and its bases, scratch, a directory with its own .dockerignore, a layout's config (dockerfile_namedcontext_test.go)", async () => {
    const context = (files: ContextFiles) => writeContext(join(work, `context-${++n}`), files);
    // testNamedImageContext: the context stands for the stage "base" (its own FROM chain never built).
    await buildWith(images, {
      context: context({ Dockerfile: `FROM ${BASE} AS parent\nFROM parent AS base\nRUN echo base > /out\nFROM base\nRUN [ -f /etc/debian_version ]\nRUN [ ! -f /out ]\n` }),
      contexts: { base: `docker-image://${BASE}` },
    });
    // testNamedImageContextScratch: docker-image://scratch is the empty image, not one to pull.
    let { result } = await buildWith(images, { context: context({ Dockerfile: 'FROM busybox AS build\nCOPY <<EOF /out\nhello world!\nEOF\n' }), contexts: { busybox: 'docker-image://scratch' } });
    let layer = await imageView(images, result.target.digest);
    expect(await layer.readdir('/')).toEqual(['out']);
    expect(await read(layer, '/out')).toBe('hello world!\n');
    // testNamedLocalContext: a directory, filtered by its own .dockerignore.
    const basedir = context({ out: 'dummy-result', out2: 'dummy-result', '.dockerignore': 'out2\n' });
    ({ result } = await buildWith(images, { context: context({ Dockerfile: `FROM ${BASE} AS base\nRUN cat /etc/debian_version > /out\nFROM scratch\nCOPY --from=base /o* /\n` }), contexts: { base: basedir } }));
    layer = await imageView(images, result.target.digest);
    expect(await layer.readdir('/')).toEqual(['out']);
    expect(await read(layer, '/out')).toBe('dummy-result');
    // testNamedOCILayoutContextExport: an image exported to a layout keeps its workdir and ENV as a named context.
    ({ result } = await buildWith(images, { context: context({ Dockerfile: 'FROM scratch\nWORKDIR /test\nENV foo=bar\n' }) }));
    const layout = join(work, `layout-${++n}`);
    await images.export([result.target.digest], layout, { format: 'oci' });
    ({ result } = await buildWith(images, { context: context({ Dockerfile: 'FROM nonexistent AS base\n' }), contexts: { nonexistent: `oci-layout://${layout}@${result.target.digest}` } }));
    expect(result.config.config?.WorkingDir).toBe('/test');
    expect(result.config.config?.Env).toContain('foo=bar');
  }, 300_000);

  it("refuses a cache mount's source reached through a symlink a step left in the cache, as BuildKit's testCacheMountSourceEscape expects, with nothing of the host read", async () => {
    const escape = writeContext(join(work, `context-${++n}`), {
      Dockerfile: [
        `FROM ${BASE} AS init`,
        'RUN --mount=type=cache,id=sourceescape,target=/cache mkdir -p /cache/sel && echo benign > /cache/sel/benign.txt',
        'FROM init AS link',
        'RUN --mount=type=cache,id=sourceescape,target=/cache rm -rf /cache/sel && ln -s /etc /cache/sel',
        'FROM link AS victim',
        'RUN --mount=type=cache,id=sourceescape,source=sel,target=/victim cat /victim/hostname > /leaked',
        'FROM scratch',
        'COPY --from=victim /leaked /leaked',
        '',
      ].join('\n'),
    });
    await expect(buildWith(images, { context: escape, noCache: true })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('"sel" is reached through a symlink') });
    // The symlink on the way, not at the end, likewise.
    writeFileSync(join(escape, 'Dockerfile'), readFileSync(join(escape, 'Dockerfile'), 'utf8').replace('source=sel,', 'source=sel/ssl,'));
    await expect(buildWith(images, { context: escape, noCache: true })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('"sel/ssl" is reached through a symlink') });
  }, 300_000);

  it("reuses and invalidates steps as BuildKit's cache tests expect: --no-cache and its filter, wildcards by what they match, the same image ID twice (dockerfile_cache_test.go, testCopyWildcardCache)", async () => {
    const unique = async (result: { target: { digest: string } }, path: string) => read(await imageView(images, result.target.digest), path);
    // testNoCache: --no-cache runs every stage again; a filter only the stages it names.
    const stages = writeContext(join(work, `context-${++n}`), {
      Dockerfile: `FROM ${BASE} AS s0\nRUN head -c 100 /dev/urandom | sha256sum | tee unique\nFROM ${BASE} AS s1\nRUN head -c 100 /dev/urandom | sha256sum | tee unique2\nFROM scratch\nCOPY --from=s0 unique /\nCOPY --from=s1 unique2 /\n`,
    });
    const first = (await buildWith(images, { context: stages })).result;
    const second = (await buildWith(images, { context: stages, noCache: true })).result;
    const third = (await buildWith(images, { context: stages, noCacheFilter: ['s1'] })).result;
    expect(await unique(second, '/unique')).not.toBe(await unique(first, '/unique'));
    expect(await unique(second, '/unique2')).not.toBe(await unique(first, '/unique2'));
    expect(await unique(third, '/unique')).toBe(await unique(second, '/unique'));
    expect(await unique(third, '/unique2')).not.toBe(await unique(second, '/unique2'));

    // testCopyWildcardCache: a later COPY's source changing leaves the steps before it cached.
    const wild = writeContext(join(work, `context-${++n}`), {
      Dockerfile: `FROM ${BASE} AS base\nCOPY foo* files/\nRUN head -c 100 /dev/urandom | sha256sum > unique\nCOPY bar files/\nFROM scratch\nCOPY --from=base unique /\n`,
      foo1: 'foo1-data',
      foo2: 'foo2-data',
      bar: 'bar-data',
    });
    const before = await unique((await buildWith(images, { context: wild })).result, '/unique');
    writeFileSync(join(wild, 'bar'), 'bar-data-mod');
    expect(await unique((await buildWith(images, { context: wild })).result, '/unique')).toBe(before);

    // testWildcardRenameCache: a file a wildcard matched renamed is a change, and the next step sees it.
    const renamed = writeContext(join(work, `context-${++n}`), { Dockerfile: `FROM ${BASE}\nCOPY file* /files/\nRUN ls /files/file1\n`, file1: 'foo' });
    await buildWith(images, { context: renamed });
    execFileSync('mv', [join(renamed, 'file1'), join(renamed, 'file2')]);
    await expect(buildWith(images, { context: renamed })).rejects.toThrow(/RUN ls \/files\/file1 failed/);

    // testReproducibleIDs: the same Dockerfile and context built under two names is one image.
    const same = writeContext(join(work, `context-${++n}`), { Dockerfile: `FROM ${BASE}\nENV foo=bar\nCOPY foo /\nRUN echo bar > bar\n`, foo: 'foo-contents' });
    const one = (await buildWith(images, { context: same, tags: ['example.com/moby/dockerfileids:test'] })).result;
    const two = (await buildWith(images, { context: same, tags: ['example.com/moby/dockerfileids2:test'] })).result;
    expect(two.target).toEqual(one.target);
    // The times are the layers' (BuildKit's exporter): ENV takes the first new layer's, the image the last step's.
    const [env, copy, run] = one.config.history!.slice(-3);
    expect([env!.created_by, env!.created]).toEqual(['ENV foo=bar', copy!.created]);
    expect(one.config.created).toBe(run!.created);
  }, 600_000);
});
