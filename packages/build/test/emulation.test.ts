/**
 * Which binfmt_misc handler runs a platform's programs: handlers written as the kernel lists them, with the
 * magic and mask QEMU's registration (qemu-binfmt-conf.sh, Debian's qemu-user-static) gives each.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emulationFor } from '../src/emulation.js';

let dir: string;

/** A handler as /proc/sys/fs/binfmt_misc/<name> shows it. */
function handler(name: string, { enabled = true, flags = 'PF', magic, mask }: { enabled?: boolean; flags?: string; magic: string; mask: string }): void {
  writeFileSync(join(dir, name), `${enabled ? 'enabled' : 'disabled'}\ninterpreter /usr/libexec/qemu-binfmt/${name}\nflags: ${flags}\noffset 0\nmagic ${magic}\nmask ${mask}\n`);
}

const LE_MASK = 'ffffffffffffff00fffffffffffffffffeffffff';

// Made when the tests run, not when the file loads: a run that filters them all out leaves nothing behind.
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-binfmt-'));
  handler('qemu-aarch64', { magic: '7f454c460201010000000000000000000200b700', mask: LE_MASK });
  handler('qemu-arm', { flags: 'P', magic: '7f454c4601010100000000000000000002002800', mask: LE_MASK });
  handler('qemu-riscv64', { enabled: false, magic: '7f454c460201010000000000000000000200f300', mask: LE_MASK });
  handler('qemu-s390x', { flags: 'OCF', magic: '7f454c4602020100000000000000000000020016', mask: 'fffffffffffffffcfffffffffffffffffffeffff' });
  writeFileSync(join(dir, 'python3.11'), 'enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n');
  writeFileSync(join(dir, 'jar'), 'enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n');
  writeFileSync(join(dir, 'register'), '');
  writeFileSync(join(dir, 'status'), 'enabled\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('emulation', () => {
  it('finds the enabled handler an executable of the platform matches, registered with F', () => {
    expect(emulationFor({ os: 'linux', architecture: 'arm64' }, dir)).toEqual({ ok: true, handler: 'qemu-aarch64', interpreter: '/usr/libexec/qemu-binfmt/qemu-aarch64' });
    expect(emulationFor({ os: 'linux', architecture: 's390x' }, dir)).toMatchObject({ ok: true, handler: 'qemu-s390x' }); // big-endian
  });

  it('says why a platform cannot run: no F flag, disabled, none, an unknown format, no binfmt_misc', () => {
    expect(emulationFor({ os: 'linux', architecture: 'arm', variant: 'v7' }, dir)).toMatchObject({ ok: false, reason: expect.stringMatching(/linux\/arm\/v7 \(binfmt_misc qemu-arm\) was registered without the F flag/) });
    expect(emulationFor({ os: 'linux', architecture: 'riscv64' }, dir)).toMatchObject({ ok: false, reason: expect.stringMatching(/no emulator for linux\/riscv64 is registered/) });
    expect(emulationFor({ os: 'linux', architecture: 'ppc64le' }, dir)).toMatchObject({ ok: false, reason: expect.stringMatching(/no emulator for linux\/ppc64le/) });
    expect(emulationFor({ os: 'linux', architecture: 'wasm' }, dir)).toMatchObject({ ok: false, reason: 'strata knows no program format of linux/wasm' });
    expect(emulationFor({ os: 'windows', architecture: 'arm64' }, dir)).toMatchObject({ ok: false, reason: 'strata knows no program format of windows/arm64' });
    expect(emulationFor({ os: 'linux', architecture: 'arm64' }, join(dir, 'absent'))).toMatchObject({ ok: false, reason: expect.stringMatching(/no binfmt_misc/) });
    // 386 programs are an amd64 kernel's own to run, no other host's.
    expect(emulationFor({ os: 'linux', architecture: '386' }, dir, 'ppc64le')).toMatchObject({ ok: false, reason: expect.stringMatching(/no emulator for linux\/386 is registered/) });
  });

  it('leaves 386 programs to a handler that claims them, on any host: binfmt_misc comes before the kernel\'s own loader', () => {
    const own = mkdtempSync(join(tmpdir(), 'strata-binfmt-386-'));
    try {
      writeFileSync(join(own, 'qemu-i386'), 'enabled\ninterpreter /usr/libexec/qemu-binfmt/i386\nflags: \noffset 0\nmagic 7f454c4601010100000000000000000002000300\nmask fffffffffffefe00fffffffffffffffffeffffff\n');
      expect(emulationFor({ os: 'linux', architecture: '386' }, own, 'amd64')).toMatchObject({ ok: false, reason: expect.stringMatching(/qemu-i386\) was registered without the F flag/) });
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });
});
