/**
 * Python's tarfile as an independent reader of the same bytes: what it lists, or that it refused. Used to
 * check that an archive strata accepts means the same entries to a reader that shares no code with it.
 * Python's own leniencies (it applies PAX global headers, ends quietly at a bad header after the first,
 * keeps `./` prefixes) are the callers' to mind; the listing is normalised to strata's clean paths.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { cachedDirectory } from '../../benchmarks/inputs.js';

export interface PythonEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'other';
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** A file's content as Python reads it (a sparse file's holes as zeros), sha256 in hex. */
  sha256?: string;
}

const SCRIPT = String.raw`
import hashlib, json, posixpath, sys, tarfile
def clean(name):
    name = posixpath.normpath('/' + name).lstrip('/')
    return name or '.'
out = []
try:
    with tarfile.open(sys.argv[1], 'r:') as tf:
        for m in tf:
            if m.isreg(): t = 'file'
            elif m.isdir(): t = 'directory'
            elif m.issym(): t = 'symlink'
            elif m.islnk(): t = 'hardlink'
            elif m.ischr(): t = 'char'
            elif m.isblk(): t = 'block'
            elif m.isfifo(): t = 'fifo'
            else: t = 'other'
            out.append({'path': clean(m.name), 'type': t, 'size': m.size if t == 'file' else 0, 'mode': m.mode & 0o7777,
                        'uid': m.uid, 'gid': m.gid, 'mtime': int(m.mtime // 1),
                        'linkname': clean(m.linkname) if t == 'hardlink' else m.linkname,
                        'devmajor': m.devmajor if t in ('char', 'block') else 0, 'devminor': m.devminor if t in ('char', 'block') else 0})
            if t == 'file': out[-1]['sha256'] = hashlib.sha256(tf.extractfile(m).read()).hexdigest()
    print(json.dumps({'entries': out}))
except Exception as e:
    print(json.dumps({'error': type(e).__name__ + ': ' + str(e)}))
`;

/** Python's reading of the uncompressed tar at `path`: its entries, or the error it stopped with. */
export function pythonList(path: string): { entries: PythonEntry[] } | { error: string } {
  const run = spawnSync('python3', ['-c', SCRIPT, path], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (run.status !== 0) throw new Error(`python3 failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as { entries: PythonEntry[] } | { error: string };
}

const SPLIT = String.raw`
import json, os, posixpath, re, sys, tarfile
def corpus():
    try:
        import test
        path = os.path.join(os.path.dirname(test.__file__), 'testtar.tar')
        if os.path.exists(path): return path
    except ImportError:
        pass
    for version in sorted(os.listdir('/usr/lib'), reverse=True):
        path = os.path.join('/usr/lib', version, 'test', 'testtar.tar')
        if version.startswith('python3') and os.path.exists(path): return path
    return None
source = corpus()
if source is None or len(sys.argv) < 2:
    print(json.dumps({'source': source, 'pieces': []}))
    sys.exit(0)
data = open(source, 'rb').read()
with tarfile.open(source) as tf:
    members = tf.getmembers()
def clean(name): return posixpath.normpath('/' + name).lstrip('/')
starts = [m.offset for m in members]
def piece(i):
    m = members[i]
    end = starts[i + 1] if i + 1 < len(members) else m.offset_data + (m.size + 511) // 512 * 512
    return data[m.offset:end]
pieces = []
for i, m in enumerate(members):
    body = piece(i)
    if m.islnk():
        # A hardlink's piece starts with its target, so that every piece also applies.
        target = [j for j, t in enumerate(members[:i]) if clean(t.name) == clean(m.linkname)]
        if target: body = piece(target[-1]) + body
    label = re.sub(r'[^A-Za-z0-9._-]', '_', m.name.encode('utf-8', 'surrogateescape').decode('ascii', 'replace'))
    if len(label) > 48: label = label[:16] + '--' + label[-30:]
    name = '%02d-%s.tar' % (i, label)
    with open(os.path.join(sys.argv[1], name), 'wb') as out:
        out.write(body + bytes(1024))
    pieces.append(name)
# A PAX global header with a zero-length record (CVE-2019-20907: Python's reader looped forever on it).
recursion = os.path.join(os.path.dirname(source), 'recursion.tar')
if os.path.exists(recursion):
    with open(recursion, 'rb') as src, open(os.path.join(sys.argv[1], 'recursion.tar'), 'wb') as out:
        out.write(src.read())
    pieces.append('recursion.tar')
print(json.dumps({'source': source, 'pieces': pieces}))
`;

/**
 * Python's own corpus of tar archives (`test/testtar.tar` of its test suite: ustar, GNU, PAX, v7, Solaris
 * and star headers, signed checksums, long names, sparse files, non-UTF-8 names), one archive holding them
 * all. Split into one archive per member (a hardlink's preceded by its target), with `recursion.tar` beside
 * them, once per version of the archive, into the cache (as the Go lister and libarchive's corpus are), so
 * no run leaves a split behind; the directory and the pieces' names, or none when the test suite is not
 * installed (`libpython3.X-testsuite` on Debian).
 */
export function pythonTarCorpus(): { source: string | null; dir: string; pieces: string[] } {
  const found = JSON.parse(python([])) as { source: string | null };
  if (found.source === null) return { source: null, dir: '', pieces: [] };
  const version = createHash('sha256').update(readFileSync(found.source)).digest('hex').slice(0, 16);
  const dir = cachedDirectory(`python-testtar-${version}`, (work) => python([work]));
  return { source: found.source, dir, pieces: readdirSync(dir).sort() };
}

function python(args: string[]): string {
  const run = spawnSync('python3', ['-c', SPLIT, ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`python3 failed: ${run.stderr}`);
  return run.stdout;
}
