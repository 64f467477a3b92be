/**
 * The build context as COPY lists it: every entry of a large directory, in byte order of the names, with its
 * stats and `.dockerignore` applied, listed a chunk per turn of the event loop; a name that is not UTF-8 is
 * listed, matched, resolved and read by its bytes, as BuildKit does, instead of being lost on the way.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FileChecksums } from '../src/checksums.js';
import { contextFilter } from '../src/ignore.js';
import { ContextTree, readIgnorePatterns } from '../src/sources.js';

const work = mkdtempSync(join(tmpdir(), 'strata-sources-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Listing never asks for a checksum. */
const noChecksums = undefined as unknown as FileChecksums;

function contextWith(name: string, ignore = ''): { root: string; tree: ContextTree } {
  const root = join(work, name);
  mkdirSync(root);
  return { root, tree: new ContextTree(root, contextFilter(ignore), false, noChecksums) };
}

describe('the build context', () => {
  it('lists every entry of a large directory in byte order, with its stats, .dockerignore applied', async () => {
    const { root, tree } = contextWith('large', 'big/skip-*\n');
    const big = join(root, 'big');
    mkdirSync(big);
    const names: string[] = [];
    for (let i = 0; i < 700; i++) {
      const name = `f${String(i).padStart(4, '0')}`;
      writeFileSync(join(big, name), 'x'.repeat(i));
      names.push(name);
    }
    // U+FF21 sorts after U+1F600 in UTF-16 code units and before it in bytes (EF BC A1 < F0 9F 98 80).
    for (const name of ['\u{1F600}', '\uFF21', 'sub', 'link', 'skip-me']) names.push(name);
    writeFileSync(join(big, '\u{1F600}'), 'astral');
    writeFileSync(join(big, '\uFF21'), 'fullwidth');
    mkdirSync(join(big, 'sub'));
    symlinkSync('f0001', join(big, 'link'));
    writeFileSync(join(big, 'skip-me'), 'ignored');
    chmodSync(join(big, 'f0007'), 0o751);

    const children = await tree.children('big');
    const expected = names
      .filter((n) => n !== 'skip-me')
      .map((n) => `big/${n}`)
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(children.map((c) => c.path)).toEqual(expected);
    expect(expected.indexOf('big/\uFF21')).toBeLessThan(expected.indexOf('big/\u{1F600}'));
    const byPath = new Map(children.map((c) => [c.path, c]));
    expect(byPath.get('big/f0699')).toMatchObject({ type: 'file', size: 699 });
    expect(byPath.get('big/f0007')).toMatchObject({ type: 'file', mode: 0o751, size: 7 });
    expect(byPath.get('big/sub')).toMatchObject({ type: 'directory', size: 0 });
    expect(byPath.get('big/link')).toMatchObject({ type: 'symlink', linkname: 'f0001' });
  });

  it('lets the event loop turn between the chunks of a large directory', async () => {
    const { root, tree } = contextWith('turns');
    for (let i = 0; i < 1000; i++) writeFileSync(join(root, `f${i}`), '');
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    try {
      expect(await tree.children('')).toHaveLength(1000);
    } finally {
      ticking = false;
    }
    // Four chunks of lstats: the loop turned between them (a single call for all of them would not let it).
    expect(turns).toBeGreaterThanOrEqual(3);
  });

  it("lists, matches, resolves and reads names that are not UTF-8 by their bytes, with strata's escapes", async () => {
    const { root, tree } = contextWith('latin1', 'd\udce9/skip*\n'); // a .dockerignore in Latin-1, as the builder decodes it
    const bytes = (path: string) => Buffer.from(`${root}/${path}`, 'latin1');
    mkdirSync(bytes('d\xe9'));
    writeFileSync(bytes('d\xe9/ok'), 'ok');
    writeFileSync(bytes('d\xe9/caf\xe9'), 'latin-1');
    writeFileSync(bytes('d\xe9/caf\xe8'), 'another'); // the same name to Node (U+FFFD), not to strata
    writeFileSync(bytes('d\xe9/skip\xff'), 'excluded');
    symlinkSync(Buffer.from('caf\xe9', 'latin1'), bytes('d\xe9/link'));
    const dir = 'd\udce9';
    expect((await tree.children('')).map((c) => c.path)).toEqual([dir]);
    const listed = await tree.children(dir);
    expect(listed.map((c) => c.path)).toEqual([`${dir}/caf\udce8`, `${dir}/caf\udce9`, `${dir}/link`, `${dir}/ok`]);
    expect(listed.find((c) => c.type === 'symlink')?.linkname).toBe('caf\udce9');
    // Wildcards match them, and reach below a directory so named; .dockerignore applies to them too.
    expect(await tree.match('d*/caf*')).toEqual([`${dir}/caf\udce8`, `${dir}/caf\udce9`]);
    expect(await tree.match(`${dir}/*`)).toEqual([`${dir}/caf\udce8`, `${dir}/caf\udce9`, `${dir}/link`, `${dir}/ok`]);
    // Resolved through the symlink, and read by their bytes.
    const node = (await tree.resolve(`${dir}/link`))!;
    expect(node.path).toBe(`${dir}/caf\udce9`);
    const chunks: Buffer[] = [];
    for await (const chunk of tree.read(node)) chunks.push(Buffer.from(chunk));
    expect(Buffer.concat(chunks).toString()).toBe('latin-1');
    expect(await tree.resolve(`${dir}/skip\udcff`)).toBeUndefined();
  });

  it('reads a file in chunks as the listing saw it, and refuses a FIFO put in its place without waiting on it', async () => {
    const { root, tree } = contextWith('reads');
    const content = Buffer.alloc(2.5 * 1024 * 1024);
    for (let i = 0; i < content.length; i++) content[i] = (i * 31) & 0xff;
    writeFileSync(join(root, 'big'), content);
    writeFileSync(join(root, 'swapped'), 'a file when listed');
    const big = (await tree.resolve('big'))!;
    const chunks: Buffer[] = [];
    for await (const chunk of tree.read(big)) chunks.push(Buffer.from(chunk));
    expect(chunks.length).toBe(3);
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
    const swapped = (await tree.resolve('swapped'))!;
    rmSync(join(root, 'swapped'));
    execFileSync('mkfifo', [join(root, 'swapped')]); // no writer will ever come: a blocking open would hang
    const read = async () => {
      for await (const _ of tree.read(swapped)) {
        // nothing arrives
      }
    };
    await expect(read()).rejects.toThrow(/swapped" is no longer a regular file/);
  });

  it("refuses a .dockerignore Docker's matcher refuses, naming it: a lone ! and a malformed pattern (BuildKit's testDockerignoreInvalid)", () => {
    const dir = join(work, 'invalid-ignore');
    mkdirSync(dir);
    for (const [text, message] of [
      ['!\n', /^\.dockerignore: illegal exclusion pattern: "!"$/],
      ['keep\n  !  \n', /^\.dockerignore: illegal exclusion pattern: "!"$/],
      ['[\n', /^\.dockerignore: bad pattern "\["/],
      ['!a[b-\n', /^\.dockerignore: bad pattern "a\[b-"/],
    ] as const) {
      writeFileSync(join(dir, '.dockerignore'), text);
      expect(() => readIgnorePatterns([join(dir, '.dockerignore')]), text).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) }));
    }
    writeFileSync(join(dir, '.dockerignore'), 'ba*\nDockerfile\n!bay\n.dockerignore\n**/x[0-9]\n');
    expect(readIgnorePatterns([join(dir, '.dockerignore')])).toEqual(['ba*', 'Dockerfile', '!bay', '.dockerignore', '**/x[0-9]']);
  });

  it('matches a name that is U+FFFD itself', async () => {
    const { root, tree } = contextWith('replacement');
    writeFileSync(join(root, 'x\uFFFD'), 'ok');
    expect(await tree.match('x*')).toEqual(['x\uFFFD']);
    expect((await tree.children('')).map((c) => c.path)).toEqual(['x\uFFFD']);
  });

  it("expands wildcards as BuildKit's copy does: Go's filepath.Match a level at a time, in the walk's order", async () => {
    const { root, tree } = contextWith('wildcards', 'ignored*\n');
    for (const dir of ['a', 'a-b', 'a/deep', 'real', 'real/sub']) mkdirSync(join(root, dir));
    for (const file of ['x.txt', 'a/x.txt', 'a-b/x.txt', 'a/deep/x.txt', 'real/r.txt', 'real/sub/s.txt', '{p,q}.txt', 'p.txt', '!n', 'n', 'ignored.txt']) writeFileSync(join(root, file), file);
    symlinkSync('real', join(root, 'link'));
    // `**` is `*` twice: one level, never a globstar; the walk takes `a` before `a-b`, as a byte sort of the paths would not.
    expect(await tree.match('**/x.txt')).toEqual(['a/x.txt', 'a-b/x.txt']);
    expect(await tree.match('*/*/x.txt')).toEqual(['a/deep/x.txt']);
    // Braces are no alternation, and `!` no negation in a class (Go's `^` is).
    expect(await tree.match('{p,q}.tx?')).toEqual(['{p,q}.txt']);
    expect(await tree.match('[!]n')).toEqual(['!n']);
    expect(await tree.match('[^!a]')).toEqual(['n']);
    expect(await tree.match('\\{p*')).toEqual(['{p,q}.txt']);
    // A symlink before the first wildcard leads to its directory; one a wildcard reaches is not descended.
    expect(await tree.match('link/*.txt')).toEqual(['real/r.txt']);
    expect(await tree.match('li*/r.txt')).toEqual([]);
    // .dockerignore holds for what a wildcard finds.
    expect(await tree.match('*.txt')).toEqual(['p.txt', 'x.txt', '{p,q}.txt']);
    // A backslash escapes only once a wildcard came (as BuildKit tells one); before, it is part of the name.
    writeFileSync(join(root, 'back\\slash'), 'literal');
    expect(await tree.match('back\\slash')).toEqual(['back\\slash']);
    expect(await tree.match('a\\*')).toEqual([]);
    expect(await tree.match('a*/x\\.txt')).toEqual(['a/x.txt', 'a-b/x.txt']);
    // A class that cannot take a `/` is matched a level at a time: `x.tx[t]` reads the root alone. One that
    // can (`[^a]`), or holds one (`[^/]`), is matched against every path below.
    const read: string[] = [];
    const children = tree.children.bind(tree);
    tree.children = async (dir: string) => {
      read.push(dir);
      return children(dir);
    };
    expect(await tree.match('x.tx[t]')).toEqual(['x.txt']);
    expect(read).toEqual(['']);
    expect(await tree.match('a[^/]b/x.txt')).toEqual(['a-b/x.txt']);
    expect(read.length).toBeGreaterThan(2);
    await expect(tree.match('a[')).rejects.toThrow(/bad pattern "a\["/);
  });
});
