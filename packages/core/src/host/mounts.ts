/**
 * Kernel mounts of layer directories, and the disk usage of a tree: what a snapshotter hands a runtime, and
 * what a builder's RUN step needs. Mounts need privileges (CAP_SYS_ADMIN); without them every call throws
 * EPERM, and callers use strata's userspace views instead.
 */
import { fsError, InvalidArgumentError } from '../errors.js';
import { diskUsageNative, mountBindNative, mountOverlayNative, unmountNative } from '../native.js';

/** A mount as containerd describes one: what `mount(8)` takes. */
export interface Mount {
  /** `overlay` or `bind`. */
  readonly type: string;
  /** The source (`overlay` for overlay mounts, a directory for binds). */
  readonly source: string;
  /** Options as mount(8) takes them: `lowerdir=…`, `upperdir=…`, `workdir=…`, `ro`, `rbind`, … */
  readonly options: readonly string[];
}

function rethrow(error: unknown): never {
  const e = error as NodeJS.ErrnoException;
  if (typeof e.syscall === 'string') throw fsError(e.code ?? 'EIO', e.syscall, e.path ?? '', e.message.split(',')[0]?.replace(/^[A-Z0-9]+: /, ''));
  throw error;
}

/**
 * Mounts an overlay at `target`: `lowers` top first (each passed to the kernel on its own, so a chain of
 * hundreds of layers is not limited by the one-page option string of mount(2); on kernels before 6.8, it
 * is, and E2BIG says so), `upper` and `work` for a writable mount (without them the mount is read-only), and
 * further options such as `index=off` or `userxattr`. Throws Node errno errors (EPERM without privileges).
 */
export function mountOverlay(target: string, lowers: readonly string[], upper: { upper: string; work: string } | undefined, options: readonly string[] = []): void {
  if (lowers.length === 0) throw new InvalidArgumentError('an overlay mount needs at least one lower directory');
  try {
    mountOverlayNative(target, lowers, upper?.upper ?? null, upper?.work ?? null, options);
  } catch (error) {
    rethrow(error);
  }
}

/** Bind-mounts `source` at `target` (recursively), read-only when asked. */
export function mountBind(source: string, target: string, readonly: boolean): void {
  try {
    mountBindNative(source, target, readonly);
  } catch (error) {
    rethrow(error);
  }
}

/** Unmounts `target`; `detach` (MNT_DETACH) lets go of a mount still in use. */
export function unmount(target: string, options: { detach?: boolean } = {}): void {
  try {
    unmountNative(target, options.detach ?? false);
  } catch (error) {
    rethrow(error);
  }
}

/**
 * Performs `mounts` (containerd's form: one overlay or bind mount) at `target`. Throws INVALID_ARGUMENT for
 * a mount type or option this does not take, Node errno errors from the kernel.
 */
export function mountAll(mounts: readonly Mount[], target: string): void {
  if (mounts.length !== 1) throw new InvalidArgumentError(`expected one mount, got ${mounts.length}`);
  const mount = mounts[0]!;
  if (mount.type === 'bind') {
    mountBind(mount.source, target, mount.options.includes('ro'));
    return;
  }
  if (mount.type !== 'overlay') throw new InvalidArgumentError(`unknown mount type ${JSON.stringify(mount.type)}`);
  let lowers: string[] = [];
  let upper: string | undefined;
  let work: string | undefined;
  const rest: string[] = [];
  for (const option of mount.options) {
    if (option.startsWith('lowerdir=')) lowers = option.slice('lowerdir='.length).split(':');
    else if (option.startsWith('upperdir=')) upper = option.slice('upperdir='.length);
    else if (option.startsWith('workdir=')) work = option.slice('workdir='.length);
    else if (option !== 'ro' && option !== 'rw') rest.push(option);
  }
  if ((upper === undefined) !== (work === undefined)) throw new InvalidArgumentError('an overlay mount needs both upperdir and workdir, or neither');
  mountOverlay(target, lowers, upper === undefined ? undefined : { upper, work: work! }, rest);
}

/** The `mount(8)` command that performs `mounts` at `target` (what `ctr snapshots mounts` prints). */
export function mountCommand(mounts: readonly Mount[], target: string): string {
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return mounts.map((m) => `mount -t ${m.type} ${quote(m.source)} ${quote(target)}${m.options.length > 0 ? ` -o ${quote(m.options.join(','))}` : ''}`).join(' && ');
}

/** What `du -s` counts for the tree at `path`: bytes of allocated blocks and inodes, hardlinks once, the root included. */
export function diskUsage(path: string): { size: number; inodes: number } {
  try {
    const [size, inodes] = diskUsageNative(path);
    return { size, inodes };
  } catch (error) {
    rethrow(error);
  }
}
