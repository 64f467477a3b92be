/**
 * Layer-format corner cases, one named test each, and the weak spots of common tar libraries that strata
 * must not share (binary PAX values, big ids, 64-bit times, errors inside entry bodies).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer, digestLayer, mergedListing, packDirectory, readLayer, type Entry } from '@strata/core';
import { getXattr, lutimens, setXattr } from './helpers/host.js';
import { BINARY_XATTR, CAP_V2, CAP_V3 } from './helpers/fixtures.js';
import { needs } from './helpers/oracle.js';
import { rawTar, sha256, type RawEntry } from './helpers/raw-tar.js';
import { snapshotTree } from './helpers/snapshot.js';

const file = (name: string, data: string, extra: Partial<RawEntry> = {}): RawEntry => ({ name, data, ...extra });
const dir = (name: string): RawEntry => ({ name: `${name}/`, type: '5', mode: 0o755 });

async function entriesOf(layer: string): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const { entry } of readLayer(layer)) out.push(entry);
  return out;
}

describe.skipIf(!needs('root', 'gnu-tar'))('layer format corner cases', () => {
  let work: string;
  let n = 0;
  const fresh = () => join(work, `case-${++n}`);
  const layerFile = (bytes: Buffer) => {
    const path = join(work, `layer-${++n}.tar`);
    writeFileSync(path, bytes);
    return path;
  };
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-format-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('an opaque marker that comes after its siblings still applies first', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([dir('d'), file('d/lower', 'l')])), target);
    await applyLayer(layerFile(rawTar([dir('d'), file('d/a', 'a'), file('d/z', 'z'), file('d/.wh..wh..opq', '')])), target);
    expect([...snapshotTree(target).keys()].sort()).toEqual(['d', 'd/a', 'd/z']);
  });

  it('a whiteout never removes an entry added by the same layer', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([file('f', 'mine'), file('.wh.f', '')])), target);
    expect(readFileSync(join(target, 'f'), 'utf8')).toBe('mine');
  });

  for (const bare of ['.wh.', '.wh..', '.wh...']) {
    it(`a bare ${JSON.stringify(bare)} whiteout is refused`, async () => {
      await expect(applyLayer(layerFile(rawTar([dir('d'), file(`d/${bare}`, '')])), fresh())).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
    });
  }

  it('a whiteout whose parent is a file deletes nothing (nothing can stand below a file)', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([file('f', 'file')])), target);
    await applyLayer(layerFile(rawTar([file('f/.wh.x', '')])), target);
    expect(readFileSync(join(target, 'f'), 'utf8')).toBe('file');
  });

  it('a target named by an unnormalised path (./, .., a trailing slash) applies the same as its plain name', async () => {
    const layer = layerFile(rawTar([dir('d'), file('d/f', 'one'), file('d/f', 'two'), { name: 'd/h', type: '1', linkname: 'd/f' }]));
    for (const existing of [false, true]) {
      const plain = fresh();
      mkdirSync(join(work, 'detour'), { recursive: true });
      if (existing) mkdirSync(plain);
      await applyLayer(layer, `${work}/./detour/../${plain.slice(work.length + 1)}/`);
      expect(readFileSync(join(plain, 'd/h'), 'utf8')).toBe('two');
      expect(lstatSync(join(plain, 'd/h')).ino).toBe(lstatSync(join(plain, 'd/f')).ino);
    }
  });

  it('duplicate paths in one layer: the last one wins', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([file('p', 'first'), file('p', 'second'), file('q', 'file'), dir('q'), file('q/child', 'c')])), target);
    expect(readFileSync(join(target, 'p'), 'utf8')).toBe('second');
    expect(statSync(join(target, 'q')).isDirectory()).toBe(true);
    expect((await mergedListing([join(work, `layer-${n}.tar`)])).map((e) => e.path)).toEqual(['p', 'q', 'q/child']);
  });

  it('a hardlink that comes before its target', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([{ name: 'early', type: '1', linkname: 'later' }, file('later', 'content')])), target);
    expect(lstatSync(join(target, 'early')).ino).toBe(lstatSync(join(target, 'later')).ino);
  });

  it('absolute names and hardlink targets start at the layer root, as in distroless layers; .. is refused', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([{ name: '/', type: '5', mode: 0o755 }, dir('/usr'), file('/usr/t', 'x'), { name: 'h', type: '1', linkname: '/usr/t' }])), target);
    expect(lstatSync(join(target, 'h')).ino).toBe(lstatSync(join(target, 'usr/t')).ino);
    await expect(applyLayer(layerFile(rawTar([file('t', 'x'), { name: 'h', type: '1', linkname: '/../t' }])), fresh())).rejects.toMatchObject({
      code: 'UNSAFE_PATH',
    });
  });

  it('./-prefixed names and an entry naming the root', async () => {
    const target = fresh();
    const layer = layerFile(rawTar([{ name: './', type: '5', mode: 0o710, mtime: 1_234_567_890 }, dir('./a'), file('.//a/./b', 'b'), file('./c', 'c')]));
    await applyLayer(layer, target);
    expect([...snapshotTree(target).keys()].sort()).toEqual(['a', 'a/b', 'c']);
    expect(statSync(target).mode & 0o7777).toBe(0o710);
    expect(statSync(target).mtimeMs).toBe(1_234_567_890_000);
    expect((await entriesOf(layer)).map((e) => e.path)).toEqual(['.', 'a', 'a/b', 'c']);
  });

  it('binary xattr values and security.capability v2 and v3 round trip byte for byte', async () => {
    const src = fresh();
    mkdirSync(src);
    for (const [name, key, value] of [['bin', 'user.binary', BINARY_XATTR], ['v2', 'security.capability', CAP_V2], ['v3', 'security.capability', CAP_V3]] as const) {
      writeFileSync(join(src, name), name);
      setXattr(join(src, name), key, value);
    }
    const layer = join(work, 'xattrs.tar');
    await packDirectory(src, layer);
    const read = new Map((await entriesOf(layer)).map((e) => [e.path, e.xattrs]));
    expect(Buffer.from(read.get('bin')!.get('user.binary')!)).toEqual(BINARY_XATTR);
    // The kernel may store v3 as given; compare with what it reports for the source.
    expect(Buffer.from(read.get('v2')!.get('security.capability')!)).toEqual(Buffer.from(getXattr(join(src, 'v2'), 'security.capability')!));
    expect(Buffer.from(read.get('v3')!.get('security.capability')!)).toEqual(Buffer.from(getXattr(join(src, 'v3'), 'security.capability')!));
    const target = fresh();
    await applyLayer(layer, target);
    expect(Buffer.from(getXattr(join(target, 'bin'), 'user.binary')!)).toEqual(BINARY_XATTR);
    expect(Buffer.from(getXattr(join(target, 'v3'), 'security.capability')!)).toEqual(Buffer.from(getXattr(join(src, 'v3'), 'security.capability')!));
  });

  it.skipIf(!needs('strace'))('xattr names are listed alike where the kernel refuses listxattrat (a seccomp filter: ENOSYS, EPERM)', () => {
    // lstatBatch lists each entry's xattrs relative to its directory (listxattrat, Linux 6.13) and goes back
    // to llistxattr by path where that call is refused: an older kernel, or a seccomp profile that does not
    // know it. A small C program installs such a filter and runs node under it.
    const src = fresh();
    mkdirSync(join(src, 'dir'), { recursive: true });
    writeFileSync(join(src, 'plain'), 'p');
    writeFileSync(join(src, 'tagged'), 't');
    setXattr(join(src, 'tagged'), 'user.one', Buffer.from('1'));
    setXattr(join(src, 'tagged'), 'user.two', Buffer.from('2'));
    setXattr(join(src, 'dir'), 'trusted.mark', Buffer.from('d'));
    execFileSync('ln', ['-s', 'tagged', join(src, 'link')]);
    const filter = join(work, 'refuse-listxattrat');
    writeFileSync(
      `${filter}.c`,
      `#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
int main(int argc, char **argv) {
  struct sock_filter code[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 465, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (atoi(argv[1]) & SECCOMP_RET_DATA)),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog program = { sizeof code / sizeof code[0], code };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program)) return perror("seccomp"), 1;
  execvp(argv[2], argv + 2);
  return perror("exec"), 1;
}
`,
    );
    execFileSync('cc', ['-o', filter, `${filter}.c`]);
    const script = `import { lstatBatch } from '@strata/core';
      const b = lstatBatch(process.argv[1]);
      console.log(JSON.stringify(b.names.map((name, i) => [name, b.xattrs[i] ?? []]).sort()));`;
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: '' };
    const node = [process.execPath, '--input-type=module', '-e', script, src];
    const list = (...prefix: string[]) => {
      const log = join(work, `listing-${++n}.strace`);
      const out = execFileSync('strace', ['-f', '-qq', '-o', log, '-e', 'trace=llistxattr', ...prefix, ...node], { encoding: 'utf8', env });
      return { listing: JSON.parse(out) as Array<[string, string[]]>, byPath: readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('llistxattr(') && l.includes(src)).length };
    };
    const direct = list();
    expect(direct.listing).toEqual([['dir', ['trusted.mark']], ['link', []], ['plain', []], ['tagged', ['user.one', 'user.two']]]);
    expect(direct.byPath).toBe(0);
    for (const errno of ['38', '1']) {
      const refused = list(filter, errno);
      expect(refused.listing).toEqual(direct.listing);
      expect(refused.byPath).toBe(4); // every entry, by path
    }
  });

  for (const format of ['plain', 'overlay'] as const) {
    it(`overlay xattrs inside a layer are not trusted as markers (${format})`, async () => {
      const target = fresh();
      mkdirSync(target);
      mkdirSync(join(target, 'd'));
      writeFileSync(join(target, 'd', 'lower'), 'kept');
      const warnings: string[] = [];
      const layer = rawTar([
        { name: 'd/', type: '5', mode: 0o755, pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.user.overlay.opaque': 'y' } },
        file('d/f', 'x', { pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc' } }),
      ]);
      await applyLayer(layerFile(layer), target, { layout: format, onWarning: (m) => warnings.push(m) });
      expect(getXattr(join(target, 'd'), 'trusted.overlay.opaque')).toBeUndefined();
      expect(getXattr(join(target, 'd'), 'user.overlay.opaque')).toBeUndefined();
      expect(getXattr(join(target, 'd', 'f'), 'trusted.overlay.redirect')).toBeUndefined();
      expect(readFileSync(join(target, 'd', 'lower'), 'utf8')).toBe('kept');
      expect(warnings).toHaveLength(3);
    });
  }

  it('uid/gid above 2,097,151 and mtimes before 1970 and after 2038 round trip (and GNU tar agrees)', async () => {
    const src = fresh();
    mkdirSync(src);
    const cases = [
      { name: 'big', uid: 3_000_000, gid: 2_097_152, time: { sec: 1_700_000_000, nsec: 0 } },
      { name: 'old', uid: 1, gid: 1, time: { sec: -1_000_001, nsec: 250_000_000 } },
      { name: 'new', uid: 2, gid: 2, time: { sec: 4_102_444_800, nsec: 999_999_999 } },
    ];
    for (const c of cases) {
      writeFileSync(join(src, c.name), c.name);
      execFileSync('chown', [`${c.uid}:${c.gid}`, join(src, c.name)]);
      lutimens(join(src, c.name), c.time, c.time);
    }
    const layer = join(work, 'ranges.tar');
    await packDirectory(src, layer);
    const entries = new Map((await entriesOf(layer)).map((e) => [e.path, e]));
    for (const c of cases) expect(entries.get(c.name)).toMatchObject({ uid: c.uid, gid: c.gid, mtime: c.time });
    const target = fresh();
    await applyLayer(layer, target);
    for (const c of cases) {
      const st = lstatSync(join(target, c.name), { bigint: true });
      expect([Number(st.uid), Number(st.gid), st.mtimeNs]).toEqual([c.uid, c.gid, BigInt(c.time.sec) * 1_000_000_000n + BigInt(c.time.nsec)]);
    }
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', layer]).toString();
    expect(listing).toContain('3000000/2097152');
  });

  it('Unicode names that differ only by normalisation stay distinct', async () => {
    const src = fresh();
    mkdirSync(src);
    writeFileSync(join(src, '\u00e9'), 'nfc');
    writeFileSync(join(src, 'e\u0301'), 'nfd');
    const layer = join(work, 'unicode.tar');
    await packDirectory(src, layer);
    const target = fresh();
    await applyLayer(layer, target);
    expect(readFileSync(join(target, '\u00e9'), 'utf8')).toBe('nfc');
    expect(readFileSync(join(target, 'e\u0301'), 'utf8')).toBe('nfd');
  });

  it('trailing bytes after the end-of-archive blocks are still hashed', async () => {
    const bytes = Buffer.concat([rawTar([file('a', 'a')]), Buffer.alloc(4096), Buffer.from('trailing garbage')]);
    const layer = layerFile(bytes);
    expect((await digestLayer(layer)).diffID).toBe(sha256(bytes));
    const result = await applyLayer(layer, fresh());
    expect(result.diffID).toBe(sha256(bytes));
  });

  it('a large layer with trailing bytes is digested alike by its own hashing thread and, without /proc, from its chunks', () => {
    // Past the size hashed on a thread: digestLayer's thread reopens the file through /proc/self/fd, and
    // hashes it whole while the parse seeks past the body and counts the trailing bytes.
    const bytes = Buffer.concat([rawTar([file('big', 'x'.repeat(9 * 1024 * 1024))]), Buffer.from('trailing garbage')]);
    const layer = layerFile(bytes);
    const script = `import { digestLayer } from '@strata/core'; process.stdout.write((await digestLayer(process.argv[1])).diffID);`;
    const node = [process.execPath, '--input-type=module', '-e', script, layer];
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: '' };
    const withProc = execFileSync(node[0]!, node.slice(1), { encoding: 'utf8', env });
    const withoutProc = execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'umount -l /proc && exec "$@"', 'sh', ...node], { encoding: 'utf8', env });
    expect(withProc).toBe(sha256(bytes));
    expect(withoutProc).toBe(sha256(bytes));
  });

  it('sockets in a source tree are skipped with a warning', async () => {
    const src = fresh();
    mkdirSync(src);
    writeFileSync(join(src, 'file'), 'f');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(src, 'sock'), resolve));
    try {
      const warnings: string[] = [];
      await packDirectory(src, join(work, 'sock.tar'), { onWarning: (_m, p) => warnings.push(p) });
      expect(warnings).toEqual(['sock']);
      expect((await entriesOf(join(work, 'sock.tar'))).map((e) => e.path)).toEqual(['file']);
    } finally {
      server.close();
    }
  });

  it('an error inside an entry body reaches the consumer (never swallowed)', async () => {
    const truncated = rawTar([file('a', 'x'.repeat(10_000))]).subarray(0, 4096);
    const consume = async () => {
      for await (const { body } of readLayer(layerFile(truncated))) for await (const _ of body) void _;
    };
    await expect(consume()).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
  });

  it('readers that seek past content (no hashing) still refuse truncated layers', async () => {
    const { TarLayer } = await import('@strata/core');
    const full = rawTar([file('a', 'x'.repeat(5000)), file('b', 'y'.repeat(3000))]);
    for (const cut of [512 + 1024, full.length - 1024 - 512]) {
      const layer = layerFile(full.subarray(0, cut));
      await expect(mergedListing([layer])).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
      await expect(TarLayer.open(layer)).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
    }
    const whole = layerFile(full);
    expect((await mergedListing([whole])).map((e) => e.path)).toEqual(['a', 'b']);
    const indexed = await TarLayer.open(whole);
    expect(Buffer.from(indexed.readAll('b')).toString()).toBe('y'.repeat(3000));
    // Read in pieces: a range inside the file, its end, and past it.
    const reader = indexed.openContent('a');
    const piece = Buffer.alloc(4096);
    expect([reader.read(piece, 0), reader.read(piece, 4000), reader.read(piece, 5000)]).toEqual([4096, 1000, 0]);
    expect(piece.subarray(0, 1000).toString()).toBe('x'.repeat(1000));
    reader.close();
    // A tarball cut short after it was indexed: the content it no longer holds is LAYER_FORMAT, not zeros.
    truncateSync(whole, indexed.contentRange('b')!.offset + 100);
    const cut = indexed.openContent('b');
    expect(() => cut.read(Buffer.alloc(3000), 0)).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT' }));
    cut.close();
  });

  it('reads GNU long names and long link names (L/K records)', async () => {
    const long = `${'n'.repeat(150)}/${'m'.repeat(150)}`;
    const layer = layerFile(
      rawTar([
        { name: '././@LongLink', type: 'L', data: `${long}\0`, gnu: true },
        { name: 'short', type: '0', data: 'x', gnu: true },
        { name: '././@LongLink', type: 'K', data: `${'t'.repeat(200)}\0`, gnu: true },
        { name: 'sym', type: '2', linkname: 'ignored', gnu: true },
      ]),
    );
    const entries = await entriesOf(layer);
    expect(entries.map((e) => [e.path, e.linkname])).toEqual([[long, undefined], ['sym', 't'.repeat(200)]]);
  });

  it('entries and bodies are the same whatever the chunking of a streamed input (records and headers across chunk edges)', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}`;
    const bytes = rawTar([
      { name: 'pax_global_header', type: 'g', data: '23 comment=hello there\n' },
      { name: 'dir/', type: '5', mode: 0o755 },
      { name: 'x', pax: { path: long, mtime: '1700000000.123456789', 'SCHILY.xattr.user.bin': Buffer.from([0, 0xff, 10, 0x3d]) }, data: 'p'.repeat(70_000) },
      { name: '././@LongLink', type: 'L', data: `${long}.2\0`, gnu: true },
      { name: 'short', data: 'gnu-named', gnu: true },
      { name: 'link', type: '1', linkname: 'short' },
      { name: 'empty', data: '' },
      { name: 'odd', data: 'q'.repeat(513) },
    ]);
    /**
     * Entries with their bodies' hashes, and the diffID. With `take`, a body the reader holds whole is taken
     * (apply's path for small files), checked to be taken once only and then not iterable, and counted.
     */
    const readCounting = async (input: Uint8Array | AsyncIterable<Uint8Array>, take: boolean, viaTake = false) => {
      const out: unknown[] = [];
      let taken = 0;
      let promised = 0;
      const reader = readLayer(input);
      // Through `entries().take()` (apply's path) when asked, else `for await`.
      async function* iterate() {
        if (!viaTake) return yield* reader;
        const entries = reader.entries();
        for (;;) {
          let next = entries.take();
          if (next instanceof Promise) {
            promised++;
            next = await next;
          }
          if (next === undefined) return;
          yield next;
        }
      }
      for await (const { entry, body } of iterate()) {
        const hash = createHash('sha256');
        const whole = take ? body.takeBuffered() : undefined;
        if (whole !== undefined) {
          taken++;
          hash.update(whole);
          expect(() => body.takeBuffered()).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT' }));
          await expect(body[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
        } else {
          for await (const chunk of body) hash.update(chunk);
        }
        out.push({ ...entry, xattrs: [...entry.xattrs].map(([k, v]) => [k, Buffer.from(v).toString('hex')]), body: hash.digest('hex') });
      }
      return { result: { out, diffID: (await reader.digests()).diffID }, taken, promised };
    };
    const read = async (input: Uint8Array | AsyncIterable<Uint8Array>) => (await readCounting(input, false)).result;
    async function* chunked(size: number): AsyncGenerator<Uint8Array> {
      for (let at = 0; at < bytes.length; at += size) yield Uint8Array.from(bytes.subarray(at, at + size));
    }
    const whole = await read(bytes);
    expect(whole.out.map((e) => (e as Entry).path)).toEqual(['dir', long, `${long}.2`, 'link', 'empty', 'odd']);
    expect(whole.out[1]).toMatchObject({ mtime: { sec: 1_700_000_000, nsec: 123_456_789 }, xattrs: [['user.bin', '00ff0a3d']], size: 70_000 });
    for (const size of [1, 7, 100, 511, 512, 513, 4096, 65_539]) expect(await read(chunked(size)), `chunks of ${size}`).toEqual(whole);

    // Bodies taken whole where the reader holds them, else iterated: the same bodies and diffID.
    const all = await readCounting(bytes, true);
    expect(all.result).toEqual(whole);
    expect(all.taken).toBe(whole.out.length); // one chunk holds every body
    for (const size of [1, 100, 513, 65_539]) {
      const { result, taken } = await readCounting(chunked(size), true);
      expect(result, `chunks of ${size}`).toEqual(whole);
      expect(taken, `chunks of ${size}`).toBeLessThan(whole.out.length);
    }

    // Taken one by one as apply takes them: the same, and from one buffer only the first entry (the input
    // opening) and the end (the trailing bytes drained, the input closed) wait for a promise.
    const viaTake = await readCounting(bytes, true, true);
    expect(viaTake.result).toEqual(whole);
    expect(viaTake.promised).toBe(2);
    for (const size of [1, 7, 512, 513, 65_539]) {
      const { result, promised } = await readCounting(chunked(size), true, true);
      expect(result, `chunks of ${size}, taken`).toEqual(whole);
      if (size < 1024) expect(promised, `chunks of ${size}, taken`).toBeGreaterThan(whole.out.length); // headers wait for reads
    }

  });

  it('entries taken one by one: stopping early or failing closes the input, and later takes give nothing', async () => {
    const bytes = rawTar([file('a', 'x'.repeat(10)), file('b', 'y'), file('c', 'z')]);
    const stopped = readLayer(bytes);
    const entries = stopped.entries();
    expect((await entries.take())?.entry.path).toBe('a');
    await entries.return();
    expect(await entries.take()).toBeUndefined();
    await expect(stopped.digests()).rejects.toMatchObject({ code: 'LAYER_FORMAT' }); // never read to the end

    // b's header (after a's header and its one block of data) corrupted: its checksum fails.
    const corrupt = Uint8Array.from(bytes);
    corrupt[1024 + 1] = corrupt[1024 + 1]! ^ 1;
    const failing = readLayer(corrupt).entries();
    expect((await failing.take())?.entry.path).toBe('a');
    await expect(Promise.resolve().then(() => failing.take())).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
    expect(await failing.take()).toBeUndefined();

    // Asked again before the last answer came (as `next()` may be), from an input in chunks whose headers
    // wait for reads: each take in turn, none given a read meant for another.
    async function* chunks() {
      for (let at = 0; at < bytes.length; at += 100) yield bytes.subarray(at, at + 100);
    }
    const eager = readLayer(chunks()).entries();
    const answers = await Promise.all([eager.next(), eager.next(), eager.next(), eager.next()]);
    expect(answers.map((answer) => (answer.done ? 'done' : answer.value.entry.path))).toEqual(['a', 'b', 'c', 'done']);

    // Read to the end: the digests are the layer's.
    const finished = readLayer(bytes);
    const all = finished.entries();
    const paths: string[] = [];
    for (let next = await all.take(); next !== undefined; next = await all.take()) paths.push(next.entry.path);
    expect(paths).toEqual(['a', 'b', 'c']);
    expect((await finished.digests()).diffID).toBe(sha256(bytes));
  });

  it('an apply fed in any chunking writes the tree the whole input gives (small files whole, large ones streamed)', async () => {
    const bytes = rawTar([
      { name: 'dir/', type: '5', mode: 0o755 },
      { name: 'dir/big', data: 'b'.repeat(70_000), mode: 0o640 },
      { name: 'dir/small', data: 'small file\n', mode: 0o600 },
      { name: 'dir/empty', data: '' },
      { name: 'dir/odd', data: 'q'.repeat(513) },
      { name: 'dir/hard', type: '1', linkname: 'dir/small' },
      { name: 'dir/sym', type: '2', linkname: 'small' },
    ]);
    async function* chunked(size: number): AsyncGenerator<Uint8Array> {
      for (let at = 0; at < bytes.length; at += size) yield Uint8Array.from(bytes.subarray(at, at + size));
    }
    const applied = async (name: string, input: Uint8Array | AsyncIterable<Uint8Array>) => {
      const dir = join(work, name);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      const { diffID } = await applyLayer(input, dir);
      return { diffID, tree: snapshotTree(dir) };
    };
    const expected = await applied('chunked-whole', bytes);
    expect(readFileSync(join(work, 'chunked-whole', 'dir/big'), 'utf8')).toBe('b'.repeat(70_000));
    expect(statSync(join(work, 'chunked-whole', 'dir/hard')).ino).toBe(statSync(join(work, 'chunked-whole', 'dir/small')).ino);
    for (const size of [1, 511, 513, 4096, 65_539]) expect(await applied(`chunked-${size}`, chunked(size)), `chunks of ${size}`).toEqual(expected);
  });

  it('packing is deterministic: twice, and after a copy with new inode numbers', async () => {
    const src = fresh();
    mkdirSync(join(src, 'a/b'), { recursive: true });
    for (let i = 0; i < 50; i++) writeFileSync(join(src, 'a', `f${i}`), `content ${i}\n`.repeat(i));
    execFileSync('ln', [join(src, 'a/f1'), join(src, 'a/b/hard')]);
    const first = await packDirectory(src, join(work, 'det1.tar'));
    const second = await packDirectory(src, join(work, 'det2.tar'));
    const copy = fresh();
    execFileSync('cp', ['-a', src, copy]);
    expect(lstatSync(join(copy, 'a/f1')).ino).not.toBe(lstatSync(join(src, 'a/f1')).ino);
    const third = await packDirectory(copy, join(work, 'det3.tar'));
    expect(second.diffID).toBe(first.diffID);
    expect(third.diffID).toBe(first.diffID);
    const sum = execFileSync('sha256sum', [join(work, 'det1.tar')]).toString().split(' ')[0];
    expect(first.diffID).toBe(`sha256:${sum}`);
    for (const compression of ['gzip', 'zstd'] as const) {
      const a = await packDirectory(src, join(work, `det-a.${compression}`), { compression });
      const b = await packDirectory(copy, join(work, `det-b.${compression}`), { compression });
      expect(a.digest).toBe(b.digest);
      expect(a.diffID).toBe(first.diffID);
      expect((await digestLayer(join(work, `det-a.${compression}`))).digest).toBe(a.digest);
    }
  });

  it('a packed layer’s descriptor gives the size and digests of the blob as written, for every compression and hasher', async () => {
    const src = fresh();
    mkdirSync(src);
    for (let i = 0; i < 20; i++) writeFileSync(join(src, `f${i}`), Buffer.alloc(150_000 * i, i)); // several 1 MiB chunks
    for (const compression of ['none', 'gzip', 'zstd'] as const) {
      for (const parallelHash of [true, false]) {
        const out = join(work, `desc-${compression}-${parallelHash}`);
        const d = await packDirectory(src, out, { compression, parallelHash });
        const blob = readFileSync(out);
        const plain = (await digestLayer(out)).diffID;
        expect(d).toMatchObject({ size: blob.length, digest: sha256(blob), diffID: plain, compression });
        if (compression === 'none') expect(d.uncompressedSize).toBe(blob.length);
        else expect(d.uncompressedSize).toBeGreaterThan(blob.length);
      }
    }
  });

  it('a pack whose writes fail (disk full) rejects with the write error and leaves no file, with either hasher', async () => {
    const src = fresh();
    mkdirSync(src);
    for (let i = 0; i < 8; i++) writeFileSync(join(src, `f${i}`), Buffer.alloc(400_000, i));
    const full = fresh();
    mkdirSync(full);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', full]);
    try {
      for (const parallelHash of [true, false]) {
        await expect(packDirectory(src, join(full, 'out.tar'), { parallelHash })).rejects.toMatchObject({ code: 'ENOSPC' });
        expect(readdirSync(full)).toEqual([]);
      }
    } finally {
      execFileSync('umount', [full]);
    }
  });

  it('file content from a host path: a range from an offset, and a file shorter than its entry fails, with either hasher', async () => {
    const { writeEntries: writeItems } = await import('@strata/core');
    const source = join(work, 'range-source');
    writeFileSync(source, 'skip-me|wanted content|tail');
    const entry = (path: string, size: number): Entry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: { sec: 0, nsec: 0 }, xattrs: new Map() });
    for (const parallelHash of [true, false]) {
      const out = join(work, `range-${parallelHash}.tar`);
      await writeItems([{ entry: entry('r', 14), content: { kind: 'path', path: source, offset: 8 } }, { entry: entry('whole', 27), content: { kind: 'path', path: source } }], out, { parallelHash });
      const target = fresh();
      await applyLayer(out, target);
      expect(readFileSync(join(target, 'r'), 'utf8')).toBe('wanted content');
      expect(readFileSync(join(target, 'whole'), 'utf8')).toBe('skip-me|wanted content|tail');

      // Large (copied by the kernel) and small (read into a buffer): both are checked.
      for (const size of [400_000, 100]) {
        const short = join(work, `short-${parallelHash}-${size}.tar`);
        await expect(writeItems([{ entry: entry('s', size), content: { kind: 'path', path: source } }], short, { parallelHash })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', path: source });
        expect(() => statSync(short)).toThrow();
      }
    }
  });

  it('large files are copied by the kernel on one filesystem (copy_file_range) and across two (sendfile): the same bytes, hashed as written', async () => {
    const { writeEntries: writeItems } = await import('@strata/core');
    const content = Buffer.alloc(3_000_123);
    for (let i = 0; i < content.length; i++) content[i] = (i * 7919) % 251;
    const entry = (path: string, size: number): Entry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: { sec: 0, nsec: 0 }, xattrs: new Map() });
    const tmpfs = fresh();
    mkdirSync(tmpfs);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', tmpfs]);
    try {
      const blobs: Buffer[] = [];
      for (const dir of [work, tmpfs]) {
        const source = join(dir, 'big-source');
        writeFileSync(source, content);
        const out = join(work, `big-${blobs.length}.tar`);
        const items = [
          { entry: entry('whole', content.length), content: { kind: 'path' as const, path: source } },
          { entry: entry('small', 10), content: { kind: 'path' as const, path: source, offset: 5 } },
          { entry: entry('range', 2_000_000), content: { kind: 'path' as const, path: source, offset: 777_777 } },
        ];
        const d = await writeItems(items, out, { parallelHash: true });
        const blob = readFileSync(out);
        expect(d).toMatchObject({ size: blob.length, digest: sha256(blob), diffID: sha256(blob) });
        blobs.push(blob);
      }
      expect(blobs[0]!.equals(blobs[1]!)).toBe(true);
      const target = fresh();
      await applyLayer(join(work, 'big-0.tar'), target);
      expect(readFileSync(join(target, 'whole')).equals(content)).toBe(true);
      expect(readFileSync(join(target, 'small')).equals(content.subarray(5, 15))).toBe(true);
      expect(readFileSync(join(target, 'range')).equals(content.subarray(777_777, 2_777_777))).toBe(true);

      // Which way the bytes went: across file systems copy_file_range is refused (EXDEV) once, not once a
      // file, and the kernel copies by sendfile, with no read of the source into a buffer.
      if (needs('strace')) {
        const logs = join(work, 'cross-strace');
        mkdirSync(logs);
        const script = `import { writeEntries } from '@strata/core';
          const [source, out, size] = process.argv.slice(1);
          const entry = (path, size) => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: { sec: 0, nsec: 0 }, xattrs: new Map() });
          const items = [
            { entry: entry('whole', Number(size)), content: { kind: 'path', path: source } },
            { entry: entry('range', 2_000_000), content: { kind: 'path', path: source, offset: 777_777 } },
          ];
          await writeEntries(items, out, { parallelHash: true });`;
        const source = join(tmpfs, 'big-source');
        // One log per thread (-ff): no call is split across lines by another thread's.
        execFileSync('strace', ['-ff', '-qq', '-y', '-o', join(logs, 't'), '-e', 'trace=copy_file_range,sendfile,pread64', process.execPath, '--input-type=module', '-e', script, source, join(work, 'cross.tar'), String(content.length)], {
          env: { ...process.env, NODE_EXTRA_CA_CERTS: '' },
        });
        const crossed = fresh();
        await applyLayer(join(work, 'cross.tar'), crossed);
        expect(readFileSync(join(crossed, 'whole')).equals(content)).toBe(true);
        expect(readFileSync(join(crossed, 'range')).equals(content.subarray(777_777, 2_777_777))).toBe(true);
        const calls = readdirSync(logs).flatMap((name) => readFileSync(join(logs, name), 'utf8').split('\n')).filter((line) => line.includes(source));
        expect(calls.filter((line) => /copy_file_range\(/.test(line) && /EXDEV/.test(line))).toHaveLength(1);
        expect(calls.filter((line) => /sendfile\(/.test(line)).length).toBeGreaterThan(0);
        expect(calls.filter((line) => /pread64\(/.test(line))).toEqual([]);
      }
    } finally {
      execFileSync('umount', [tmpfs]);
    }
  });

  it('a layer written to a FIFO streams into it, and the FIFO stays a FIFO (no temporary file renamed over it)', async () => {
    const { spawn } = await import('node:child_process');
    const src = fresh();
    mkdirSync(src);
    for (let i = 0; i < 4; i++) writeFileSync(join(src, `f${i}`), Buffer.alloc(200_000 * i + 3, i));
    for (const compression of ['none', 'gzip'] as const) {
      const fifo = join(work, `out-${compression}.fifo`);
      const received = join(work, `received-${compression}`);
      execFileSync('mkfifo', [fifo]);
      const reader = spawn('sh', ['-c', 'exec cat "$1" > "$2"', 'sh', fifo, received]);
      const done = new Promise((resolve) => reader.on('exit', resolve));
      try {
        const d = await packDirectory(src, fifo, { compression });
        expect(statSync(fifo).isFIFO()).toBe(true);
        expect(await done).toBe(0);
        const blob = readFileSync(received);
        expect(d).toMatchObject({ size: blob.length, digest: sha256(blob) });
        expect(readdirSync(work).filter((name) => name.includes('.tmp-'))).toEqual([]);
      } finally {
        reader.kill(); // a reader still waiting on a FIFO nobody writes would never end
      }
    }
  });

  it('layer writes one after another leave no thread behind, across writing and hashing streams, with right digests', async () => {
    const src = fresh();
    mkdirSync(src);
    for (let i = 0; i < 6; i++) writeFileSync(join(src, `f${i}`), Buffer.alloc(300_000 * i + 7, i));
    const threadIds = () => readdirSync('/proc/self/task');
    await packDirectory(src, join(work, 'reuse-warm.tar')); // whatever the first write starts
    const seen = new Set(threadIds());
    for (let i = 0; i < 6; i++) {
      const out = join(work, `reuse-${i}`);
      const d = await packDirectory(src, out);
      for (const id of threadIds()) seen.add(id);
      expect(d).toMatchObject({ size: readFileSync(out).length, digest: sha256(readFileSync(out)) });
    }
    expect(seen.size).toBe(new Set(threadIds()).size); // every writing thread was gone once its layer was
    for (const compression of ['gzip', 'none', 'zstd', 'none'] as const) {
      const out = join(work, `reuse-${compression}`);
      const d = await packDirectory(src, out, { compression });
      const blob = readFileSync(out);
      expect(d).toMatchObject({ size: blob.length, digest: sha256(blob), diffID: (await digestLayer(out)).diffID });
    }
  });

  it('the writing thread: a file gone missing fails the layer with its path, a stopped stream writes nothing more, and neither leaves a file or a thread', async () => {
    const { writeEntries: writeItems } = await import('@strata/core');
    const entry = (path: string, size: number): Entry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: { sec: 0, nsec: 0 }, xattrs: new Map() });
    const source = join(work, 'thread-source');
    writeFileSync(source, Buffer.alloc(500_000, 1));
    const missing = join(work, 'never-written');
    const threads = () => readdirSync('/proc/self/task').length;
    const before = threads();
    for (const size of [500_000, 10]) {
      const out = join(work, `missing-${size}.tar`);
      const items = [
        { entry: entry('a', size), content: { kind: 'path' as const, path: source } },
        { entry: entry('b', size), content: { kind: 'path' as const, path: missing } },
      ];
      await expect(writeItems(items, out)).rejects.toMatchObject({ code: 'ENOENT', path: missing });
      expect(readdirSync(work).filter((name) => name.startsWith(`missing-${size}`))).toEqual([]);
    }
    // Stopped mid-stream: the source goes on, the abort ends the write, and the thread with it.
    const controller = new AbortController();
    const out = join(work, 'stopped.tar');
    async function* endless() {
      for (let i = 0; ; i++) {
        if (i === 200) controller.abort();
        yield { entry: entry(`f${i}`, 500_000), content: { kind: 'path' as const, path: source } };
      }
    }
    await expect(writeItems(endless(), out, { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(readdirSync(work).filter((name) => name.startsWith('stopped'))).toEqual([]);
    expect(threads()).toBeLessThanOrEqual(before);
  });

  it('failed reads and writes stop their hashing threads (no thread left behind per failure)', async () => {
    // Large enough that reads hash on the addon's native thread.
    const big = rawTar([file('big', 'x'.repeat(40 * 1024 * 1024))]);
    const truncated = layerFile(big.subarray(0, big.length - 4096));
    const { gzipSync } = await import('node:zlib');
    const { randomBytes } = await import('node:crypto');
    const noise = gzipSync(randomBytes(40 * 1024 * 1024), { level: 1 });
    const truncatedGzip = layerFile(noise.subarray(0, noise.length - 100));
    const threads = () => readdirSync('/proc/self/task').length;
    const failures = async () => {
      await expect(applyLayer(truncated, fresh())).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
      await expect(digestLayer(truncatedGzip)).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
      await expect(packDirectory(src, join(work, 'no-such-dir', 'out.tar.gz'), { compression: 'gzip' })).rejects.toMatchObject({ code: 'ENOENT' });
    };
    const src = fresh();
    mkdirSync(src);
    writeFileSync(join(src, 'f'), 'x'.repeat(1000));
    await failures(); // whatever pools the first round starts
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = threads();
    for (let i = 0; i < 3; i++) await failures();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(threads()).toBeLessThanOrEqual(before);
  });

  it('SOURCE_DATE_EPOCH clamps every time, so newer edits of the same content give the same digest', async () => {
    const src = fresh();
    mkdirSync(src);
    writeFileSync(join(src, 'f'), 'same');
    const a = await packDirectory(src, join(work, 'sde1.tar'), { sourceDateEpoch: 1_000_000 });
    appendFileSync(join(src, 'f'), '');
    lutimens(join(src, 'f'), { sec: 2_000_000_000, nsec: 5 }, { sec: 2_000_000_000, nsec: 5 });
    const b = await packDirectory(src, join(work, 'sde2.tar'), { sourceDateEpoch: 1_000_000 });
    expect(b.diffID).toBe(a.diffID);
    for (const e of await entriesOf(join(work, 'sde2.tar'))) expect(e.mtime.sec).toBeLessThanOrEqual(1_000_000);
  });

  it('sizes above 8 GiB are written as PAX and base-256, and read back', async () => {
    const { TarWriter } = await import('../packages/core/src/tar/writer.js');
    const writer = new TarWriter();
    const size = 9 * 1024 ** 3 + 7;
    writer.writeHeader({ path: 'huge', type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: { sec: 0, nsec: 0 }, xattrs: new Map() });
    writer.finish();
    const bytes = Buffer.concat(writer.take());
    expect(bytes.toString('latin1')).toContain(`size=${size}\n`);
    const seen: number[] = [];
    const reading = (async () => {
      for await (const { entry } of readLayer([bytes])) seen.push(entry.size);
    })();
    await expect(reading).rejects.toMatchObject({ code: 'LAYER_FORMAT' }); // the 9 GiB of data are not there
    expect(seen).toEqual([size]);
  });

  it('digest of a compressed layer: diffID of the content, digest and size of the blob', async () => {
    const bytes = rawTar([file('a', 'abc'.repeat(1000))]);
    const { gzipSync } = await import('node:zlib');
    const gz = gzipSync(bytes);
    const d = await digestLayer(layerFile(gz));
    expect(d).toMatchObject({ diffID: sha256(bytes), digest: sha256(gz), size: gz.length, compression: 'gzip' });
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(d.diffID.slice(7));
  });
});
