/**
 * `RUN --mount` as BuildKit's frontend reads it (bind, cache, tmpfs, secret), and the cache mounts' directories: shared, locked and
 * private holds between steps and processes, stale holds of dead processes, and prune.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CacheMounts } from '../src/cache-mounts.js';
import { parseDockerfile } from '../src/dockerfile.js';
import { parseRunMount, type CacheMount } from '../src/run-mounts.js';

const work = mkdtempSync(join(tmpdir(), 'strata-run-mounts-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('RUN --mount', () => {
  it('reads every --mount of a RUN, in order, and only RUN takes it', () => {
    const file = parseDockerfile('FROM scratch\nRUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b true\n');
    expect(file.stages[0]!.instructions[0]).toMatchObject({ keyword: 'RUN', mounts: ['type=cache,target=/a', 'type=tmpfs,target=/b'], args: 'true' });
    expect(() => parseDockerfile('FROM scratch\nCOPY --mount=type=cache,target=/a x y\n')).toThrow(/line 2: COPY --mount is not supported/);
  });

  it('parses cache and tmpfs mounts with their defaults, a relative target below the working directory', () => {
    expect(parseRunMount('type=cache,target=/root/.cache', '/')).toEqual({ type: 'cache', target: '/root/.cache', id: '/root/.cache', sharing: 'shared', readonly: false, mode: 0o755, uid: 0, gid: 0 });
    expect(parseRunMount('type=cache,dst=cache,id=pip,sharing=locked,ro,mode=0700,uid=1000,gid=1001', '/app')).toEqual({ type: 'cache', target: '/app/cache', id: 'pip', sharing: 'locked', readonly: true, mode: 0o700, uid: 1000, gid: 1001 });
    expect(parseRunMount('type=cache,target=/c,readonly=false', '/')).toMatchObject({ readonly: false });
    expect(parseRunMount('type=tmpfs,target=/tmp/x,size=64m', '/')).toEqual({ type: 'tmpfs', target: '/tmp/x', size: 64 * 1024 * 1024 });
    expect(parseRunMount('target=/t,type=tmpfs', '/')).toEqual({ type: 'tmpfs', target: '/t' });
    // bind is the type when none is given; read-only unless rw.
    expect(parseRunMount('target=/src', '/')).toEqual({ type: 'bind', target: '/src', source: '.', readwrite: false });
    expect(parseRunMount('type=bind,src=out,dst=in,from=builder,rw', '/app')).toEqual({ type: 'bind', target: '/app/in', source: 'out', from: 'builder', readwrite: true });
    expect(parseRunMount('type=bind,source=go.mod,target=go.mod,readonly', '/src')).toEqual({ type: 'bind', target: '/src/go.mod', source: 'go.mod', readwrite: false });
    // A secret at /run/secrets/<id>, 0400, optional unless required; the id from the target when absent.
    expect(parseRunMount('type=secret,id=npmrc', '/')).toEqual({ type: 'secret', target: '/run/secrets/npmrc', id: 'npmrc', required: false, mode: 0o400, uid: 0, gid: 0 });
    expect(parseRunMount('type=secret,target=/root/.npmrc,required,mode=0440,uid=1000', '/')).toEqual({ type: 'secret', target: '/root/.npmrc', id: '.npmrc', required: true, mode: 0o440, uid: 1000, gid: 0 });
    // An ssh agent: id default, numbered under /run/buildkit by the ssh mounts before it, 0600.
    expect(parseRunMount('type=ssh', '/')).toEqual({ type: 'ssh', target: '/run/buildkit/ssh_agent.0', id: 'default', required: false, mode: 0o600, uid: 0, gid: 0 });
    expect(parseRunMount('type=ssh,id=deploy,required', '/', 1)).toMatchObject({ target: '/run/buildkit/ssh_agent.1', id: 'deploy', required: true });
    expect(parseRunMount('type=ssh,target=agent.sock,mode=0660,uid=7', '/app')).toMatchObject({ target: '/app/agent.sock', mode: 0o660, uid: 7 });
  });

  it('refuses what it does not carry out, and what is malformed, naming it', () => {
    expect(() => parseRunMount('type=ssh,source=x', '/')).toThrow('type=ssh takes no source');
    expect(() => parseRunMount('type=secret', '/')).toThrow('type=secret needs an id');
    expect(() => parseRunMount('type=secret,id=a,required=perhaps', '/')).toThrow('is not a boolean');
    expect(() => parseRunMount('type=volume,target=/x', '/')).toThrow('is not a mount type');
    expect(() => parseRunMount('type=cache', '/')).toThrow('needs one target');
    expect(() => parseRunMount('type=cache,target=/', '/')).toThrow('cannot be mounted over /');
    expect(() => parseRunMount('type=cache,target=/a,target=/b', '/')).toThrow('target given twice');
    expect(() => parseRunMount('type=cache,target=/a,sharing=sometimes', '/')).toThrow('is not shared, private or locked');
    expect(() => parseRunMount('type=cache,target=/a,mode=rwx', '/')).toThrow('is not an octal mode');
    expect(() => parseRunMount('type=cache,target=/a,uid=me', '/')).toThrow('is not a numeric id');
    expect(parseRunMount('type=cache,target=/a,from=builder', '/')).toMatchObject({ type: 'cache', from: 'builder', source: '.' });
    expect(parseRunMount('type=cache,target=/a,from=builder,src=/x', '/')).toMatchObject({ from: 'builder', source: '/x' });
    expect(parseRunMount('type=cache,target=/a,source=x', '/')).toMatchObject({ type: 'cache', source: 'x' });
    expect(parseRunMount('type=cache,target=/a,source=', '/')).not.toHaveProperty('source');
    expect(() => parseRunMount('type=tmpfs,target=/a,id=x', '/')).toThrow('type=tmpfs takes no id');
    expect(() => parseRunMount('type=tmpfs,target=/a,size=lots', '/')).toThrow('is not a size');
    expect(() => parseRunMount('type=bind,target=/a,src=x,source=y', '/')).toThrow('source given twice');
    expect(() => parseRunMount('type=bind,target=/a,from=', '/')).toThrow('from needs a stage or an image');
    expect(() => parseRunMount('type=bind,target=/a,id=x', '/')).toThrow('type=bind takes no id');
  });
});

describe('cache mounts', () => {
  const mount = (extra: Partial<CacheMount> = {}): CacheMount => ({ type: 'cache', target: '/c', id: 'one', sharing: 'shared', readonly: false, mode: 0o750, uid: 0, gid: 0, ...extra });

  it('makes the directory on first use with its mode, and shares it', async () => {
    const mounts = new CacheMounts(join(work, 'shared'));
    const a = await mounts.acquire(mount());
    const b = await mounts.acquire(mount());
    expect(b.path).toBe(a.path);
    expect(statSync(a.path).mode & 0o7777).toBe(0o750);
    writeFileSync(join(a.path, 'kept'), 'x');
    a.release();
    b.release();
    const c = await mounts.acquire(mount({ mode: 0o700 })); // made once: the mode of its first use stays
    expect(statSync(c.path).mode & 0o7777).toBe(0o750);
    expect(existsSync(join(c.path, 'kept'))).toBe(true);
    c.release();
  });

  it('gives private holds their own instance, and makes locked ones wait', async () => {
    const mounts = new CacheMounts(join(work, 'exclusive'));
    const first = await mounts.acquire(mount({ sharing: 'private' }));
    const second = await mounts.acquire(mount({ sharing: 'private' }));
    expect(second.path).not.toBe(first.path);
    second.release();
    let got = false;
    const locked = mounts.acquire(mount({ sharing: 'locked' })).then((held) => ((got = true), held));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(got).toBe(false);
    first.release();
    const held = await locked;
    expect(held.path).toBe(first.path);
    // A shared hold waits for the lock too.
    const shared = mounts.acquire(mount()).then((h) => ((got = false), h));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(got).toBe(true);
    held.release();
    (await shared).release();
  });

  it("takes over a dead process's lock, and prune removes all but what a live build holds", async () => {
    const dir = join(work, 'stale');
    const mounts = new CacheMounts(dir);
    const a = await mounts.acquire(mount({ id: 'a' }));
    a.release();
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => dead.on('exit', resolve));
    const lock = `${a.path}.lock`;
    writeFileSync(lock, String(dead.pid));
    const again = await mounts.acquire(mount({ id: 'a', sharing: 'locked' }));
    expect(again.path).toBe(a.path);
    const b = await mounts.acquire(mount({ id: 'b' }));
    expect(mounts.prune()).toBe(0); // both held
    again.release();
    expect(mounts.prune()).toBe(1);
    expect(existsSync(a.path)).toBe(false);
    expect(existsSync(b.path)).toBe(true);
    b.release();
    expect(mounts.prune()).toBe(1);
  });

  it('prunes by age only what no step has had since, by the time of its last release', async () => {
    const mounts = new CacheMounts(join(work, 'aged'));
    const old = await mounts.acquire(mount({ id: 'old' }));
    old.release();
    const recent = await mounts.acquire(mount({ id: 'recent' }));
    recent.release();
    const held = await mounts.acquire(mount({ id: 'held' }));
    const hourAgo = new Date(Date.now() - 3600_000);
    const twoHoursAgo = new Date(Date.now() - 7200_000);
    utimesSync(`${old.path}.used`, twoHoursAgo, twoHoursAgo);
    utimesSync(held.path, twoHoursAgo, twoHoursAgo); // never released: its directory's time stands in, but it is held
    expect(mounts.prune(hourAgo)).toBe(1);
    expect(existsSync(old.path)).toBe(false);
    expect(existsSync(`${old.path}.used`)).toBe(false);
    expect(existsSync(recent.path)).toBe(true);
    expect(existsSync(held.path)).toBe(true);
    held.release();
    expect(mounts.prune(hourAgo)).toBe(0); // just released
    expect(mounts.prune()).toBe(2);
  });
});
