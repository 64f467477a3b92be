/**
 * Real trees for the oracle suites: real files from this machine's /usr (10,000+ entries, symlinks) plus
 * hand-made corner cases. `portable` holds what a ustar archive can say; `extended` what needs PAX or GNU.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, lchownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lutimens, mknod, setXattr } from './host.js';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

/** security.capability v2: effective flag, CAP_NET_BIND_SERVICE permitted. */
export const CAP_V2 = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
/** security.capability v3: as v2, with root uid 1000 of a user namespace. */
export const CAP_V3 = Buffer.from([0x01, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe8, 0x03, 0, 0]);
export const BINARY_XATTR = Buffer.from([0x00, 0x0a, 0xff, 0xfe, 0x80, 0x00, 0x41]);

/** Corner cases every tar format can hold. */
export function buildPortable(dir: string): void {
  mkdirSync(join(dir, 'empty-dir'), { recursive: true });
  mkdirSync(join(dir, 'empty-nested/a/b'), { recursive: true });
  const long = join(dir, 'd'.repeat(60), 'e'.repeat(60));
  mkdirSync(long, { recursive: true });
  writeFileSync(join(long, 'file-past-100-bytes'), 'long name\n'); // > 100 bytes: ustar prefix split
  writeFileSync(join(dir, 'café.txt'), 'latin\n');
  writeFileSync(join(dir, '日本語.txt'), 'cjk\n');
  writeFileSync(join(dir, 'emoji-😀.txt'), 'astral\n');
  writeFileSync(join(dir, 'e\u0301'), 'decomposed\n'); // NFD
  writeFileSync(join(dir, '\u00e9'), 'composed\n'); // NFC: a different name
  writeFileSync(join(dir, 'empty-file'), '');
  writeFileSync(join(dir, 'setuid'), '#!/bin/sh\n');
  chmodSync(join(dir, 'setuid'), 0o4755);
  mkdirSync(join(dir, 'setgid-dir'));
  chmodSync(join(dir, 'setgid-dir'), 0o2775);
  mkdirSync(join(dir, 'sticky'));
  chmodSync(join(dir, 'sticky'), 0o1777);
  writeFileSync(join(dir, 'hl-a'), 'three names\n');
  mkdirSync(join(dir, 'sub'));
  linkSync(join(dir, 'hl-a'), join(dir, 'hl-b'));
  linkSync(join(dir, 'hl-a'), join(dir, 'sub', 'hl-c'));
  symlinkSync('hl-a', join(dir, 'link-rel'));
  symlinkSync('/etc/passwd', join(dir, 'link-abs'));
  symlinkSync('does/not/exist', join(dir, 'link-dangling'));
  mknod(join(dir, 'fifo'), S_IFIFO, 0o644);
  mknod(join(dir, 'null'), S_IFCHR, 0o666, 1, 3);
  mknod(join(dir, 'loop9'), S_IFBLK, 0o660, 7, 9);
  writeFileSync(join(dir, 'owned'), 'owned\n');
  lchownSync(join(dir, 'owned'), 1234, 5678);
}

/** Corner cases that need PAX or GNU extensions. */
export function buildExtended(dir: string, options: { xattrs: boolean }): void {
  let deep = dir;
  for (let i = 0; i < 3; i++) deep = join(deep, `${i}`.repeat(90));
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'f'.repeat(120)), 'path over 255 bytes\n');
  symlinkSync('t'.repeat(150), join(dir, 'link-target-over-100'));
  writeFileSync(join(dir, 'big-ids'), 'ids\n');
  lchownSync(join(dir, 'big-ids'), 3_000_000, 2_097_152);
  writeFileSync(join(dir, 'before-1970'), 'old\n');
  lutimens(join(dir, 'before-1970'), { sec: -1_000_001, nsec: 500_000_000 }, { sec: -1_000_001, nsec: 500_000_000 });
  writeFileSync(join(dir, 'after-2038'), 'future\n');
  lutimens(join(dir, 'after-2038'), { sec: 4_102_444_800, nsec: 123_456_789 }, { sec: 4_102_444_800, nsec: 123_456_789 });
  // Names only bytes spell (old packages' Latin-1 names, a byte no UTF-8 starts with), in every role: a
  // directory, a file inside it, one larger than a writer's chunk, a symlink and its target, a hardlink.
  const bytes = (path: string) => Buffer.from(`${dir}/${path}`, 'latin1');
  mkdirSync(bytes('d\xe9'));
  writeFileSync(bytes('d\xe9/caf\xe9'), 'latin-1\n');
  writeFileSync(bytes('d\xe9/big\xff'), Buffer.alloc(600_000, 'b'));
  symlinkSync(Buffer.from('d\xe9/caf\xe9', 'latin1'), bytes('link\xe9'));
  linkSync(bytes('d\xe9/caf\xe9'), bytes('hard\x80'));
  if (options.xattrs) {
    setXattr(`${dir}/d\udce9/caf\udce9`, 'user.latin', Buffer.from('1')); // strata's escapes: the addon writes the bytes
    writeFileSync(join(dir, 'xattr-binary'), 'x\n');
    setXattr(join(dir, 'xattr-binary'), 'user.binary', BINARY_XATTR);
    setXattr(join(dir, 'xattr-binary'), 'user.text', Buffer.from('hello'));
    writeFileSync(join(dir, 'cap-v2'), 'cap\n');
    setXattr(join(dir, 'cap-v2'), 'security.capability', CAP_V2);
    writeFileSync(join(dir, 'cap-v3'), 'cap\n');
    setXattr(join(dir, 'cap-v3'), 'security.capability', CAP_V3);
    mkdirSync(join(dir, 'xattr-dir'));
    setXattr(join(dir, 'xattr-dir'), 'trusted.strata-test', Buffer.from([1, 2, 3]));
  }
}

/**
 * The real tree: /usr/include and /usr/share/zoneinfo copied with `cp -a` (10,000+ entries), with
 * `portable/` and, unless `extended: false`, `extended/` beside them.
 */
export function buildRealTree(dir: string, options: { extended?: boolean; xattrs?: boolean } = {}): void {
  mkdirSync(dir, { recursive: true });
  for (const source of ['/usr/include', '/usr/share/zoneinfo']) {
    if (!existsSync(source)) throw new Error(`fixture source missing: ${source}`);
    execFileSync('cp', ['-a', source, dir]);
  }
  // Real files with several names, inside the real part of the tree.
  linkSync(join(dir, 'zoneinfo/UTC'), join(dir, 'zoneinfo/UTC-hardlink'));
  linkSync(join(dir, 'include/stdio.h'), join(dir, 'stdio-hardlink.h'));
  mkdirSync(join(dir, 'portable'));
  buildPortable(join(dir, 'portable'));
  if (options.extended !== false) {
    mkdirSync(join(dir, 'extended'));
    buildExtended(join(dir, 'extended'), { xattrs: options.xattrs ?? true });
  }
}
