/**
 * The seccomp profile of a RUN step, as BuildKit gives every step but `--security=insecure` (containerd's
 * default profile, which Docker's matches): every system call is allowed but those below, which answer
 * EPERM. A step holds Docker's default capabilities and no others, so the calls only another capability
 * would allow are refused outright, before the kernel looks at the arguments (some it checks late, some it
 * lets through in a namespace of the step's own making); the rest reach parts of the host's kernel that no
 * build needs and exploits do (its key rings, which no namespace separates, user namespaces, io_uring,
 * userfaultfd). A call newer than the runtime's libseccomp answers ENOSYS (runc's rule), so a C library
 * falls back as it does on an older kernel.
 */
import { SYSCALLS } from './seccomp-syscalls.js';

/** Calls that take a capability outside Docker's default set, by the capability. */
const CAPABILITY_CALLS: Record<string, readonly string[]> = {
  CAP_SYS_ADMIN: [
    'bpf', 'fanotify_init', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'lookup_dcookie', 'mount', 'mount_setattr', 'move_mount',
    'open_tree', 'open_tree_attr', 'perf_event_open', 'quotactl', 'quotactl_fd', 'setdomainname', 'sethostname', 'setns', 'syslog',
    'umount', 'umount2', 'unshare',
  ],
  CAP_SYS_BOOT: ['reboot'],
  CAP_SYS_MODULE: ['init_module', 'finit_module', 'delete_module'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_PTRACE: ['kcmp', 'pidfd_getfd', 'process_madvise'],
  CAP_SYS_RAWIO: ['iopl', 'ioperm'],
  CAP_SYS_TIME: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64'],
  CAP_SYS_TTY_CONFIG: ['vhangup'],
  CAP_SYS_NICE: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'],
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
};

/** Calls no step may make, whatever it holds. */
const NEVER = [
  // The kernel's key rings are the host's: no namespace separates them.
  'add_key', 'keyctl', 'request_key',
  // The host's kernel, memory and root.
  'kexec_load', 'kexec_file_load', 'swapon', 'swapoff', 'pivot_root', 'migrate_pages', 'move_pages',
  // Interfaces that have carried one kernel exploit after another, which no build tool needs.
  'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
  // Unimplemented or withdrawn, and i386's calls from before glibc's replacements.
  '_sysctl', 'afs_syscall', 'bdflush', 'break', 'create_module', 'ftime', 'get_kernel_syms', 'getpmsg', 'gtty', 'idle', 'lock',
  'mpx', 'nfsservctl', 'prof', 'profil', 'putpmsg', 'query_module', 'security', 'stty', 'tuxcall', 'ulimit', 'uselib', 'ustat',
  'sysfs', 'vm86', 'vm86old', 'vserver', 'nice', 'oldfstat', 'oldlstat', 'oldolduname', 'oldstat', 'olduname', 'readdir',
  'sgetmask', 'ssetmask', 'sigaction', 'signal', 'sigpending', 'sigsuspend',
];

/** Calls allowed for some arguments only (rules below). */
const BY_ARGUMENT = ['clone', 'clone3', 'personality', 'socket'];

/** clone's flags that make a namespace: a step makes none (CAP_SYS_ADMIN in Docker's profile). */
const CLONE_NAMESPACES = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000; // NEWNS UTS IPC USER PID NET CGROUP

/** personality's allowed values: the query, Linux, Linux 32-bit, each with UNAME26 (what setarch's i386 and uname26 set). */
const PERSONALITIES = [0, 0x0008, 0x20000, 0x20008, 0xffffffff];

const AF_ALG = 38;
const AF_VSOCK = 40;

/** Where seccomp filters for `process.arch`, and which of clone's arguments holds its flags. */
const ARCHITECTURES: Record<string, { arches: string[]; cloneFlags: number }> = {
  x64: { arches: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], cloneFlags: 0 },
  arm64: { arches: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'], cloneFlags: 0 },
  riscv64: { arches: ['SCMP_ARCH_RISCV64'], cloneFlags: 0 },
  ppc64: { arches: ['SCMP_ARCH_PPC64LE'], cloneFlags: 0 },
  s390x: { arches: ['SCMP_ARCH_S390', 'SCMP_ARCH_S390X'], cloneFlags: 1 },
};

interface Rule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
}

const ENOSYS = 38;

/** The OCI runtime spec's `linux.seccomp` for a RUN step on `arch`. */
export function runSeccomp(arch: string = process.arch): object {
  const target = ARCHITECTURES[arch] ?? { arches: [], cloneFlags: 0 }; // elsewhere: the native architecture alone
  const refused = new Set([...Object.values(CAPABILITY_CALLS).flat(), ...NEVER, ...BY_ARGUMENT]);
  const rules: Rule[] = [
    { names: SYSCALLS.filter((name) => !refused.has(name)), action: 'SCMP_ACT_ALLOW' },
    // A new process, but no namespace: its flags are an argument seccomp sees.
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: target.cloneFlags, value: CLONE_NAMESPACES, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
    // clone3's flags are in memory seccomp cannot read: ENOSYS, so the C library falls back to clone.
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ...PERSONALITIES.map((value): Rule => ({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }] })),
    // Sockets of every family but the kernel's crypto interface and virtual machine sockets, each range a
    // rule of one condition (runc makes several conditions on one argument alternatives, not a conjunction).
    { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_ALG, op: 'SCMP_CMP_LT' }] },
    { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_ALG + 1, op: 'SCMP_CMP_EQ' }] },
    { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_GT' }] },
  ];
  return { defaultAction: 'SCMP_ACT_ERRNO', architectures: target.arches, syscalls: rules };
}
