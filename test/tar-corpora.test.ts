/**
 * Public corpora of tricky tar archives, read by strata and by Go's archive/tar, the reader under containerd
 * and moby: Go's own (archive/tar's testdata, shipped with Debian's Go toolchain), Python's (tarfile's
 * testtar.tar, from Python's test suite: ustar, GNU, PAX, v7, Solaris and star headers in one archive, cut
 * here into one archive per member) and libarchive's (its test suite's archives, from Debian's source
 * package: GNU sparse files of each tar version, PAX xattrs and ACLs, Mac, Perl and Plexus writers).
 * Where Go reads an archive, strata reads the same entries (names, types, modes, owners, times to the
 * nanosecond, links, devices, xattrs and content, sparse files' holes read as zeros), or refuses it for one
 * of the reasons it documents, at the entry that calls for it; where Go refuses, strata refuses too, with a
 * typed error. `ls`, `apply` and `digest` agree with the reader on each, and the apply leaves holes as
 * holes; so does the archive opened as a tree (TarLayer), as it is and gzipped.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readLayer, TarLayer, type Entry } from '@strata/core';
import { inCI, needs } from './helpers/oracle.js';
import { ContentPrint, goBinary, goEntryType, goLayerPath, goList, goTarCorpus, strataBinary, type GoEntry } from './helpers/go-tar.js';
import { libarchiveTarCorpus } from './helpers/libarchive-tar.js';
import { pythonTarCorpus } from './helpers/python-tar.js';
import { codeOf, threeWays, type Outcome } from './helpers/three-ways.js';

interface StrataEntry {
  entry: Entry;
  read: number;
  print: string;
}

/** strata's reading of `path`: the entries it read through, then its error if it stopped on one. */
async function strataList(path: string): Promise<{ entries: StrataEntry[]; error?: { code: string; message: string } }> {
  const entries: StrataEntry[] = [];
  try {
    for await (const { entry, body } of readLayer(path)) {
      const print = new ContentPrint();
      for await (const chunk of body) print.update(chunk);
      entries.push({ entry, read: print.bytes, print: print.digest() });
    }
    return { entries };
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    return { entries, error: { code: code ?? `untyped: ${message}`, message } };
  }
}

/**
 * The fields Go and strata both report, as strata would report Go's entry; names as binary strings (a byte a
 * character), so that names that are not UTF-8 compare byte for byte.
 */
function expected(go: GoEntry) {
  const type = goEntryType(go.typeflag);
  const device = type === 'char' || type === 'block';
  const linkname = goBinary(go.bytes.linkname);
  return {
    path: goLayerPath(goBinary(go.bytes.name)),
    type,
    mode: go.mode & 0o7777,
    uid: go.uid,
    gid: go.gid,
    mtime: { sec: go.sec, nsec: go.nsec },
    linkname: type === 'hardlink' ? goLayerPath(linkname) : type === 'symlink' ? linkname : undefined,
    uname: goBinary(go.bytes.uname) || undefined,
    gname: goBinary(go.bytes.gname) || undefined,
    devices: device ? [go.devmajor, go.devminor] : undefined,
    // strata takes libarchive's xattr records too, as bsdtar does (SCHILY's, written after them, win);
    // Go keeps them as plain PAX records.
    xattrs: { ...go.libarchiveXattrs, ...go.xattrs },
    // Go hands out a GNU dump directory's listing as content; strata's directories carry none.
    content: type === 'file' ? { size: go.size, read: go.read, print: go.print } : undefined,
  };
}

function actual({ entry, read, print }: StrataEntry): ReturnType<typeof expected> {
  const device = entry.type === 'char' || entry.type === 'block';
  const binary = (text: string | undefined) => (text === undefined ? undefined : strataBinary(text));
  return {
    path: binary(entry.path),
    type: entry.type,
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    mtime: { sec: entry.mtime.sec, nsec: entry.mtime.nsec },
    linkname: binary(entry.linkname),
    uname: binary(entry.uname),
    gname: binary(entry.gname),
    devices: device ? [entry.devmajor ?? 0, entry.devminor ?? 0] : undefined,
    xattrs: Object.fromEntries([...entry.xattrs].map(([key, value]) => [key, Buffer.from(value).toString('base64')])),
    content: entry.type === 'file' ? { size: entry.size, read, print } : undefined,
  };
}

/**
 * Why strata may stop where Go reads on: the refusals the README documents, each checked against what Go
 * made of the entry it stopped at (`next`; undefined when Go read nothing more, where no refusal is).
 */
function justified(error: { code: string; message: string }, next: GoEntry | undefined, archive: string): boolean {
  // An extended header that no entry follows: Go drops it and ends quietly, Python's tarfile refuses.
  if (error.code === 'LAYER_FORMAT' && /ends after an extended header/.test(error.message)) return next === undefined;
  if (next === undefined) return false;
  // `..` names something outside the layer.
  if (error.code === 'UNSAFE_PATH') {
    return goLayerPath(next.name) === undefined || (next.typeflag === '1' && goLayerPath(next.linkname) === undefined);
  }
  // Two PAX headers before one entry: Go keeps only the later one, Python's tarfile takes the earlier's
  // path; strata refuses to pick. (Go leaves no trace of the first header, so the archive is named.)
  if (error.code === 'LAYER_FORMAT' && /two PAX headers/.test(error.message)) return archive === 'pax-multi-hdrs.tar';
  // Ids must fit the host: 4294967295 is -1 to chown, "leave the owner as it is".
  if (error.code === 'LAYER_FORMAT' && /(uid|gid) \d+ .* is out of range/.test(error.message)) return next.uid > MAX_ID || next.gid > MAX_ID;
  // A type strata does not know (Solaris's 'X' extended header): Go hands it out as an entry of its own,
  // which containerd then fails to extract ("unhandled tar header type").
  if (error.code === 'UNSUPPORTED' && /unknown tar entry type/.test(error.message)) return goEntryType(next.typeflag) === undefined;
  return false;
}

const TYPED = ['LAYER_FORMAT', 'LIMIT_EXCEEDED', 'UNSUPPORTED', 'UNSAFE_PATH'];
/** The largest id a Linux file can have (the next is -1 as unsigned). */
const MAX_ID = 4294967294;

/** Reads the archive at `path` with strata and with Go, and checks that they agree (see the file's header). */
async function agreesWithGo(name: string, path: string): Promise<void> {
  const bytes = readFileSync(path);
  const go = goList(path);
  // Go hands out PAX global headers and GNU volume headers as entries; strata passes over both.
  const goEntries = go.entries.filter((entry) => entry.typeflag !== 'g' && entry.typeflag !== 'V');
  const ours = await strataList(path);

  const read = ours.entries.length;
  expect(read, 'strata read more entries than Go').toBeLessThanOrEqual(goEntries.length);
  expect(ours.entries.map(actual)).toEqual(goEntries.slice(0, read).map(expected));
  if (ours.error === undefined) {
    expect(go.error, 'strata read to the end where Go refused').toBe('');
    expect(read).toBe(goEntries.length);
  } else {
    expect(TYPED, ours.error.message).toContain(ours.error.code);
    const goStopped = go.error !== '' && read === goEntries.length;
    const why = `${ours.error.code}: ${ours.error.message}`;
    if (!goStopped) expect(justified(ours.error, goEntries[read], name), why).toBe(true);
  }

  const ways = await threeWays(bytes);
  try {
    const code = ours.error?.code;
    expect([codeOf(ways.entries), codeOf(ways.ls), codeOf(ways.apply), codeOf(ways.digest)]).toEqual([code, code, code, code]);
    expect(ways.outside).toEqual([]);
    if (ways.apply.ok) {
      // Holes stay holes: what the apply allocates is about what the archive stores (its 60 GB sparse
      // files included), with a block or two for each file and directory; where a file's data is pieces
      // smaller than a block (a byte every megabyte), no more than GNU tar allocates for them.
      const allocated = allocatedBytes(ways.target);
      const inodes = execFileSync('find', [ways.target], { encoding: 'utf8' }).split('\n').length;
      if (allocated > bytes.length + 8192 * inodes) expect(allocated).toBeLessThanOrEqual(gnuTarAllocates(path));
    }
    if (ways.ls.ok) await readsAsTree(path, ways.ls.value, ours.entries);
    else for (const layer of await tarLayers(path)) expect(codeOf(layer)).toBe(ours.error?.code);
  } finally {
    ways.dispose();
  }
}

/** The bytes the file system allocates for the tree at `dir`. */
const allocatedBytes = (dir: string) => Number(execFileSync('du', ['-s', '-B1', dir], { encoding: 'utf8' }).split('\t')[0]);

/** The bytes GNU tar's extraction of the archive at `path` allocates, in the same file system as strata's. */
function gnuTarAllocates(path: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'strata-corpus-gnu-'));
  try {
    execFileSync('tar', ['-xf', path, '-C', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    return allocatedBytes(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The archive at `path` opened as a tree, as it is and gzipped by GNU gzip (read from a decompressed copy). */
async function tarLayers(path: string): Promise<Array<Outcome<TarLayer>>> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-corpus-gz-'));
  try {
    const gz = join(dir, 'layer.tar.gz');
    writeFileSync(gz, execFileSync('gzip', ['-c', path], { maxBuffer: 1 << 30 }));
    const outcomes: Array<Outcome<TarLayer>> = [];
    for (const source of [path, gz]) {
      try {
        outcomes.push({ ok: true, value: await TarLayer.open(source) });
      } catch (error) {
        outcomes.push({ ok: false, error });
      }
    }
    return outcomes; // the gzip's copy is unnamed: the directory can go now
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * As a tree (TarLayer), the archive holds what `ls` lists, each file with the content the reader read for
 * it (a hardlink its target's; a sparse file's holes as zeros), whether read in place or from the
 * decompressed copy of its gzip.
 */
async function readsAsTree(path: string, listed: Entry[], read: StrataEntry[]): Promise<void> {
  const prints = new Map<string, string>();
  for (const { entry, print } of read) if (entry.type === 'file') prints.set(entry.path, print);
  const want = listed.filter((e) => e.type === 'file' || e.type === 'hardlink').map((e) => ({ path: e.path, print: prints.get(e.type === 'hardlink' ? e.linkname! : e.path) }));
  for (const opened of await tarLayers(path)) {
    if (!opened.ok) throw opened.error;
    const layer = opened.value;
    try {
      const got: Array<{ path: string; print: string | undefined }> = [];
      const visit = async (dir: string): Promise<void> => {
        for (const [name, node] of layer.children(dir)) {
          if (node.kind !== 'entry') continue;
          const child = dir === '.' ? name : `${dir}/${name}`;
          if (node.type === 'directory') await visit(child);
          if (node.type !== 'file') continue;
          const print = new ContentPrint();
          for await (const chunk of layer.read(child)) print.update(chunk);
          got.push({ path: child, print: print.digest() });
        }
      };
      await visit('.');
      const order = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
      expect(got.sort(order)).toEqual([...want].sort(order));
    } finally {
      layer.close();
    }
  }
}

describe.skipIf(!needs('root', 'go'))("Go's archive/tar corpus: strata reads it as Go does", () => {
  const corpus = needs('go') ? goTarCorpus() : '';
  // The one compressed archive (bzip2, which layers never use) is left out.
  const archives = corpus ? readdirSync(corpus).filter((name) => name.endsWith('.tar')).sort() : [];

  it('the corpus is there, with its tricky cases', () => {
    expect(archives.length).toBeGreaterThanOrEqual(40);
    for (const name of ['pax-records.tar', 'gnu-incremental.tar', 'hdr-only.tar', 'neg-size.tar', 'pax-nul-path.tar', 'xattrs.tar']) {
      expect(archives).toContain(name);
    }
  });

  for (const name of archives) it(name, () => agreesWithGo(name, join(corpus, name)));
});

describe.skipIf(!needs('root', 'go', 'python3'))("Python's tarfile corpus: strata reads it as Go does", () => {
  const { source, dir, pieces } = needs('python3') ? pythonTarCorpus() : { source: null, dir: '', pieces: [] };

  it('the corpus is there, with its tricky cases', () => {
    // Like a missing oracle: fails in CI, skips elsewhere.
    if (inCI) expect(source, "testtar.tar of Python's test suite (Debian: libpython3.X-testsuite)").not.toBeNull();
    if (source === null) return;
    expect(pieces.length).toBeGreaterThanOrEqual(35);
    for (const piece of ['gnu_sparse', 'regtype-old-v7', 'regtype-hpux-signed-chksum', 'regtype-suntar', 'regtype-xstar', 'pax_regtype4', 'hdrcharset']) {
      expect(pieces.some((name) => name.includes(piece)), piece).toBe(true);
    }
  });

  for (const name of pieces) it(name, () => agreesWithGo(name, join(dir, name)));
});

describe.skipIf(!needs('root', 'go', 'python3'))("libarchive's corpus: strata reads it as Go does", () => {
  const dir = needs('go', 'python3') ? libarchiveTarCorpus() : '';
  const archives = dir ? readdirSync(dir).filter((name) => name.endsWith('.tar')).sort() : [];

  it('the corpus is there, with its tricky cases', () => {
    expect(archives.length).toBeGreaterThanOrEqual(50);
    for (const name of ['test_read_format_gtar_sparse_1_17_posix10_modified.tar', 'test_pax_xattr_header_all.tar', 'test_compat_perl_archive_tar.tar', 'test_read_format_tar_concatenated.tar', 'test_extract-zst.tar']) {
      expect(archives).toContain(name);
    }
  });

  for (const name of archives) it(name, () => agreesWithGo(name, join(dir, name)));
});
