/**
 * RUN for another platform than the host's, as BuildKit runs it: through an emulator the kernel starts for
 * that platform's programs (binfmt_misc; Debian's qemu-user-static and binfmt-support register QEMU's).
 * strata registers nothing itself, as BuildKit does not: it finds the handler the host has for an ELF
 * program of the platform, and uses it only when it was registered with the `F` flag, the kernel then
 * holding the emulator open, so that it runs inside the step's container, whose tree does not hold it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Platform } from '@strata/images';

/** Where the kernel lists its binfmt_misc handlers. */
export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';

/** ELF class (1: 32-bit, 2: 64-bit), byte order (1: little, 2: big) and machine of each architecture's programs. */
const ELF: Readonly<Record<string, readonly [cls: number, order: number, machine: number]>> = {
  amd64: [2, 1, 62],
  arm64: [2, 1, 183],
  arm: [1, 1, 40],
  '386': [1, 1, 3],
  ppc64le: [2, 1, 21],
  ppc64: [2, 2, 21],
  s390x: [2, 2, 22],
  riscv64: [2, 1, 243],
  mips64le: [2, 1, 8],
  mips64: [2, 2, 8],
  mipsle: [1, 1, 8],
  mips: [1, 2, 8],
  loong64: [2, 1, 258],
};

/** The first 20 bytes of an executable ELF program of `architecture` (what a handler's magic is matched on), or undefined for one strata does not know. */
function elfHeader(architecture: string): Buffer | undefined {
  const elf = ELF[architecture];
  if (elf === undefined) return undefined;
  const [cls, order, machine] = elf;
  const header = Buffer.alloc(20);
  header.set([0x7f, 0x45, 0x4c, 0x46, cls, order, 1]);
  if (order === 1) {
    header.writeUInt16LE(2, 16); // ET_EXEC
    header.writeUInt16LE(machine, 18);
  } else {
    header.writeUInt16BE(2, 16);
    header.writeUInt16BE(machine, 18);
  }
  return header;
}

/** A binfmt_misc handler as the kernel lists it. */
interface Handler {
  readonly name: string;
  readonly enabled: boolean;
  readonly interpreter: string;
  readonly flags: string;
  readonly offset: number;
  readonly magic: Buffer;
  readonly mask: Buffer | undefined;
}

function readHandler(dir: string, name: string): Handler | undefined {
  let lines: string[];
  try {
    lines = readFileSync(join(dir, name), 'utf8').split('\n');
  } catch {
    return undefined; // gone meanwhile, or not readable
  }
  const field = (key: string) => lines.find((line) => line.startsWith(`${key} `))?.slice(key.length + 1);
  const magic = field('magic');
  if (magic === undefined) return undefined; // an extension handler: not for ELF programs
  const mask = field('mask');
  return {
    name,
    enabled: lines[0] === 'enabled',
    interpreter: field('interpreter') ?? '',
    flags: field('flags:') ?? '',
    offset: Number(field('offset') ?? 0),
    magic: Buffer.from(magic, 'hex'),
    mask: mask === undefined ? undefined : Buffer.from(mask, 'hex'),
  };
}

function matches(handler: Handler, header: Buffer): boolean {
  if (handler.offset + handler.magic.length > header.length) return false;
  for (let i = 0; i < handler.magic.length; i++) {
    const mask = handler.mask?.[i] ?? 0xff;
    if ((header[handler.offset + i]! & mask) !== (handler.magic[i]! & mask)) return false;
  }
  return true;
}

/** Why a platform's programs cannot run here, or the handler that runs them. */
export type Emulation = { readonly ok: true; readonly handler: string; readonly interpreter: string } | { readonly ok: false; readonly reason: string };

/**
 * How this host runs `platform`'s programs: the enabled binfmt_misc handler (in `dir`) that an executable
 * ELF program of its architecture matches, registered with the `F` flag; else why none can.
 */
export function emulationFor(platform: Platform, dir = BINFMT_DIR): Emulation {
  const name = `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
  const header = platform.os === 'linux' ? elfHeader(platform.architecture) : undefined;
  if (header === undefined) return { ok: false, reason: `strata knows no program format of ${name}` };
  let names: string[];
  try {
    names = readdirSync(dir).filter((entry) => entry !== 'register' && entry !== 'status');
  } catch {
    return { ok: false, reason: `this host has no binfmt_misc (${dir}) to start an emulator for ${name}'s programs` };
  }
  const found = names.map((entry) => readHandler(dir, entry)).filter((h): h is Handler => h !== undefined && h.enabled && matches(h, header));
  const usable = found.find((h) => h.flags.includes('F'));
  if (usable !== undefined) return { ok: true, handler: usable.name, interpreter: usable.interpreter };
  if (found.length > 0) return { ok: false, reason: `the emulator for ${name} (binfmt_misc ${found[0]!.name}) was registered without the F flag, so the kernel would look for ${found[0]!.interpreter} inside the step's tree` };
  return { ok: false, reason: `no emulator for ${name} is registered (binfmt_misc; on Debian, install qemu-user-static and binfmt-support)` };
}
