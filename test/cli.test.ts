/**
 * The strata command, run as a user would run it (the built CLI): results on stdout, errors as one line
 * on stderr with a non-zero exit.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs } from './helpers/oracle.js';
import { rawTar, sha256 } from './helpers/raw-tar.js';

const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const strata = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

/**
 * The command with one of its outputs a pipe that the reader made non-blocking and reads only after half a
 * second (the other output discarded): its writes meet EAGAIN. What was read comes back as stdout.
 */
function readLate(output: 'stdout' | 'stderr', ...args: string[]) {
  const script = [
    'import fcntl, os, subprocess, sys, time',
    'r, w = os.pipe()',
    'fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)',
    `p = subprocess.Popen(sys.argv[1:], ${output === 'stdout' ? 'stdout=w, stderr=subprocess.DEVNULL' : 'stdout=subprocess.DEVNULL, stderr=w'})`,
    'os.close(w)',
    'time.sleep(0.5)',
    'data = b""',
    'while chunk := os.read(r, 65536): data += chunk',
    'sys.stdout.buffer.write(data)',
    'sys.exit(p.wait())',
  ].join('\n');
  return spawnSync('python3', ['-c', script, process.execPath, cli, ...args], { encoding: 'utf8' });
}

describe.skipIf(!needs('root'))('strata command', () => {
  let work: string;
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error('build first: pnpm build');
    work = mkdtempSync(join(tmpdir(), 'strata-cli-'));
    mkdirSync(join(work, 'src/d'), { recursive: true });
    writeFileSync(join(work, 'src/d/f'), 'hello\n');
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('pack, digest, ls and apply', () => {
    const layer = join(work, 'l.tar.zst');
    const pack = strata('pack', join(work, 'src'), '-o', layer, '--compression', 'zstd');
    expect(pack.status, pack.stderr).toBe(0);
    const digest = strata('digest', layer);
    expect(digest.stdout).toContain(pack.stdout.split('\n')[0]!); // same diffID line
    expect(digest.stdout).toContain('compression zstd');
    const ls = strata('ls', '--json', layer);
    expect(ls.stdout.trim().split('\n').map((l) => JSON.parse(l).path)).toEqual(['d', 'd/f']);
    expect(JSON.parse(ls.stdout.trim().split('\n')[1]!)).toMatchObject({ type: 'file', size: 6, uid: 0, linkname: null });
    const apply = strata('apply', layer, join(work, 'out'));
    expect(apply.status, apply.stderr).toBe(0);
    expect(existsSync(join(work, 'out/d/f'))).toBe(true);
  });

  it('-o /dev/stdout writes the layer to stdout (a pipe or a file), the descriptor to stderr, and leaves /dev/stdout alone', () => {
    for (const [compression, into] of [['none', '| cat >'], ['gzip', '>']] as const) {
      const out = join(work, `stdout-${compression}`);
      const script = `exec "$0" "$1" pack "$2" -o /dev/stdout --compression "$3" ${into} "$4"`;
      const r = spawnSync('sh', ['-c', script, process.execPath, cli, join(work, 'src'), compression, out], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain(`digest ${sha256(readFileSync(out))}`);
      expect(lstatSync('/dev/stdout').isSymbolicLink()).toBe(true);
      expect(readdirSync('/dev').filter((name) => name.includes('.tmp-'))).toEqual([]);
    }
  });

  it('-o - is stdout (refused on a terminal), and a layer argument of - is stdin', () => {
    const sh = (script: string, ...args: string[]) => spawnSync('sh', ['-c', script, process.execPath, cli, ...args], { encoding: 'utf8' });
    const out = join(work, 'dash.tar.gz');
    const pack = sh('exec "$0" "$1" pack "$2" -o - --compression gzip > "$3"', join(work, 'src'), out);
    expect(pack.status, pack.stderr).toBe(0);
    expect(pack.stderr).toContain(`digest ${sha256(readFileSync(out))}`);
    const fromFile = strata('digest', out).stdout;
    expect(sh('exec "$0" "$1" digest - < "$2"', out).stdout).toBe(fromFile);
    const applied = sh('"$0" "$1" pack "$2" -o - 2>/dev/null | "$0" "$1" apply - "$3"', join(work, 'src'), join(work, 'from-stdin'));
    expect(applied.status, applied.stderr).toBe(0);
    expect(readFileSync(join(work, 'from-stdin/d/f'), 'utf8')).toBe('hello\n');
    // `script` gives the command a terminal for stdout.
    const tty = spawnSync('script', ['-qec', `"${process.execPath}" "${cli}" pack "${join(work, 'src')}" -o -`, '/dev/null'], { encoding: 'utf8' });
    expect(tty.status).toBe(2);
    expect(tty.stdout).toContain('refusing to write a layer to a terminal');
  });

  it('apply of a layer large enough to hash on another thread completes (regression: exited 0 midway)', () => {
    const big = join(work, 'big');
    mkdirSync(big);
    for (let i = 0; i < 300; i++) writeFileSync(join(big, `f${i}`), Buffer.alloc(256 * 1024, i));
    const layer = join(work, 'big.tar');
    expect(strata('pack', big, '-o', layer).status).toBe(0);
    const apply = strata('apply', layer, join(work, 'big-out'));
    expect(apply.status, apply.stderr).toBe(0);
    expect(readdirSync(join(work, 'big-out'))).toHaveLength(300);
    expect(apply.stdout.trim()).toBe(strata('digest', layer).stdout.trim().replace('diffID ', ''));
  });

  it('ls merges layers applied in order', () => {
    writeFileSync(join(work, 'l1.tar'), rawTar([{ name: 'a', data: '1' }, { name: 'b', data: '2' }]));
    writeFileSync(join(work, 'l2.tar'), rawTar([{ name: '.wh.a', data: '' }, { name: 'c', data: '3' }]));
    const ls = strata('ls', '--json', join(work, 'l1.tar'), join(work, 'l2.tar'));
    expect(ls.stdout.trim().split('\n').map((l) => JSON.parse(l).path)).toEqual(['b', 'c']);
  });

  it('diff --upper, diff --from/--to and flatten write layers that reproduce the change', () => {
    const lower = join(work, 'dl');
    const upper = join(work, 'du');
    const to = join(work, 'dt');
    for (const d of [lower, upper, to]) mkdirSync(d);
    writeFileSync(join(lower, 'keep'), 'k');
    writeFileSync(join(lower, 'gone'), 'g');
    writeFileSync(join(upper, 'new'), 'n');
    spawnSync('mknod', [join(upper, 'gone'), 'c', '0', '0']);
    const base = join(work, 'base.tar');
    expect(strata('pack', lower, '-o', base).status).toBe(0);
    const diff = join(work, 'diff.tar.zst');
    const r = strata('diff', '--upper', upper, '--lower', base, '-o', diff, '--compression', 'zstd');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^diffID sha256:[0-9a-f]{64}\ndigest sha256:[0-9a-f]{64}\nsize \d+\n$/);
    const listing = (...layers: string[]) => strata('ls', '--json', ...layers).stdout.trim().split('\n').map((l) => JSON.parse(l).path);
    expect(listing(base, diff)).toEqual(['keep', 'new']);
    writeFileSync(join(to, 'keep'), 'k');
    writeFileSync(join(to, 'new'), 'n');
    const trees = join(work, 'trees.tar');
    expect(strata('diff', '--from', lower, '--to', to, '-o', trees, '--exact').status).toBe(0);
    expect(listing(base, trees)).toEqual(['keep', 'new']);
    const flat = join(work, 'flat.tar');
    expect(strata('flatten', base, diff, '-o', flat).status).toBe(0);
    expect(listing(flat)).toEqual(['keep', 'new']);
  });

  it('digest of an uncompressed layer prints its diffID', () => {
    const bytes = rawTar([{ name: 'x', data: 'x' }]);
    writeFileSync(join(work, 'x.tar'), bytes);
    expect(strata('digest', join(work, 'x.tar')).stdout).toBe(`diffID ${sha256(bytes)}\n`);
  });

  it('a hostile layer: one line naming the code, non-zero exit', () => {
    writeFileSync(join(work, 'bad.tar'), rawTar([{ name: '../escape', data: 'x' }]));
    const r = strata('apply', join(work, 'bad.tar'), join(work, 'bad-out'));
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^strata: UNSAFE_PATH: /);
  });

  it('usage errors exit 2', () => {
    expect(strata('frobnicate').status).toBe(2);
    expect(strata('pack', join(work, 'src')).status).toBe(2);
  });

  it('parses a layer command without the root commands, and still lists them all in the help', () => {
    const help = strata('--help');
    expect(help.status).toBe(0);
    for (const name of ['apply', 'digest', 'diff', 'snapshot', 'image', 'container', 'login', 'build']) expect(help.stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
    const digestHelp = strata('digest', '--help');
    expect(digestHelp.status).toBe(0);
    expect(digestHelp.stdout).toMatch(/^Usage: strata digest \[options\] <layer>/);
    const bogus = strata('apply', '--bogus', 'l.tar', 'dir');
    expect(bogus.status).toBe(2);
    expect(bogus.stderr).toMatch(/^strata: error: unknown option '--bogus'/);
    expect(strata('image', 'frobnicate').status).toBe(2);
  });

  it('prints all of a long listing through a stdout left non-blocking, and stops quietly when its reader goes', async () => {
    const layer = join(work, 'many.tar');
    const tree = join(work, 'many');
    for (let d = 0; d < 20; d++) {
      mkdirSync(join(tree, `dir-${d}`), { recursive: true });
      for (let f = 0; f < 250; f++) writeFileSync(join(tree, `dir-${d}`, `a-file-with-a-long-name-${f}`), '');
    }
    expect(strata('pack', tree, '-o', layer).status).toBe(0);
    const whole = strata('ls', layer);
    expect(whole.stdout.length).toBeGreaterThan(4 * 65536); // more than a pipe holds, several times over
    // A pipe the reader made non-blocking and reads late: writes meet EAGAIN, and nothing is lost or reordered.
    const late = readLate('stdout', 'ls', layer);
    expect(late.status, late.stderr).toBe(0);
    expect(late.stdout).toBe(whole.stdout);
    // A reader that takes the first chunk and goes: the command ends as it would have, with nothing on stderr.
    const child = spawn(process.execPath, [cli, 'ls', layer]);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const status = await new Promise((resolve) => child.on('close', resolve));
    expect([status, stderr]).toEqual([0, '']);
  });

  it('writes every warning through a stderr left non-blocking before it ends', () => {
    // Sockets have no tar form: each one in an upper is left out with a warning, more of them than a pipe holds.
    const upper = join(work, 'sockets-upper');
    const lower = join(work, 'sockets-lower');
    mkdirSync(lower, { recursive: true });
    const make = `import os, stat, sys\nos.makedirs(sys.argv[1])\nfor i in range(1500): os.mknod(os.path.join(sys.argv[1], "a-socket-with-a-rather-long-name-%04d" % i), stat.S_IFSOCK | 0o644)`;
    expect(spawnSync('python3', ['-c', make, upper]).status).toBe(0);
    const args = ['diff', '--upper', upper, '--lower', lower, '-o', join(work, 'sockets.tar')];
    const whole = strata(...args);
    expect(whole.status, whole.stderr).toBe(0);
    expect(whole.stderr.split('\n').filter((line) => line.startsWith('strata: warning: '))).toHaveLength(1500);
    expect(whole.stderr.length).toBeGreaterThan(2 * 65536);
    const late = readLate('stderr', ...args);
    expect(late.status, late.stderr).toBe(0);
    expect(late.stdout).toBe(whole.stderr);
  });

  it("runs V8's helper threads ten steps of nice below its own, which keep the caller's priority", async () => {
    // A digest of stdin waits for its input: the process holds still while its threads are read.
    const child = spawn(process.execPath, [cli, 'digest', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const niceOf = (tid: string) => {
      const stat = readFileSync(`/proc/${child.pid}/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    };
    try {
      const own = niceOf(String(child.pid)); // the caller's: a test run under nice starts there
      const helper = Math.min(19, own + 10);
      let nices: number[] = [];
      for (let tries = 0; tries < 200 && !nices.includes(helper); tries++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        nices = readdirSync(`/proc/${child.pid}/task`).filter((tid) => tid !== String(child.pid)).map(niceOf);
      }
      expect(niceOf(String(child.pid))).toBe(own);
      expect(nices.filter((nice) => nice === helper).length).toBeGreaterThanOrEqual(4); // V8's platform workers
      expect(nices.every((nice) => nice === helper || nice === own)).toBe(true);
    } finally {
      child.stdin.end(rawTar([]));
      await new Promise((resolve) => child.on('close', resolve));
    }
  });

  it('the installed bin (pnpm exec strata) runs the bundled command', () => {
    const r = spawnSync('pnpm', ['exec', 'strata', 'digest', join(work, 'no-such-layer')], { encoding: 'utf8', cwd: join(import.meta.dirname, '..') });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^strata: ENOENT: /);
  });

  it('a layer command loads none of Node\'s streams, net, crypto or fs/promises modules', () => {
    // Loading them is 30-40 of Node's modules at every command's start (net and streams 3-5 ms, crypto with
    // the streams it loads 5-6 ms, fs/promises 1.5-2 ms here): a layer command writes its output through its
    // own threads and `print`, and hashes through the addon. Layers of 9 MiB, past the size where hashing
    // moves to a native thread, and of 64 KiB, hashed on the main thread.
    const preload = join(work, 'modules.cjs');
    const list = join(work, 'modules.txt');
    writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')));\n`);
    for (const [name, size] of [['nine-mib', 9 << 20], ['small-layer', 64 << 10]] as const) {
      mkdirSync(join(work, name));
      writeFileSync(join(work, name, 'f'), Buffer.alloc(size, 1));
      const layer = join(work, `${name}.tar`);
      const commands = [
        ['pack', join(work, name), '-o', layer],
        ['digest', layer],
        ['apply', layer, join(work, `${name}-out`)],
        ['diff', '--upper', join(work, name), '--lower', join(work, 'src'), '-o', join(work, `${name}-diff.tar`)],
      ];
      for (const args of commands) {
        const r = spawnSync(process.execPath, ['-r', preload, cli, ...args], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        const loaded = readFileSync(list, 'utf8').split('\n');
        expect(loaded.length, args[0]).toBeGreaterThan(20); // the list was written, by this run
        expect(loaded.filter((m) => /^NativeModule (net|stream|crypto|fs\/promises)$/.test(m)), `${args[0]} of ${name}`).toEqual([]);
        rmSync(list);
      }
      // The small layer's digests are the bytes' sha256, as Node's own hash gives it.
      if (name === 'small-layer') expect(spawnSync(process.execPath, [cli, 'digest', layer], { encoding: 'utf8' }).stdout).toContain(`diffID ${sha256(readFileSync(layer))}`);
    }
  });

  describe('code cache', () => {
    // Each case has a cache of its own (STRATA_CODE_CACHE), so the other tests' runs cannot touch it.
    const run = (cache: string, ...args: string[]) =>
      spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, STRATA_CODE_CACHE: cache } });
    const header = (cache: string) => {
      const bytes = readFileSync(cache);
      const [stamp, commands, split] = bytes.toString('utf8', 0, bytes.indexOf(10)).split('\t');
      const data = bytes.subarray(bytes.indexOf(10) + 1);
      return { stamp: stamp!, commands: commands!, split: Number(split), data, command: data.subarray(0, Number(split)), root: data.subarray(Number(split)) };
    };
    let layer: string;
    let expected: string;
    beforeAll(() => {
      layer = join(work, 'cached.tar');
      writeFileSync(layer, rawTar([{ name: 'a', data: 'a' }]));
      expected = `diffID ${sha256(readFileSync(layer))}\n`;
    });

    it('is written once per command that ran, and used after; the root libraries\' bytecode once one of them ran', () => {
      const cache = join(work, 'cache-once');
      const root = join(work, 'cache-once-root');
      expect(run(cache, '--version').status).toBe(0);
      expect(existsSync(cache)).toBe(false); // --version compiles nothing worth keeping
      expect(run(cache, 'digest', layer).stdout).toBe(expected);
      const first = header(cache);
      expect(first.stamp).toMatch(/^strata-v8cache [0-9a-f]{32} v\d+\.\d+\.\d+ \w+$/);
      expect(first.commands).toBe('digest');
      expect(first.split).toBe(first.data.length); // a layer command loads no root library
      const { ino } = statSync(cache);
      expect(run(cache, 'digest', layer).stdout).toBe(expected);
      expect(statSync(cache).ino).toBe(ino); // digest is in it already: not rewritten
      expect(run(cache, 'image', 'ls', '--root', root).status).toBe(0);
      const withRoot = header(cache);
      expect(withRoot.commands).toBe('digest,image ls');
      expect(withRoot.root.length).toBeGreaterThan(0);
      // A layer command the cache has not seen: the command bundle's part again, the root libraries' as it was.
      expect(run(cache, 'ls', layer).stdout).toMatch(/ a\n$/);
      const last = header(cache);
      expect(last.commands).toBe('digest,image ls,ls');
      expect(last.root.equals(withRoot.root)).toBe(true);
      const { ino: kept } = statSync(cache);
      expect(run(cache, 'image', 'ls', '--root', root).status).toBe(0);
      expect(statSync(cache).ino).toBe(kept);
    });

    it('is ignored, and replaced, when V8 rejects it, when another bundle made it, or when it is not trusted', () => {
      const cache = join(work, 'cache-bad');
      const root = join(work, 'cache-bad-root');
      expect(run(cache, 'digest', layer).status).toBe(0);
      expect(run(cache, 'image', 'ls', '--root', root).status).toBe(0);
      const good = header(cache);
      expect(good.commands).toBe('digest,image ls');
      const expectReplaced = (...command: string[]) => {
        const r = run(cache, ...command);
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        const now = header(cache);
        expect(now.stamp).toBe(good.stamp);
        expect(now.commands).toBe(command[0] === 'digest' ? 'digest' : 'image ls'); // a fresh cache, not the old one's list extended
        expect(statSync(cache).uid).toBe(process.geteuid!());
        expect(statSync(cache).mode & 0o022).toBe(0);
      };
      const replacedByDigest = () => {
        expectReplaced('digest', layer);
        expect(run(cache, 'digest', layer).stdout).toBe(expected);
      };
      const write = (stamp: string, commands: string, data: Uint8Array, split: number | string = good.split) => {
        rmSync(cache, { force: true });
        writeFileSync(cache, Buffer.concat([Buffer.from(`${stamp}\t${commands}\t${split}\n`), data]));
      };
      // Garbage where the bytecode should be: V8 refuses it, the command runs compiled afresh.
      write(good.stamp, 'digest,x', Buffer.alloc(good.data.length, 7));
      replacedByDigest();
      // Garbage in the root libraries' part only: refused when a command that opens a root loads them.
      write(good.stamp, 'digest,image ls', Buffer.concat([good.command, Buffer.alloc(good.root.length, 7)]));
      expectReplaced('image', 'ls', '--root', root);
      // The parts' boundary missing, past the end or at zero.
      for (const split of ['', String(good.data.length + 1), '0', 'x']) {
        write(good.stamp, 'digest,x', good.data, split);
        replacedByDigest();
      }
      // Another bundle's cache (the stamp's build id differs).
      write(good.stamp.replace(/ [0-9a-f]{32} /, ` ${'0'.repeat(32)} `), 'digest,x', good.data);
      replacedByDigest();
      // Writable by others, or owned by someone who is neither the caller nor the bundle's owner.
      write(good.stamp, 'digest,x', good.data);
      chmodSync(cache, 0o666);
      replacedByDigest();
      write(good.stamp, 'digest,x', good.data);
      chownSync(cache, 65534, 65534);
      replacedByDigest();
      // Trusted and accepted: kept as it is.
      write(good.stamp, 'digest,x', good.data);
      expect(run(cache, 'digest', layer).stdout).toBe(expected);
      expect(run(cache, 'image', 'ls', '--root', root).status).toBe(0);
      expect(header(cache).commands).toBe('digest,x,image ls');
    });

    it('is skipped where it cannot be written', () => {
      const cache = join(work, 'no-such-dir', 'cache');
      expect(run(cache, 'digest', layer).stdout).toBe(expected);
      expect(existsSync(cache)).toBe(false);
    });
  });
});
