/**
 * libarchive's corpus of tar archives: the uuencoded test archives of its own test suite (GNU sparse
 * formats of every tar version, PAX xattr and ACL headers, Solaris, star and Mac archives, names in KOI8-R,
 * EUC-JP and CP866, Perl's and Plexus's writers, concatenated and empty archives), taken from Debian's
 * source package of libarchive, whose checksum is pinned here. Written as plain tar archives: decompressed
 * with the compressor's own tool where one is compressed (compress's .Z through gzip, which reads it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { debianSource } from './debian-source.js';
import { cachedDirectory } from '../../benchmarks/inputs.js';

const VERSION = '3.6.2';
const SHA256 = '9e2c1b80d5fbe59b61308fdfab6c79b5021d7ff4ff2489fb12daf0a96a83551d';

/** The decompressor of each suffix a corpus archive may have (lzop, lrzip, grzip and lzip ones are left out). */
const DECOMPRESS: Record<string, string[] | null> = {
  '': null,
  '.Z': ['gzip', '-dc'],
  '.gz': ['gzip', '-dc'],
  '.bz2': ['bzip2', '-dc'],
  '.xz': ['xz', '-dc'],
  '.lzma': ['xz', '--format=lzma', '-dc'],
  '.zst': ['zstd', '-dcq'],
};

// Unpacks the test archives' .uu files from the source tarball and decodes them, as uudecode would (a line
// binascii finds overlong is cut to the length its first character gives, as Python's uu module does).
const UNPACK = String.raw`
import binascii, json, os, re, sys, tarfile
source, out = sys.argv[1], sys.argv[2]
names = []
with tarfile.open(source) as tf:
    for m in tf:
        base = os.path.basename(m.name)
        if not m.isfile() or '/test/' not in m.name or not re.search(r'\.(tar|ustar)(\.[A-Za-z0-9]+)?\.uu$', base):
            continue
        data = bytearray()
        lines = tf.extractfile(m).read().split(b'\n')
        start = next(i for i, line in enumerate(lines) if line.startswith(b'begin '))
        for line in lines[start + 1:]:
            if line.strip() == b'end':
                break
            if not line.strip():
                continue
            try:
                data += binascii.a2b_uu(line)
            except binascii.Error:
                n = (((line[0] - 32) & 63) * 4 + 5) // 3
                data += binascii.a2b_uu(line[:n])
        name = base[:-3]
        if name in names:
            raise SystemExit('two archives named ' + name)
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
        names.append(name)
print(json.dumps(sorted(names)))
`;

/**
 * The directory of libarchive's tar test archives, each uncompressed (the compressed ones named for their
 * compressor: `test_extract-gz.tar` for `test_extract.tar.gz`), written once into the cache.
 */
export function libarchiveTarCorpus(): string {
  return cachedDirectory(`libarchive-${VERSION}-tar`, (work) => {
    const tarball = debianSource('liba/libarchive', `libarchive_${VERSION}.orig.tar.xz`, SHA256);
    const decoded = join(work, 'uu');
    mkdirSync(decoded);
    const run = spawnSync('python3', ['-c', UNPACK, tarball, decoded], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`python3 failed: ${run.stderr}`);
    for (const name of JSON.parse(run.stdout) as string[]) {
      const [, base, suffix = ''] = /^(.*)\.(?:tar|ustar)(\.[A-Za-z0-9]+)?$/.exec(name)!;
      const tool = DECOMPRESS[suffix];
      if (tool === undefined) continue;
      const bytes = tool ? execFileSync(tool[0]!, [...tool.slice(1), join(decoded, name)], { maxBuffer: 1 << 30 }) : readFileSync(join(decoded, name));
      writeFileSync(join(work, `${base}${suffix.replace('.', '-')}.tar`), bytes);
    }
    rmSync(decoded, { recursive: true });
  });
}
