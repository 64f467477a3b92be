/**
 * Diff, serialise and flatten. The round-trip laws run on the merged-view suite's random stacks and
 * operation sequences, with the kernel both as the reference and as the writer of uppers.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer, diffTrees, diffUpper, flatten, HostLayer, MemoryLayer, MergedView, packDirectory, readLayer, TarLayer, WritableLayer, writeChanges, type ContentChange, type Entry } from '@strata/core';
import { lutimens, mknod, setXattr } from './helpers/host.js';
import { needs } from './helpers/oracle.js';
import { baseArb, diffMaps, differential, mergedPicture, opArb, timedPicture, withNamesNotUtf8, type DifferentialContext } from './helpers/overlay-diff.js';
import { oldGnuSparse, rawTar } from './helpers/raw-tar.js';

const RUNS = Number(process.env.STRATA_DIFF_RUNS ?? 40);

async function collect(changes: AsyncIterable<ContentChange> | Iterable<ContentChange>): Promise<ContentChange[]> {
  const out: ContentChange[] = [];
  for await (const c of changes) out.push(c);
  return out;
}

async function entriesOf(layer: string): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const { entry } of readLayer(layer)) out.push(entry);
  return out;
}

/** Applies the base layers, then `extra`, into a fresh directory; returns its merged picture. */
async function applyStack(ctx: DifferentialContext, extra: string[], name: string): Promise<string> {
  const target = join(ctx.stack.dir, name);
  for (const layer of [...ctx.stack.tarPaths, ...extra]) await applyLayer(layer, target);
  return target;
}

/** All four laws, checked after one differential run. */
async function laws(ctx: DifferentialContext): Promise<string[]> {
  const problems: string[] = [];
  const check = (label: string, dir: string) => {
    for (const m of diffMaps(ctx.kernelMerged, mergedPicture(dir))) problems.push(`${label}: ${m}`);
  };
  // With times too: every entry's mtime, directories' included, is what the upper left (the kernel's for
  // its upper, strata's for strata's).
  const checkTimes = (label: string, want: typeof ctx.kernelTimed, dir: string) => {
    for (const m of diffMaps(want, timedPicture(dir))) problems.push(`${label} (times): ${m}`);
  };
  const ours = join(ctx.stack.dir, 'diff-ours.tar');
  await writeChanges(diffUpper(ctx.lowers, ctx.ourUpper), ours);
  const appliedOurs = await applyStack(ctx, [ours], 'applied-ours');
  check('diffUpper(strata upper)', appliedOurs);
  checkTimes('diffUpper(strata upper)', ctx.oursTimed, appliedOurs);
  const kernels = join(ctx.stack.dir, 'diff-kernel.tar');
  await writeChanges(diffUpper(ctx.lowers, ctx.kernelUpper), kernels);
  const appliedKernel = await applyStack(ctx, [kernels], 'applied-kernel');
  check('diffUpper(kernel upper)', appliedKernel);
  checkTimes('diffUpper(kernel upper)', ctx.kernelTimed, appliedKernel);
  const trees = join(ctx.stack.dir, 'diff-trees.tar');
  await writeChanges(diffTrees(new MergedView(ctx.lowers), new MergedView(ctx.lowers, new HostLayer(ctx.ourUpper))), trees);
  const appliedTrees = await applyStack(ctx, [trees], 'applied-trees');
  check('diffTrees', appliedTrees);
  checkTimes('diffTrees', ctx.oursTimed, appliedTrees);
  const flat = join(ctx.stack.dir, 'flat.tar');
  await flatten([...ctx.stack.tarPaths, ours], flat);
  const flatApplied = join(ctx.stack.dir, 'applied-flat');
  await applyLayer(flat, flatApplied);
  check('flatten', flatApplied);
  return problems;
}

describe.skipIf(!needs('root', 'overlay'))('round trips on random stacks and operations', () => {
  for (const lowers of ['dirs', 'tars', 'gzip tars'] as const) {
    // Gzip tarballs are read from a rewritten copy: what differs from plain ones is only where content comes from.
    it(`diffUpper (strata's and the kernel's uppers), diffTrees and flatten reproduce the merged view (lowers as ${lowers})`, async () => {
      await fc.assert(
        fc.asyncProperty(baseArb, fc.array(opArb, { minLength: 1, maxLength: 12 }), async (base, ops) => {
          let problems: string[] = [];
          const result = await differential(base, ops, { lowers, namespace: 'trusted', after: async (ctx) => void (problems = await laws(ctx)) });
          expect(result.opMismatches).toEqual([]);
          expect(result.mergedMismatches).toEqual([]);
          expect(problems).toEqual([]);
        }),
        { numRuns: RUNS },
      );
    });
    if (lowers === 'gzip tars') continue;
    it(`the same on names that are not UTF-8, which every walk keeps byte for byte (lowers as ${lowers})`, async () => {
      await fc.assert(
        fc.asyncProperty(baseArb, fc.array(opArb, { minLength: 1, maxLength: 12 }), async (base, ops) => {
          const bytes = withNamesNotUtf8(base, ops);
          let problems: string[] = [];
          const result = await differential(bytes.base, bytes.ops, { lowers, namespace: 'trusted', after: async (ctx) => void (problems = await laws(ctx)) });
          expect(result.opMismatches).toEqual([]);
          expect(problems).toEqual([]);
        }),
        { numRuns: Math.ceil(RUNS / 4) },
      );
    });
  }
});

describe.skipIf(!needs('root', 'overlay', 'gnu-tar'))('diffUpper traps', () => {
  let work: string;
  let n = 0;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-diff-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** A lower with a, b (hardlinked to a), d/c; a kernel mount over it; `script` run in the mount. */
  function kernelUpper(script: string): { lower: string; upper: string } {
    const dir = join(work, `k${++n}`);
    const [lower, upper, wdir, mnt] = ['lower', 'upper', 'work', 'mnt'].map((x) => join(dir, x)) as [string, string, string, string];
    for (const d of [lower, upper, wdir, mnt]) mkdirSync(d, { recursive: true });
    writeFileSync(join(lower, 'a'), 'a\n');
    linkSync(join(lower, 'a'), join(lower, 'b'));
    mkdirSync(join(lower, 'd'));
    writeFileSync(join(lower, 'd', 'c'), 'c\n');
    writeFileSync(join(lower, 'e'), 'e\n');
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${wdir},index=off,redirect_dir=off,metacopy=off`, mnt]);
    try {
      execFileSync('sh', ['-c', script], { cwd: mnt });
    } finally {
      execFileSync('umount', [mnt]);
    }
    return { lower, upper };
  }

  it('a new directory the kernel marks opaque over nothing gets no opaque marker', async () => {
    const { lower, upper } = kernelUpper('mkdir n && echo x > n/f');
    const changes = await collect(diffUpper([new HostLayer(lower)], upper));
    expect(changes.map((c) => [c.kind, 'entry' in c ? c.entry.path : c.path])).toEqual([['add', 'n'], ['add', 'n/f']]);
  });

  it('an unchanged file copied up by mv a t; mv t a is not in the layer', async () => {
    const { lower, upper } = kernelUpper('mv e t && mv t e');
    expect(await collect(diffUpper([new HostLayer(lower)], upper))).toEqual([]);
  });

  it('kernel whiteouts (one shared inode) are deletions, never tar hardlinks', async () => {
    const { lower, upper } = kernelUpper('rm e && rm d/c');
    const layer = join(work, 'wh.tar');
    await writeChanges(diffUpper([new HostLayer(lower)], upper), layer);
    const entries = await entriesOf(layer);
    expect(entries.filter((e) => e.type === 'hardlink')).toEqual([]);
    expect(entries.map((e) => e.path).sort()).toEqual(['.wh.e', 'd', 'd/.wh.c']);
    expect(execFileSync('tar', ['-tvf', layer]).toString()).toContain('.wh.e');
  });

  it('redirect and metacopy xattrs are refused, not mis-diffed', async () => {
    const upper = join(work, 'redirect');
    mkdirSync(join(upper, 'moved'), { recursive: true });
    setXattr(join(upper, 'moved'), 'trusted.overlay.redirect', Buffer.from('/d'));
    await expect(collect(diffUpper([], upper))).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });

  it('modifying one name of a hardlink set re-emits its unmodified partners', async () => {
    const dir = join(work, 'links');
    const lower = join(dir, 'lower');
    mkdirSync(lower, { recursive: true });
    writeFileSync(join(lower, 'a'), 'a\n');
    mkdirSync(join(dir, 'upper'));
    const layer = new WritableLayer([new HostLayer(lower)], join(dir, 'upper'));
    await layer.link('/a', '/n'); // a is copied up unchanged; n links to it
    const changes = await collect(diffUpper([new HostLayer(lower)], join(dir, 'upper')));
    expect(changes.map((c) => 'entry' in c && [c.entry.path, c.entry.type, c.entry.linkname])).toEqual([['a', 'file', undefined], ['n', 'hardlink', 'a']]);
  });

  it('a changed name re-emits an unchanged partner whose directory was walked before it', async () => {
    // d1 is walked (and closed) before d2/n turns up: d1/a and d1 itself must still be written.
    const dir = join(work, 'links-across');
    const lower = join(dir, 'lower');
    mkdirSync(join(lower, 'd1'), { recursive: true });
    mkdirSync(join(lower, 'd2'));
    writeFileSync(join(lower, 'd1', 'a'), 'a\n');
    writeFileSync(join(lower, 'd1', 'z'), 'z\n');
    mkdirSync(join(dir, 'upper'));
    const layer = new WritableLayer([new HostLayer(lower)], join(dir, 'upper'));
    await layer.link('/d1/a', '/d2/n');
    const changes = await collect(diffUpper([new HostLayer(lower)], join(dir, 'upper')));
    expect(changes.map((c) => 'entry' in c && [c.kind, c.entry.path, c.entry.type, c.entry.linkname])).toEqual([
      ['modify', 'd1', 'directory', undefined],
      ['modify', 'd1/a', 'file', undefined],
      ['modify', 'd2', 'directory', undefined],
      ['add', 'd2/n', 'hardlink', 'd1/a'],
    ]);
  });

  it('a hardlink set whose every name is unchanged is left out, and so are its directories', async () => {
    const dir = join(work, 'links-unchanged');
    const [lower, upper] = [join(dir, 'lower'), join(dir, 'upper')];
    for (const d of [lower, upper]) mkdirSync(join(d, 'd'), { recursive: true });
    for (const name of ['a', 'b']) {
      writeFileSync(join(lower, 'd', name), 'x');
      lutimens(join(lower, 'd', name), { sec: 100, nsec: 5 }, { sec: 100, nsec: 5 });
    }
    writeFileSync(join(upper, 'd', 'a'), 'x');
    lutimens(join(upper, 'd', 'a'), { sec: 100, nsec: 5 }, { sec: 100, nsec: 5 });
    linkSync(join(upper, 'd', 'a'), join(upper, 'd', 'b'));
    // The directory as the kernel's copy-up leaves it, its times the lower's (two mkdirs apart can differ).
    for (const d of [lower, upper]) lutimens(join(d, 'd'), { sec: 200, nsec: 7 }, { sec: 200, nsec: 7 });
    writeFileSync(join(upper, 'new'), 'n');
    const changes = await collect(diffUpper([new HostLayer(lower)], upper));
    expect(changes.map((c) => 'entry' in c && c.entry.path)).toEqual(['new']);
  });

  it('streams: the first changes come out before the rest of the upper is read', async () => {
    const dir = join(work, 'streaming');
    const [lower, upper] = [join(dir, 'lower'), join(dir, 'upper')];
    mkdirSync(lower, { recursive: true });
    for (const d of ['a', 'z']) mkdirSync(join(upper, d), { recursive: true });
    writeFileSync(join(upper, 'a', 'f'), 'f');
    const changes = diffUpper([new HostLayer(lower)], upper);
    const first = await changes.next();
    expect(first.value).toMatchObject({ kind: 'add', entry: { path: 'a' } });
    // z has not been listed yet: what appears in it now is part of the diff.
    writeFileSync(join(upper, 'z', 'late'), 'l');
    const rest = await collect(changes);
    expect(rest.map((c) => 'entry' in c && c.entry.path)).toEqual(['a/f', 'z', 'z/late']);
  });

  it('mtimes truncated to whole seconds compare by content', async () => {
    const dir = join(work, 'trunc');
    const [lower, upper] = [join(dir, 'lower'), join(dir, 'upper')];
    for (const d of [lower, upper]) mkdirSync(d, { recursive: true });
    for (const [name, content] of [['same', 'x'], ['changed', 'y']] as const) {
      writeFileSync(join(lower, name), 'x');
      lutimens(join(lower, name), { sec: 100, nsec: 0 }, { sec: 100, nsec: 0 });
      writeFileSync(join(upper, name), content);
      lutimens(join(upper, name), { sec: 100, nsec: 123 }, { sec: 100, nsec: 123 });
    }
    const changes = await collect(diffUpper([new HostLayer(lower)], upper));
    expect(changes.map((c) => 'entry' in c && c.entry.path)).toEqual(['changed']);
  });
});

describe.skipIf(!needs('root'))('sockets (no tar form) in a diff', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-sock-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const S_IFSOCK = 0o140000;
  const described = (changes: ContentChange[]) => changes.map((c) => [c.kind, 'entry' in c ? `${c.entry.path}:${c.entry.type}` : c.path]);

  it('diffUpper leaves a socket out, and deletes what it replaced instead of letting it show through', async () => {
    const [lower, upper] = [join(work, 'u-lower'), join(work, 'u-upper')];
    for (const d of [lower, upper]) mkdirSync(d);
    writeFileSync(join(lower, 'replaced'), 'was a file');
    mknod(join(upper, 'replaced'), S_IFSOCK, 0o755);
    mknod(join(upper, 'new'), S_IFSOCK, 0o755);
    writeFileSync(join(upper, 'plain'), 'p');
    const warnings: string[] = [];
    const changes = await collect(diffUpper([new HostLayer(lower)], upper, { onWarning: (_m, p) => warnings.push(p) }));
    expect(described(changes)).toEqual([['add', 'plain:file'], ['delete', 'replaced']]);
    expect(warnings.sort()).toEqual(['new', 'replaced']);
    const layer = join(work, 'u.tar');
    await writeChanges(changes, layer);
    const target = join(work, 'u-applied');
    execFileSync('cp', ['-a', lower, target]);
    await applyLayer(layer, target);
    expect(readdirSync(target).sort()).toEqual(['plain']);
  });

  it('diffTrees leaves sockets out of added subtrees and deletes what a socket replaced', async () => {
    const [from, to] = [join(work, 't-from'), join(work, 't-to')];
    for (const d of [from, to]) mkdirSync(d);
    writeFileSync(join(from, 'replaced'), 'was a file');
    mknod(join(from, 'kept'), S_IFSOCK, 0o755);
    mknod(join(to, 'kept'), S_IFSOCK, 0o755);
    mknod(join(to, 'replaced'), S_IFSOCK, 0o755);
    mkdirSync(join(to, 'dir'));
    mknod(join(to, 'dir', 'sock'), S_IFSOCK, 0o755);
    writeFileSync(join(to, 'dir', 'file'), 'f');
    const warnings: string[] = [];
    const view = (d: string) => new MergedView([new HostLayer(d)]);
    const changes = await collect(diffTrees(view(from), view(to), { onWarning: (_m, p) => warnings.push(p) }));
    expect(described(changes)).toEqual([['add', 'dir:directory'], ['add', 'dir/file:file'], ['delete', 'replaced']]);
    expect(warnings.sort()).toEqual(['dir/sock', 'replaced']);
  });
});

describe.skipIf(!needs('root'))('diffTrees and flatten corners', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-flat-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('diffTrees uses one opaque marker for a directory that kept nothing', async () => {
    const [a, b] = [join(work, 'ta'), join(work, 'tb')];
    for (let i = 0; i < 5; i++) {
      mkdirSync(join(a, 'd'), { recursive: true });
      writeFileSync(join(a, 'd', `old${i}`), 'o');
    }
    mkdirSync(join(b, 'd'), { recursive: true });
    writeFileSync(join(b, 'd', 'new'), 'n');
    const changes = await collect(diffTrees(new MergedView([new HostLayer(a)]), new MergedView([new HostLayer(b)])));
    expect(changes.map((c) => c.kind)).toEqual(['modify', 'opaque', 'add']);
  });

  it('diffTrees streams: changes come out before later directories are listed, held only while a directory may turn opaque', async () => {
    const [a, b] = [join(work, 'sa'), join(work, 'sb')];
    for (const t of [a, b]) {
      for (const d of ['d', 'e', 'z']) mkdirSync(join(t, d), { recursive: true });
      writeFileSync(join(t, 'd', 'same'), 's');
      writeFileSync(join(t, 'e', 'same'), 's');
      for (const d of ['', 'd', 'e', 'z', 'd/same', 'e/same']) lutimens(join(t, d), { sec: 1, nsec: 0 }, { sec: 1, nsec: 0 });
    }
    writeFileSync(join(a, 'd', 'gone'), 'g'); // sorts before d/same: held until d/same shows d keeps something
    writeFileSync(join(b, 'e', 'new'), 'n');
    lutimens(join(b, 'e', 'new'), { sec: 1, nsec: 0 }, { sec: 1, nsec: 0 });
    const changes = diffTrees(new MergedView([new HostLayer(a)]), new MergedView([new HostLayer(b)]));
    expect((await changes.next()).value).toMatchObject({ kind: 'modify', entry: { path: 'd' } });
    expect((await changes.next()).value).toEqual({ kind: 'delete', path: 'd/gone' });
    // z has not been listed yet: what appears in it now is part of the diff.
    writeFileSync(join(b, 'z', 'late'), 'l');
    const rest = await collect(changes);
    expect(rest.map((c) => ('entry' in c ? c.entry.path : `${c.kind} ${c.path}`))).toEqual(['e', 'e/new', 'z', 'z/late']);
  });

  it('flatten keeps a hardlink correct when a later layer overwrote its target', async () => {
    const l1 = join(work, 'l1.tar');
    const l2 = join(work, 'l2.tar');
    writeFileSync(l1, rawTar([{ name: 't', data: 'original\n' }, { name: 'h', type: '1', linkname: 't' }]));
    writeFileSync(l2, rawTar([{ name: 't', data: 'replaced\n' }]));
    const flat = join(work, 'flat.tar');
    await flatten([l1, l2], flat);
    const [one, two] = [join(work, 'one'), join(work, 'two')];
    await applyLayer(flat, one);
    await applyLayer(l1, two);
    await applyLayer(l2, two);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(join(one, 'h'), 'utf8')).toBe('original\n');
    expect(readFileSync(join(one, 't'), 'utf8')).toBe('replaced\n');
    expect(readFileSync(join(two, 'h'), 'utf8')).toBe('original\n');
  });

  it('flatten gives the same layer from compressed inputs (content streamed) as from plain ones (content copied in place), and skips layers nothing survives from', async () => {
    const { gzipSync } = await import('node:zlib');
    const { readFileSync } = await import('node:fs');
    const layers = [
      rawTar([{ name: 'd/', type: '5', mode: 0o755 }, { name: 'd/a', data: 'a1'.repeat(3000) }, { name: 'd/gone', data: 'g' }]),
      rawTar([{ name: 'd/a', data: 'a2'.repeat(5000) }, { name: 'd/.wh.gone', data: '' }, { name: 'h', type: '1', linkname: 'd/a' }]),
      rawTar([{ name: 'z', data: 'z'.repeat(70_000) }]),
    ];
    const plain = layers.map((_, i) => join(work, `c-plain-${i}.tar`));
    const packed = layers.map((_, i) => join(work, `c-gz-${i}.tar.gz`));
    layers.forEach((bytes, i) => {
      writeFileSync(plain[i]!, bytes);
      writeFileSync(packed[i]!, gzipSync(bytes));
    });
    const fromPlain = await flatten([plain[0]!, ...plain], join(work, 'c-plain.tar')); // layer 0 twice: the first copy contributes nothing
    const fromPacked = await flatten([packed[0]!, ...packed], join(work, 'c-gz.tar'));
    expect(fromPacked.diffID).toBe(fromPlain.diffID);
    const target = join(work, 'c-target');
    await applyLayer(join(work, 'c-plain.tar'), target);
    expect(readFileSync(join(target, 'h'), 'utf8')).toBe('a2'.repeat(5000));
    expect(readFileSync(join(target, 'z'), 'utf8')).toBe('z'.repeat(70_000));
    expect(readdirSync(join(target, 'd'))).toEqual(['a']);
  });

  it("flatten of plain layers holding a sparse file writes its content (holes as zeros), read again since it is not one range of its layer; TarLayer reads it in place", async () => {
    const { readFileSync } = await import('node:fs');
    const l1 = join(work, 's1.tar');
    const l2 = join(work, 's2.tar');
    writeFileSync(l1, rawTar([oldGnuSparse('sparse', 100_000, [[10, 'data'], [90_000, 'more']]), { name: 'plain', data: 'p' }]));
    writeFileSync(l2, rawTar([{ name: 'other', data: 'o' }]));
    const flat = join(work, 's.tar');
    await flatten([l1, l2], flat);
    const expected = Buffer.alloc(100_000);
    expected.write('data', 10);
    expected.write('more', 90_000);
    const target = join(work, 's-target');
    await applyLayer(flat, target);
    expect(readFileSync(join(target, 'sparse')).equals(expected)).toBe(true);
    expect(readdirSync(target).sort()).toEqual(['other', 'plain', 'sparse']);
    const layer = await TarLayer.open(l1);
    expect(Buffer.from(layer.readAll('sparse')).equals(expected)).toBe(true);
    expect(layer.contentRange('sparse')).toBeUndefined();
  });

  it('flatten keeps whiteouts that may hide something of the base, and drops what the range itself deleted', async () => {
    const l1 = join(work, 'w1.tar');
    const l2 = join(work, 'w2.tar');
    writeFileSync(l1, rawTar([{ name: 'added', data: 'x' }, { name: '.wh.base-file', data: '' }]));
    writeFileSync(l2, rawTar([{ name: '.wh.added', data: '' }, { name: 'kept', data: 'k' }]));
    const flat = join(work, 'w.tar');
    await flatten([l1, l2], flat);
    expect((await entriesOf(flat)).map((e) => e.path).sort()).toEqual(['.wh.added', '.wh.base-file', 'kept']);
    const base = join(work, 'base');
    mkdirSync(base);
    writeFileSync(join(base, 'base-file'), 'b');
    writeFileSync(join(base, 'added'), 'from base');
    await applyLayer(flat, base);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(base).sort()).toEqual(['kept']);
  });

  it('flatten and ls hide what lies beneath a whiteout of a directory only implied by its children', async () => {
    const { mergedListing } = await import('@strata/core');
    const l1 = join(work, 'i1.tar');
    const l2 = join(work, 'i2.tar');
    writeFileSync(l1, rawTar([{ name: 'a/b', data: 'under an implied a' }, { name: 'keep', data: 'k' }]));
    writeFileSync(l2, rawTar([{ name: '.wh.a', data: '' }]));
    const flat = join(work, 'i.tar');
    await flatten([l1, l2], flat);
    const [one, two] = [join(work, 'i-flat'), join(work, 'i-each')];
    await applyLayer(flat, one);
    await applyLayer(l1, two);
    await applyLayer(l2, two);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(two).sort()).toEqual(['keep']);
    expect(readdirSync(one).sort()).toEqual(['keep']);
    expect((await mergedListing([l1, l2])).map((e) => e.path)).toEqual(['keep']);
  });

  it('with SOURCE_DATE_EPOCH, two builds of the same change give the same digest', async () => {
    const build = async (time: number, name: string) => {
      const layer = join(work, `${name}.tar`);
      writeFileSync(layer, rawTar([{ name: 'f', data: 'same', mtime: time }, { name: '.wh.gone', data: '', mtime: time }]));
      return flatten([layer], join(work, `${name}-flat.tar`), { sourceDateEpoch: 1_000_000 });
    };
    const [a, b] = [await build(1_700_000_000, 'sde-a'), await build(1_800_000_000, 'sde-b')];
    expect(a.digest).toBe(b.digest);
  });

  it('TarLayer lowers and an upper squash into one base layer', async () => {
    const { squash } = await import('@strata/core');
    const l1 = join(work, 's1.tar');
    writeFileSync(l1, rawTar([{ name: 'a', data: 'a' }, { name: 'b', data: 'b' }]));
    const upper = join(work, 'sq-upper');
    mkdirSync(upper);
    const layer = new WritableLayer([await TarLayer.open(l1)], upper);
    await layer.unlink('/a');
    await layer.writeFile('/c', 'c');
    const out = join(work, 'squashed.tar');
    await squash([await TarLayer.open(l1)], new HostLayer(upper), out);
    expect((await entriesOf(out)).map((e) => e.path)).toEqual(['b', 'c']);
  });
});

describe('content compared a chunk at a time', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-compare-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** A sparse file of `size` bytes holding `head` at its start, with the mtime every file here shares. */
  const sparse = (path: string, size: number, head: string) => {
    writeFileSync(path, head);
    truncateSync(path, size);
    lutimens(path, { sec: 100, nsec: 0 }, { sec: 100, nsec: 0 });
  };
  /** Over 4 GiB: more than one Buffer can hold, so only a streamed comparison can tell these apart. */
  const HUGE = 5 * 1024 ** 3;

  it('diffTrees --exact tells files apart past a chunk, at its end, or in a file larger than memory can hold whole', async () => {
    const [from, to] = [join(work, 'from'), join(work, 'to')];
    for (const d of [from, to]) mkdirSync(d);
    const body = randomBytes(600_000); // more than two 256 KiB chunks
    const late = Buffer.from(body);
    late[late.length - 1]! ^= 1;
    for (const [name, a, b] of [['same', body, body], ['late', body, late]] as const) {
      writeFileSync(join(from, name), a);
      writeFileSync(join(to, name), b);
      for (const d of [from, to]) lutimens(join(d, name), { sec: 100, nsec: 0 }, { sec: 100, nsec: 0 });
    }
    sparse(join(from, 'huge'), HUGE, 'a');
    sparse(join(to, 'huge'), HUGE, 'b');
    for (const d of [from, to]) lutimens(d, { sec: 100, nsec: 0 }, { sec: 100, nsec: 0 });
    const paths = async (exact: boolean) => (await collect(diffTrees(new MergedView([new HostLayer(from)]), new MergedView([new HostLayer(to)]), { exact }))).map((c) => 'entry' in c && c.entry.path);
    expect(await paths(false)).toEqual([]);
    expect(await paths(true)).toEqual(['huge', 'late']);

    // The same comparison with the content in a tarball and in memory.
    rmSync(join(from, 'huge'));
    rmSync(join(to, 'huge'));
    const tar = join(work, 'from.tar');
    await packDirectory(from, tar);
    const memory = new MemoryLayer(['same', 'late'].map((name) => ({ entry: { path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: { sec: 100, nsec: 0 }, xattrs: new Map() }, content: name === 'same' ? body : late })));
    for (const lower of [await TarLayer.open(tar), memory]) {
      const changes = await collect(diffTrees(new MergedView([lower]), new MergedView([new HostLayer(to)]), { exact: true }));
      expect(changes.map((c) => 'entry' in c && c.entry.path)).toEqual(lower === memory ? [] : ['late']);
    }
  });

  it('diffUpper compares a copy-up whose mtime lost its nanoseconds a chunk at a time, whatever its size', async () => {
    const [lower, upper] = [join(work, 'lower'), join(work, 'upper')];
    for (const d of [lower, upper]) mkdirSync(d);
    sparse(join(lower, 'huge'), HUGE, 'a');
    sparse(join(upper, 'huge'), HUGE, 'b');
    lutimens(join(upper, 'huge'), { sec: 100, nsec: 5 }, { sec: 100, nsec: 5 });
    const changes = await collect(diffUpper([new HostLayer(lower)], upper));
    expect(changes.map((c) => 'entry' in c && c.entry.path)).toEqual(['huge']);
  });
});
