/**
 * Trees of unpacked images as the kernel shows them, for comparison with what umoci unpacks: a view of the
 * chain mounted with overlayfs, pictured without the overlay's own xattrs (which are not content).
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { Images } from '@strata/images';
import { snapshotTree, type NodeRecord } from './snapshot.js';

/** A directory's tree, the overlay's xattrs left out. */
export function picture(dir: string, options: { skipVanished?: boolean } = {}): Map<string, NodeRecord> {
  return snapshotTree(dir, { ...options, ignoreXattr: (name) => name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.') });
}

/** The tree of the committed snapshot `chainID` of `images`, through a kernel mount made under `work`. */
export async function chainTree(images: Images, chainID: string, work: string, options: { skipVanished?: boolean } = {}): Promise<Map<string, NodeRecord>> {
  const key = `check-${Math.random().toString(36).slice(2)}`;
  const target = mkdtempSync(join(work, 'view-'));
  await images.snapshotter.view(key, chainID);
  await images.snapshotter.mount(key, target);
  try {
    return picture(target, options);
  } finally {
    await images.snapshotter.unmount(target);
    await images.snapshotter.remove(key);
  }
}
