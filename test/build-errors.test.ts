/**
 * Bad input to a build: each a clear error naming the Dockerfile line, nothing named, no container left
 * behind; a hostile base image cannot send COPY's files to the host; RUN refused where it cannot run (the
 * userspace driver) while a Dockerfile without RUN still builds there; an aborted build stops its RUN.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '@strata/build';
import type { Images } from '@strata/images';
import { BASE, buildWith, type ContextFiles, imageTree, imageView, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap'))('bad input to a build', () => {
  let work: string;
  let images: Images;
  let n = 0;

  beforeAll(async () => {
    work = scratch('strata-build-errors-');
    images = await rootWithBase(work);
  }, 30 * 60_000);

  afterAll(async () => {
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  function context(dockerfile: string, files: ContextFiles = {}): string {
    return writeContext(join(work, `context-${++n}`), { Dockerfile: dockerfile, 'a.txt': 'a\n', ...files });
  }

  async function activeSnapshots(): Promise<string[]> {
    const keys: string[] = [];
    await images.snapshotter.walk((info) => void keys.push(info.name), 'kind==active');
    return keys;
  }

  const cases: [string, string, ContextFiles, RegExp][] = [
    ['an unknown instruction', `FROM ${BASE}\nCOPY a.txt /\nFETCH x\n`, {}, /Dockerfile line 3: unknown instruction "FETCH"/],
    ['a source above the context', `FROM ${BASE}\nCOPY ../x /x\n`, {}, /Dockerfile line 2: COPY "..\/x" is outside the build context/],
    ['a symlink leading out of the context', `FROM ${BASE}\nCOPY out /x\n`, { out: { symlink: '/etc' } }, /Dockerfile line 2: COPY "out" leads out of the build context/],
    ['a symlinked directory leading out', `FROM ${BASE}\nCOPY dir/passwd /x\n`, { dir: { symlink: '/etc' } }, /Dockerfile line 2: COPY "dir\/passwd" leads out of the build context/],
    ['a source that is not there', `FROM ${BASE}\nCOPY a.txt nosuch.txt /x/\n`, {}, /Dockerfile line 2: COPY "nosuch\.txt" is not in the build context/],
    ['a --parents path that is not there', `FROM ${BASE}\nCOPY --parents a.txt sub/nosuch.txt /x/\n`, {}, /Dockerfile line 2: COPY "sub\/nosuch\.txt" is not in the build context/],
    ['a missing stage or image', `FROM ${BASE}\nCOPY --from=nosuch /x /x\n`, {}, /Dockerfile line 2: image "nosuch" is not in the store/],
    // BuildKit's own testDockerfileCopyFromArgs, and the same in a stage the target does not need.
    ['a variable in COPY --from', `FROM scratch\nCOPY --from=$FOO . .\n`, {}, /Dockerfile line 2: COPY --from=\$FOO: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround/],
    ['a variable in an unneeded stage\'s COPY --from', `FROM ${BASE} AS unused\nARG SRC=${BASE}\nCOPY --from=\${SRC} /etc/hostname /h\nFROM ${BASE}\nCOPY a.txt /\n`, {}, /Dockerfile line 3: COPY --from=\$\{SRC\}: variable expansion is not supported/],
    ['a missing base', `FROM example.com/never:seen\n`, {}, /Dockerfile line 1: image "example.com\/never:seen" is not in the store/],
    ['an ADD of an ssh git remote without an agent', `FROM ${BASE}\nADD git@example.com:x.git /x\n`, {}, /Dockerfile line 2: ADD git@example.com:x.git: an ssh remote needs the build's SSH agent \(strata build --ssh default\)/],
    ['an ADD of another remote', `FROM ${BASE}\nADD ftp://example.com/x /x\n`, {}, /Dockerfile line 2: ADD ftp:\/\/example.com\/x: strata fetches http and https URLs and git repositories/],
    ['several sources into a file', `FROM ${BASE}\nCOPY a.txt b.txt /x\n`, { 'b.txt': 'b' }, /Dockerfile line 2: COPY with more than one source file the destination must be a directory/],
    ['a bad --chmod', `FROM ${BASE}\nCOPY --chmod=u+q a.txt /x\n`, {}, /Dockerfile line 2: COPY --chmod=u\+q: "u\+q" is not a clause \(an octal mode up to 7777, or chmod's symbolic form/],
    ['an unknown --chown user', `FROM ${BASE}\nCOPY --chown=nosuchuser a.txt /x\n`, {}, /Dockerfile line 2: COPY --chown=nosuchuser: user "nosuchuser" is not in the image's \/etc\/passwd/],
    ['a required build arg left unset', `FROM ${BASE}\nARG VERSION\nCOPY a.txt /\nCOPY a.txt /opt/\${VERSION:?needs_a_build_arg}/\n`, {}, /Dockerfile line 4: COPY: VERSION: needs_a_build_arg/],
    // COPY's line is split into words before they are expanded, as BuildKit splits it: a space inside ${…} splits it too.
    ['a COPY word split inside a variable', `FROM ${BASE}\nARG VERSION=1\nCOPY a.txt /\nCOPY a.txt /opt/\${VERSION:?pass --build-arg VERSION}/\n`, {}, /Dockerfile line 4: COPY: missing \} in "\/opt\/\$\{VERSION:\?pass"/],
    ['a pattern with a bad escape', `FROM ${BASE}\nARG V=x\nCOPY a.txt /c\${V#\\q}/\n`, {}, /Dockerfile line 3: COPY: invalid escape "\\\\q"/],
    ['a RUN as an unknown user', `FROM ${BASE}\nUSER ghost\nRUN true\n`, {}, /Dockerfile line 3: RUN as "ghost": user "ghost" is not in the image's \/etc\/passwd/],
  ];
  for (const [what, dockerfile, files, message] of cases) {
    it(`refuses ${what}, naming the line`, async () => {
      const tag = `example.com/bad:${n + 1}`;
      await expect(buildWith(images, { context: context(dockerfile, files), tags: [tag] })).rejects.toThrow(message);
      expect(images.images.get(tag)).toBeUndefined();
      expect(await activeSnapshots()).toEqual([]);
    }, 120_000);
  }

  it('extracts xz and bzip2 archives (through the system\'s tools, as BuildKit), and copies a file that only looks like one as a file', async () => {
    const dir = context(`FROM ${BASE}\nADD notes.txt /notes/\nADD x.tar.xz /x/\nADD b.tar.bz2 /b/\nADD fake.tar.xz /fake/\n`, { 'notes.txt': 'BZh but no bzip2 after it\n', 'src/pkg/file': 'inside\n', 'big/.keep': '' });
    execFileSync('tar', ['-cJf', join(dir, 'x.tar.xz'), '-C', join(dir, 'src'), 'pkg']);
    execFileSync('tar', ['-cjf', join(dir, 'b.tar.bz2'), '-C', join(dir, 'src'), 'pkg']);
    writeFileSync(join(dir, 'fake.tar.xz'), Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]));
    const { result } = await buildWith(images, { context: dir, tags: ['example.com/add:notes'] });
    const tree = await imageTree(images, result.names[0]!, work);
    expect(tree.get('notes/notes.txt')).toMatchObject({ type: 'file' });
    expect(tree.get('x/pkg/file')).toMatchObject({ type: 'file', size: 7 });
    expect(tree.get('b/pkg/file')).toMatchObject({ type: 'file', size: 7 });
    expect(tree.get('fake/fake.tar.xz')).toMatchObject({ type: 'file', size: 9 });
    // Cut short: a tar header shows, then the data ends; the step fails with the line, and names nothing.
    writeFileSync(join(dir, 'big/data'), Buffer.alloc(4 << 20, 1), { flag: 'w' });
    execFileSync('tar', ['-cJf', join(dir, 'cut.tar.xz'), '-C', dir, 'big']);
    const whole = readFileSync(join(dir, 'cut.tar.xz'));
    writeFileSync(join(dir, 'cut.tar.xz'), whole.subarray(0, whole.length - 64));
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${BASE}\nADD cut.tar.xz /cut/\n`);
    await expect(buildWith(images, { context: dir, tags: ['example.com/add:cut'] })).rejects.toThrow(/Dockerfile line 2: ADD xz: .*(truncated|Unexpected end)/);
    expect(images.images.get('example.com/add:cut')).toBeUndefined();
    expect(await activeSnapshots()).toEqual([]);
  }, 120_000);

  it.skipIf(!needs('zstd'))('extracts zstd archives (one opened by a skippable frame too) and copies a zstd file of anything else as a file, as BuildKit does', async () => {
    const dir = context(`FROM ${BASE}\nADD z.tar.zst /z/\nADD skip.tar.zst /skip/\nADD notes.zst /notes/\n`, { 'src/pkg/file': 'inside\n' });
    const zstd = (input: Buffer) => execFileSync('zstd', ['-q', '-c'], { input });
    const tar = execFileSync('tar', ['-c', '-C', join(dir, 'src'), 'pkg']);
    const skippable = Buffer.alloc(8 + 4);
    skippable.writeUInt32LE(0x184d2a5a, 0);
    skippable.writeUInt32LE(4, 4);
    writeFileSync(join(dir, 'z.tar.zst'), zstd(tar));
    writeFileSync(join(dir, 'skip.tar.zst'), Buffer.concat([skippable, zstd(tar)]));
    writeFileSync(join(dir, 'notes.zst'), zstd(Buffer.from('notes, not an archive\n'.repeat(100))));
    const { result } = await buildWith(images, { context: dir, tags: ['example.com/add:zstd'] });
    const tree = await imageTree(images, result.names[0]!, work);
    expect(tree.get('z/pkg/file')).toMatchObject({ type: 'file', size: 7 });
    expect(tree.get('skip/pkg/file')).toMatchObject({ type: 'file', size: 7 });
    expect(tree.get('notes/notes.zst')).toMatchObject({ type: 'file', size: statSync(join(dir, 'notes.zst')).size });
  }, 120_000);

  it('refuses a tag or cache image that cannot be a name before it builds anything, as docker build refuses its -t', async () => {
    const events: string[] = [];
    const dir = context(`FROM ${BASE}\nCOPY a.txt /\n`);
    const before = images.list().length;
    await expect(build(images, { context: dir, tags: ['example.com/fine:1', 'example.com/Bad:1'], onEvent: (e) => events.push(e.type) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('"example.com/Bad:1"') });
    await expect(build(images, { context: dir, cacheFrom: ['example.com/Cache:1'], onEvent: (e) => events.push(e.type) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(build(images, { context: dir, cacheTo: { ref: 'example.com/Cache:1' }, push: async () => {}, onEvent: (e) => events.push(e.type) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(events).toEqual([]);
    expect(images.list()).toHaveLength(before);
  });

  it('refuses a target stage that is not there', async () => {
    await expect(buildWith(images, { context: context(`FROM ${BASE} AS one\n`), target: 'two' })).rejects.toThrow(/target stage "two" is not in the Dockerfile/);
  });

  it('stops at a failing RUN: nothing named, its container removed, the steps before it cached', async () => {
    const dir = context(`FROM ${BASE}\nCOPY a.txt /a.txt\nRUN echo about to fail && exit 3\nRUN echo never\n`);
    const failed = buildWith(images, { context: dir, tags: ['example.com/fails:1'] });
    await expect(failed).rejects.toThrow(/Dockerfile line 3: RUN echo about to fail && exit 3 failed with exit status 3/);
    expect(images.images.get('example.com/fails:1')).toBeUndefined();
    expect(await activeSnapshots()).toEqual([]);
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${BASE}\nCOPY a.txt /a.txt\nRUN echo fixed\n`);
    const fixed = await buildWith(images, { context: dir, tags: ['example.com/fails:1'] });
    expect(fixed.ran).toEqual(['RUN echo fixed']);
    expect(fixed.output).toContain('fixed\n');
  }, 120_000);

  it('refuses a context over the limits, naming the line', async () => {
    const files: ContextFiles = {};
    for (let i = 0; i < 20; i++) files[`many/f${i}`] = String(i);
    const dir = context(`FROM ${BASE}\nCOPY a.txt /\nCOPY many /many\n`, files);
    await expect(buildWith(images, { context: dir, limits: { maxEntries: 10 } })).rejects.toThrow(/Dockerfile line 3: COPY more than 10 entries selected/);
    await expect(buildWith(images, { context: dir, limits: { maxBytes: 20 } })).rejects.toThrow(/Dockerfile line 3: COPY selects 30 bytes, more than the build's limit of 20/);
    // What an archive inflates to is held to the byte limit too: a small gzip of 8 MiB of zeros stops there.
    mkdirSync(join(dir, 'bomb'));
    writeFileSync(join(dir, 'bomb', 'zeros'), Buffer.alloc(8 << 20));
    execFileSync('tar', ['-czf', join(dir, 'bomb.tar.gz'), '-C', join(dir, 'bomb'), 'zeros']);
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${BASE}\nADD bomb.tar.gz /bomb/\n`);
    const bomb = buildWith(images, { context: dir, limits: { maxBytes: 1 << 20 } });
    await expect(bomb).rejects.toThrow(/Dockerfile line 2: ADD .*(limit|1048576)/);
    await expect(bomb).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(await activeSnapshots()).toEqual([]);
  }, 120_000);

  it('keeps COPY inside the container when the image has a symlink pointing out of it', async () => {
    const outside = join(work, 'host-target');
    mkdirSync(outside);
    const dir = context(`FROM ${BASE}\nRUN ln -s /../../../../..${outside} /app && ln -s ../../../../..${outside}/f /rel\nCOPY a.txt /app/\nCOPY a.txt /rel\n`);
    const { result } = await buildWith(images, { context: dir, tags: ['example.com/hostile:1'] });
    expect(existsSync(join(outside, 'a.txt'))).toBe(false);
    expect(existsSync(join(outside, 'f'))).toBe(false);
    const tree = await imageTree(images, result.names[0]!, work);
    expect(tree.get(`${outside.slice(1)}/a.txt`)).toMatchObject({ type: 'file', size: 2 });
    // A file destination that is a symlink is replaced by the file, never written through.
    expect(tree.get('rel')).toMatchObject({ type: 'file', size: 2 });
  }, 120_000);

  it('extracts device nodes and FIFOs from an ADDed tar, and copies them from a stage', async () => {
    const made = join(work, 'specials');
    mkdirSync(made);
    execFileSync('mkfifo', [join(made, 'pipe')]);
    execFileSync('mknod', ['-m', '600', join(made, 'null2'), 'c', '1', '3']);
    const dir = context(`FROM ${BASE} AS s\nADD specials.tar /dev2/\nFROM ${BASE}\nCOPY --from=s /dev2 /dev3\n`);
    execFileSync('tar', ['-C', made, '-cf', join(dir, 'specials.tar'), 'pipe', 'null2']);
    const { result } = await buildWith(images, { context: dir, tags: ['example.com/specials:1'] });
    const tree = await imageTree(images, result.names[0]!, work);
    expect(tree.get('dev3/pipe')).toMatchObject({ type: 'fifo' });
    expect(tree.get('dev3/null2')).toMatchObject({ type: 'char', mode: 0o600, rdev: String((1 << 8) | 3) });
  }, 120_000);

  it("runs the base image's ONBUILD triggers first, at the FROM line", async () => {
    const dir = context(`FROM ${BASE}\nONBUILD COPY a.txt /from-trigger.txt\nONBUILD RUN echo triggered > /triggered\n`);
    await buildWith(images, { context: dir, tags: ['example.com/onbuild:base'] });
    writeFileSync(join(dir, 'Dockerfile'), 'FROM example.com/onbuild:base\nRUN cat /triggered\n');
    const child = await buildWith(images, { context: dir, tags: ['example.com/onbuild:child'] });
    expect(child.ran).toEqual(['COPY a.txt /from-trigger.txt', 'RUN echo triggered > /triggered', 'RUN cat /triggered']);
    expect(child.output).toBe('triggered\n');
    expect(child.events.filter((e) => e.type === 'done').map((e) => (e.type === 'done' ? `${e.step}/${e.total}` : ''))).toEqual(['1/2', '2/4', '3/4', '4/4']);
    expect(child.result.config.config).not.toHaveProperty('OnBuild');
  }, 120_000);

  it('stops a RUN when the build is aborted', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const building = buildWith(images, { context: context(`FROM ${BASE}\nRUN sleep 60\n`), signal: controller.signal });
    setTimeout(() => controller.abort(), 1500);
    await expect(building).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(await activeSnapshots()).toEqual([]);
  }, 120_000);
});

describe.skipIf(!needs('root', 'umoci', 'skopeo', 'debootstrap'))('builds on the userspace driver', () => {
  let work: string;
  let images: Images;

  beforeAll(async () => {
    work = scratch('strata-build-userspace-');
    images = await rootWithBase(work, 'root', 'userspace');
  }, 30 * 60_000);

  afterAll(async () => {
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("reads the Dockerfile's own <name>.dockerignore before the context's .dockerignore, as BuildKit does", async () => {
    const dir = writeContext(join(work, 'ignores'), {
      Dockerfile: `FROM ${BASE}\nCOPY . /ctx/\n`,
      'web.Dockerfile': `FROM ${BASE}\nCOPY . /ctx/\n`,
      'web.Dockerfile.dockerignore': 'b.txt\n',
      '.dockerignore': 'a.txt\n',
      'a.txt': 'a\n',
      'b.txt': 'b\n',
    });
    const files = async (options: { dockerfile?: string }) => {
      const { result } = await buildWith(images, { context: dir, ...options });
      const view = await imageView(images, result.target.digest);
      return (await view.readdir('/ctx')).filter((n) => n.endsWith('.txt')).sort();
    };
    expect(await files({ dockerfile: join(dir, 'web.Dockerfile') })).toEqual(['a.txt']);
    expect(await files({})).toEqual(['b.txt']);
  }, 120_000);

  it('builds a Dockerfile without RUN, and refuses RUN saying why', async () => {
    const dir = writeContext(join(work, 'context'), { Dockerfile: `FROM ${BASE}\nCOPY a.txt /srv/\nENV X=1\n`, 'a.txt': 'a\n' });
    const { result } = await buildWith(images, { context: dir, tags: ['example.com/userspace:1'] });
    const view = await imageView(images, result.names[0]!);
    expect(await view.readFile('/srv/a.txt', 'utf8')).toBe('a\n');
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${BASE}\nRUN true\n`);
    await expect(buildWith(images, { context: dir })).rejects.toThrow(/Dockerfile line 2: RUN needs kernel overlay mounts; this root uses the userspace driver/);
  }, 120_000);
});
