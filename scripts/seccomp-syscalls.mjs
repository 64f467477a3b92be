// Writes packages/build/src/seccomp-syscalls.ts: the names of every Linux system call, from the kernel's
// own tables as the system's headers give them (x86-64, i386 and x32 from asm/unistd_*.h, the generic table
// arm64 and riscv use from asm-generic/unistd.h), with the calls of other architectures and of kernels newer
// than the headers listed below by hand. RUN's seccomp profile (packages/build/src/seccomp.ts) allows these
// names less the ones it refuses. Run it again (node scripts/seccomp-syscalls.mjs) on a machine with newer
// headers to take in what a kernel added since.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const headers = [
  '/usr/include/x86_64-linux-gnu/asm/unistd_64.h',
  '/usr/include/x86_64-linux-gnu/asm/unistd_32.h',
  '/usr/include/x86_64-linux-gnu/asm/unistd_x32.h',
  '/usr/include/asm-generic/unistd.h',
];

/** What the headers above lack: arm's and riscv's own calls, and calls of kernels after the headers (6.1). */
const ELSEWHERE = [
  // arm (32-bit, which arm64 runs too)
  'arm_fadvise64_64', 'arm_sync_file_range', 'breakpoint', 'cacheflush', 'set_tls', 'sync_file_range2',
  // riscv
  'riscv_flush_icache', 'riscv_hwprobe',
  // Linux 6.5-6.17
  'cachestat', 'fchmodat2', 'map_shadow_stack', 'futex_wake', 'futex_wait', 'futex_requeue', 'statmount', 'listmount',
  'lsm_get_self_attr', 'lsm_set_self_attr', 'lsm_list_modules', 'mseal', 'setxattrat', 'getxattrat', 'listxattrat',
  'removexattrat', 'uretprobe', 'open_tree_attr', 'file_getattr', 'file_setattr',
];

const names = new Set(ELSEWHERE);
for (const header of headers) {
  for (const [, name] of readFileSync(header, 'utf8').matchAll(/^#define __NR(?:3264)?_([a-z0-9_]+)\s/gm)) names.add(name);
}
// Not calls: the generic table's markers.
for (const marker of ['arch_specific_syscall', 'syscalls']) names.delete(marker);

const sorted = [...names].sort();
const lines = [];
let line = ' ';
for (const name of sorted) {
  const word = ` '${name}',`;
  if (line.length + word.length > 118) {
    lines.push(line);
    line = ' ';
  }
  line += word;
}
lines.push(line);
writeFileSync(
  join(root, 'packages/build/src/seccomp-syscalls.ts'),
  [
    '// Written by scripts/seccomp-syscalls.mjs from the kernel\'s system call tables; run it again rather than edit.',
    '',
    '/** Every Linux system call by name, on every architecture strata runs on (a name one lacks is skipped there). */',
    'export const SYSCALLS: readonly string[] = [',
    ...lines,
    '];',
    '',
  ].join('\n'),
);
console.log(`${sorted.length} system calls`);
