import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostLayer, MemoryLayer, WritableLayer, type Entry } from '../src/index.js';

// Owned by whoever runs the test: copy-up keeps owners, which only root may give away.
const [uid, gid] = [process.getuid?.() ?? 0, process.getgid?.() ?? 0];
const entry = (path: string, type: Entry['type'], extra: Partial<Entry> = {}): Entry => ({ path, type, mode: type === 'directory' ? 0o755 : 0o644, uid, gid, size: 0, mtime: { sec: 1_000, nsec: 0 }, xattrs: new Map(), ...extra });

describe('WritableLayer surface beyond the differential suite', () => {
  let work: string;
  let layer: WritableLayer;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-wl-'));
    mkdirSync(join(work, 'upper'));
    const lower = new MemoryLayer([
      { entry: entry('etc', 'directory') },
      { entry: entry('etc/hosts', 'file'), content: Buffer.from('127.0.0.1 localhost\n') },
      { entry: entry('bin', 'directory') },
      { entry: entry('bin/sh', 'file', { mode: 0o755, xattrs: new Map([['user.k', Buffer.from('v')]]) }), content: Buffer.from('#!') },
      { entry: entry('link', 'symlink', { linkname: 'etc/hosts' }) },
    ]);
    layer = new WritableLayer([lower], join(work, 'upper'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('file handles: reading a lower file copies nothing up; writing through a handle does', async () => {
    const reader = await layer.open('/etc/hosts');
    const buffer = Buffer.alloc(9);
    expect((await reader.read(buffer, 0, 9, 0)).bytesRead).toBe(9);
    expect(buffer.toString()).toBe('127.0.0.1');
    await reader.close();
    expect(() => readFileSync(join(work, 'upper/etc/hosts'))).toThrow();
    const writer = await layer.open('/etc/hosts', 'r+');
    await writer.write('10.0.0.1', 0); // over "127.0.0.1 localhost"
    await writer.truncate(9);
    await writer.close();
    expect(await layer.readFile('/etc/hosts', 'utf8')).toBe('10.0.0.11');
    expect(readFileSync(join(work, 'upper/etc/hosts'), 'utf8')).toBe('10.0.0.11');
    const created = await layer.open('/etc/new', 'wx', 0o600);
    await created.write('fresh');
    await created.close();
    await expect(layer.open('/etc/new', 'wx')).rejects.toMatchObject({ code: 'EEXIST' });
    expect((await layer.stat('/etc/new')).mode & 0o777).toBe(0o600);
  });

  it('a read-only handle reads a lower file in place, however large, without holding it whole', async () => {
    const lowerDir = join(work, 'big-lower');
    mkdirSync(lowerDir);
    const big = join(lowerDir, 'big');
    writeFileSync(big, '');
    truncateSync(big, 5 * 1024 ** 3); // sparse, over what one Buffer holds
    const fd = openSync(big, 'r+');
    writeSync(fd, 'hello', 3 * 1024 ** 3);
    closeSync(fd);
    mkdirSync(join(work, 'big-upper'));
    const handle = await new WritableLayer([new HostLayer(lowerDir)], join(work, 'big-upper')).open('/big');
    const buffer = Buffer.alloc(7);
    expect((await handle.read(buffer, 0, 7, 3 * 1024 ** 3 - 1)).bytesRead).toBe(7);
    expect(buffer).toEqual(Buffer.from('\0hello\0'));
    expect((await handle.read(buffer, 0, 7, 5 * 1024 ** 3 - 2)).bytesRead).toBe(2);
    await handle.close();
    await expect(handle.read(buffer)).rejects.toMatchObject({ code: 'EBADF' });
    expect(existsSync(join(work, 'big-upper', 'big'))).toBe(false);
  });

  it('access, copyFile, readdir with types, lutimes and xattrs', async () => {
    await layer.access('/bin/sh', constants.X_OK);
    await expect(layer.access('/etc/hosts', constants.X_OK)).rejects.toMatchObject({ code: 'EACCES' });
    await expect(layer.access('/nope')).rejects.toMatchObject({ code: 'ENOENT' });
    await layer.copyFile('/bin/sh', '/bin/sh2');
    expect((await layer.stat('/bin/sh2')).mode & 0o777).toBe(0o755);
    await expect(layer.copyFile('/bin/sh', '/bin/sh2', constants.COPYFILE_EXCL)).rejects.toMatchObject({ code: 'EEXIST' });
    const dirents = await layer.readdir('/', { withFileTypes: true });
    expect(dirents.map((d) => [d.name, d.isDirectory(), d.isSymbolicLink()])).toEqual([['bin', true, false], ['etc', true, false], ['link', false, true]]);
    await layer.lutimes('/link', 5, 5);
    expect((await layer.lstat('/link')).mtimeMs).toBe(5000);
    expect((await layer.stat('/link')).isFile()).toBe(true);
    expect(await layer.listxattr('/bin/sh')).toEqual(['user.k']);
    expect((await layer.getxattr('/bin/sh', 'user.k')).toString()).toBe('v');
    await layer.removexattr('/bin/sh', 'user.k');
    expect(await layer.listxattr('/bin/sh')).toEqual([]);
    await expect(layer.getxattr('/bin/sh', 'user.k')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(layer.setxattr('/bin/sh', 'trusted.overlay.opaque', 'y')).rejects.toMatchObject({ code: 'EPERM' });
  });

  it('errors are Node-shaped', async () => {
    const error = await layer.readFile('/missing/file').catch((e: NodeJS.ErrnoException) => e);
    expect(error).toMatchObject({ code: 'ENOENT', syscall: 'open', path: '/missing/file' });
    await expect(layer.readdir('/etc/hosts')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(layer.rmdir('/etc')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await expect(layer.rm('/etc')).rejects.toMatchObject({ code: 'ERR_FS_EISDIR' });
    await expect(layer.mkdir('/etc')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await layer.mkdir('/a/b/c', { recursive: true })).toBe('/a');
  });
});
