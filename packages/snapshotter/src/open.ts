/**
 * Opening a root: its database, its recorded settings, and the driver (picked once, when the root is
 * created: overlay where a test mount succeeds, else userspace, unless told).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, mountOverlay, quote, setXattr, unmount, UnsupportedError } from '@strata/core';
import { overlayOptions } from './drivers.js';
import { Layout } from './layout.js';
import { compatibleDrivers, LocalSnapshotter, metadataPath } from './local.js';
import { MetadataStore, type Metadata, type SnapshotEntry } from './metadata.js';
import type { DriverName, Snapshotter } from './snapshotter.js';

/** Options of `openSnapshotter`. */
export interface OpenOptions {
  /**
   * The driver. Default: the one the root recorded; for a new root, `overlay` when a test mount in the root
   * succeeds, else `userspace`. A root made with `native` stays native; `overlay` and `userspace` share a
   * layout, so a root may switch between them.
   */
  readonly driver?: DriverName;
}

const DRIVERS: readonly DriverName[] = ['overlay', 'userspace', 'native'];

/** Whether the kernel mounts an overlay of directories under `root` for this process. */
export function canMountOverlay(root: string, namespace: 'trusted' | 'user'): boolean {
  const probe = mkdtempSync(join(root, 'probe-'));
  try {
    for (const d of ['l', 'u', 'w', 'm']) mkdirSync(join(probe, d));
    writeFileSync(join(probe, 'l', 'f'), '');
    mountOverlay(join(probe, 'm'), [join(probe, 'l')], { upper: join(probe, 'u'), work: join(probe, 'w') }, overlayOptions(namespace));
    unmount(join(probe, 'm'));
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Why the file system of `root` cannot hold overlay uppers (no xattrs in `namespace`), or undefined. */
function xattrProblem(root: string, namespace: 'trusted' | 'user'): string | undefined {
  const probe = mkdtempSync(join(root, 'probe-'));
  try {
    setXattr(probe, `${namespace}.strata-probe`, Uint8Array.of(1));
    return undefined;
  } catch (error) {
    return `its file system takes no ${namespace}.* extended attributes (${(error as NodeJS.ErrnoException).code ?? 'error'}), which overlay uppers need to mark opaque directories`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** A root opened whole: its snapshotter, and its database for the stores built beside it. */
export interface Root {
  readonly path: string;
  readonly snapshotter: Snapshotter;
  /** The root's one database: images, containers, content labels and leases keep their tables in it. */
  readonly metadata: Metadata;
  /**
   * For collectors (the images package's gc): every snapshot as recorded. Called inside
   * `metadata.transaction`, it reads the one instant the transaction sees.
   */
  snapshotRecords(): Iterable<SnapshotEntry>;
  /**
   * For collectors, inside `metadata.transaction`: forgets snapshots (records only, all at once; one with a
   * child outside the set is FAILED_PRECONDITION). Their directories go with the next `snapshotter.cleanup()`,
   * as containerd's metadata layer leaves its snapshotter's directories to the backend's cleanup.
   */
  forgetSnapshots(keys: readonly string[]): void;
  /** Closes the snapshotter and the database; idempotent. */
  close(): Promise<void>;
}

/** Opens `root` whole (see `openSnapshotter`, which this extends with the database). */
export async function openRoot(root: string, options: OpenOptions = {}): Promise<Root> {
  const { snapshotter, metadata } = await open(root, options);
  return {
    path: root,
    snapshotter,
    metadata,
    snapshotRecords: () => metadata.entries(),
    forgetSnapshots: (keys) => metadata.forget(keys),
    close: () => snapshotter.close(),
  };
}

/**
 * Opens the snapshotter of `root` (created on first use). Throws INVALID_ARGUMENT for an unknown driver,
 * FAILED_PRECONDITION for a driver the root cannot switch to, UNSUPPORTED for a driver the host cannot
 * serve there (overlay without a working kernel mount; overlay or userspace on a file system without
 * extended attributes: use native).
 */
export async function openSnapshotter(root: string, options: OpenOptions = {}): Promise<Snapshotter> {
  return (await open(root, options)).snapshotter;
}

async function open(root: string, options: OpenOptions): Promise<{ snapshotter: Snapshotter; metadata: MetadataStore }> {
  if (options.driver !== undefined && !DRIVERS.includes(options.driver)) {
    throw new InvalidArgumentError(`unknown driver ${quote(String(options.driver))}: use overlay, userspace or native`);
  }
  new Layout(root).init();
  const meta = MetadataStore.open(metadataPath(root));
  try {
    const settings = meta.settings(() => {
      const xattrNamespace = process.geteuid?.() === 0 ? 'trusted' : 'user';
      const driver = options.driver ?? (canMountOverlay(root, xattrNamespace) ? 'overlay' : 'userspace');
      const problem = driver === 'native' ? undefined : xattrProblem(root, xattrNamespace);
      if (problem !== undefined) throw new UnsupportedError(`root ${quote(root)} cannot use the ${driver} driver: ${problem}; use the native driver`);
      return { driver, xattrNamespace };
    });
    if (options.driver === 'overlay' && !canMountOverlay(root, settings.xattrNamespace)) {
      throw new UnsupportedError(`the kernel does not mount overlays under ${quote(root)} for this process (it needs CAP_SYS_ADMIN): use the userspace driver`);
    }
    const recorded = settings.driver as DriverName;
    const driver = options.driver ?? recorded;
    if (!compatibleDrivers(driver, recorded)) {
      throw new FailedPreconditionError(`root ${quote(root)} was made for the ${recorded} driver, whose layout ${driver} cannot read`);
    }
    if (driver !== recorded) meta.setDriver(driver);
    return { snapshotter: new LocalSnapshotter(root, meta, settings, driver), metadata: meta };
  } catch (error) {
    meta.close();
    throw error;
  }
}
