/**
 * RUN for another platform than the host's, as BuildKit runs it: through an emulator the kernel starts for
 * that platform's programs (binfmt_misc; Debian's qemu-user-static and binfmt-support register QEMU's).
 * strata registers nothing itself, as BuildKit does not: it finds the handler the host has for an ELF
 * program of the platform, and uses it only when it was registered with the `F` flag, the kernel then
 * holding the emulator open, so that it runs inside the step's container, whose tree does not hold it.
 * Where no handler claims them, the 32-bit programs of the host's own CPU family (386 on amd64, arm on
 * arm64) may run with no emulator at all, in a compatibility mode of the kernel: BuildKit lists such a
 * platform when a small program of it runs, and so does strata (`runsNatively`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostPlatform, type Platform } from '@strata/images';

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

/** Why a platform's programs cannot run here, or what runs them: a handler, or the kernel itself (`native`). */
export type Emulation =
  | { readonly ok: true; readonly handler: string; readonly interpreter: string }
  | { readonly ok: true; readonly native: true }
  | { readonly ok: false; readonly reason: string };

/** The 32-bit architectures a CPU of each 64-bit one may run in a compatibility mode of its kernel. */
const COMPAT: Readonly<Record<string, string>> = { amd64: '386', arm64: 'arm' };

/**
 * The machine code of a program that exits with status 0 (exit(0) as a system call), and where it loads,
 * for each architecture `runsNatively` tries: 386 (`mov eax, 1; xor ebx, ebx; int 0x80`) and 32-bit arm
 * (`mov r0, #0; mov r7, #1; svc #0`, EABI version 5).
 */
const EXIT_CODE: Readonly<Record<string, { readonly code: readonly number[]; readonly base: number; readonly flags: number }>> = {
  '386': { code: [0xb8, 0x01, 0x00, 0x00, 0x00, 0x31, 0xdb, 0xcd, 0x80], base: 0x08048000, flags: 0 },
  arm: { code: [0x00, 0x00, 0xa0, 0xe3, 0x01, 0x70, 0xa0, 0xe3, 0x00, 0x00, 0x00, 0xef], base: 0x00010000, flags: 0x05000000 },
};

/**
 * A static 32-bit little-endian ELF program of `architecture` that exits with status 0: an ELF header, one
 * loadable segment (the whole file, readable and executable) and the code. Undefined for an architecture
 * without one.
 */
export function exitingProgram(architecture: string): Buffer | undefined {
  const exit = EXIT_CODE[architecture];
  const elf = ELF[architecture];
  if (exit === undefined || elf === undefined) return undefined;
  const HEADER = 52;
  const SEGMENT = 32;
  const program = Buffer.alloc(HEADER + SEGMENT + exit.code.length);
  program.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]); // ELF, 32-bit, little-endian, version 1
  program.writeUInt16LE(2, 16); // ET_EXEC
  program.writeUInt16LE(elf[2], 18);
  program.writeUInt32LE(1, 20);
  program.writeUInt32LE(exit.base + HEADER + SEGMENT, 24); // entry: the code, after the headers
  program.writeUInt32LE(HEADER, 28); // program headers right after this one; no section headers
  program.writeUInt32LE(exit.flags, 36);
  program.writeUInt16LE(HEADER, 40);
  program.writeUInt16LE(SEGMENT, 42);
  program.writeUInt16LE(1, 44);
  program.writeUInt32LE(1, HEADER); // PT_LOAD
  program.writeUInt32LE(0, HEADER + 4);
  program.writeUInt32LE(exit.base, HEADER + 8);
  program.writeUInt32LE(exit.base, HEADER + 12);
  program.writeUInt32LE(program.length, HEADER + 16);
  program.writeUInt32LE(program.length, HEADER + 20);
  program.writeUInt32LE(5, HEADER + 24); // PF_R | PF_X
  program.writeUInt32LE(0x1000, HEADER + 28);
  program.set(exit.code, HEADER + SEGMENT);
  return program;
}

/** What `runsNatively` found for each architecture in this process: the kernel's answer does not change. */
const nativeAnswers = new Map<string, string | true>();

/**
 * Whether this host's kernel runs `architecture`'s programs itself, the 32-bit family of its own 64-bit CPU
 * (`COMPAT`): true, or why not. Asked by running a program of that architecture that exits with status 0,
 * once a process. Only for when no binfmt_misc handler claims the architecture's programs (one would run
 * the program instead, and its own rules apply).
 */
export function runsNatively(architecture: string, host = hostPlatform().architecture): true | string {
  if (COMPAT[host] !== architecture) return `a ${host} host runs no ${architecture} programs without an emulator`;
  const key = `${host}/${architecture}`;
  const known = nativeAnswers.get(key);
  if (known !== undefined) return known;
  const program = exitingProgram(architecture)!;
  const dir = mkdtempSync(join(tmpdir(), 'strata-native-'));
  let answer: string | true;
  try {
    writeFileSync(join(dir, 'exit'), program, { mode: 0o700 });
    const run = spawnSync(join(dir, 'exit'), [], { stdio: 'ignore', timeout: 10_000 });
    const code = (run.error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'EACCES' || code === 'EPERM') answer = `strata could not run a probe program from ${tmpdir()} (${code}: a noexec file system?) to ask whether this host runs ${architecture} programs itself`;
    else if (run.error !== undefined) answer = `this host's kernel does not run ${architecture} programs itself (${code ?? run.error.message}: no 32-bit compatibility mode?)`;
    // A program the kernel cannot run (ENOEXEC) is run as a shell script by the C library's execvp, which
    // then fails: any end but status 0 means no.
    else answer = run.status === 0 ? true : `this host's kernel does not run ${architecture} programs itself (a program of it that exits with status 0 ended with ${run.status ?? run.signal})`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  nativeAnswers.set(key, answer);
  return answer;
}

/**
 * How this host runs `platform`'s programs: the enabled binfmt_misc handler (in `dir`) that an executable
 * ELF program of its architecture matches, registered with the `F` flag; where none claims them, the kernel
 * itself for the 32-bit family of a `host` CPU that runs it (`runsNatively`); else why neither can.
 */
export function emulationFor(platform: Platform, dir = BINFMT_DIR, host = hostPlatform().architecture): Emulation {
  const name = `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
  const header = platform.os === 'linux' ? elfHeader(platform.architecture) : undefined;
  if (header === undefined) return { ok: false, reason: `strata knows no program format of ${name}` };
  let names: string[] | undefined;
  try {
    names = readdirSync(dir).filter((entry) => entry !== 'register' && entry !== 'status');
  } catch {
    names = undefined; // no binfmt_misc: only the kernel itself may run them
  }
  // A handler that claims the programs runs them even where the kernel could (binfmt_misc comes first).
  const found = (names ?? []).map((entry) => readHandler(dir, entry)).filter((h): h is Handler => h !== undefined && h.enabled && matches(h, header));
  const usable = found.find((h) => h.flags.includes('F'));
  if (usable !== undefined) return { ok: true, handler: usable.name, interpreter: usable.interpreter };
  if (found.length > 0) return { ok: false, reason: `the emulator for ${name} (binfmt_misc ${found[0]!.name}) was registered without the F flag, so the kernel would look for ${found[0]!.interpreter} inside the step's tree` };
  if (COMPAT[host] === platform.architecture) {
    const native = runsNatively(platform.architecture, host);
    if (native === true) return { ok: true, native: true };
    return { ok: false, reason: `${native}, and no emulator for ${name} is registered (binfmt_misc)` };
  }
  if (names === undefined) return { ok: false, reason: `this host has no binfmt_misc (${dir}) to start an emulator for ${name}'s programs` };
  return { ok: false, reason: `no emulator for ${name} is registered (binfmt_misc; on Debian, install qemu-user-static and binfmt-support)` };
}
