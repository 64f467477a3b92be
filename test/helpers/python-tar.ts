/**
 * Python's tarfile as an independent reader of the same bytes: what it lists, or that it refused. Used to
 * check that an archive strata accepts means the same entries to a reader that shares no code with it.
 * Python's own leniencies (it applies PAX global headers, ends quietly at a bad header after the first,
 * keeps `./` prefixes) are the callers' to mind; the listing is normalised to strata's clean paths.
 */
import { spawnSync } from 'node:child_process';

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
}

const SCRIPT = String.raw`
import json, posixpath, sys, tarfile
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
