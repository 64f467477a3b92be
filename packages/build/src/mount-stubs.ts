/**
 * What a step's mounts leave in its tree: the runtime makes each mount's target (an empty file for a file's
 * bind mount), and the directories above it, where the tree has none, and they would land in the step's layer. As BuildKit does, they are noted
 * before the step runs and removed after it where they are still empty directories, and the directory
 * that holds them gets back the time it had.
 */
import { posix } from 'node:path';
import type { WritableLayer } from '@strata/core';
import type { RunMount } from './run-mounts.js';

/** The paths a mount will make (deepest first), and the directory above them with its time. */
export interface MountStub {
  readonly made: readonly string[];
  readonly parent: string;
  readonly mtimeNs: bigint;
}

const absent = (error: unknown) => ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '');

/** The stubs `mounts` will make in `layer` (a step's tree, before it runs). */
export async function mountStubs(layer: WritableLayer, mounts: readonly RunMount[]): Promise<MountStub[]> {
  const stubs: MountStub[] = [];
  for (const { target } of mounts) {
    const made: string[] = [];
    for (let path = target; ; path = posix.dirname(path)) {
      try {
        const st = await layer.lstat(path);
        if (made.length > 0) stubs.push({ made, parent: path, mtimeNs: st.mtimeNs });
        break;
      } catch (error) {
        if (!absent(error)) throw error;
        made.push(path);
      }
    }
  }
  return stubs;
}

/** Removes what `stubs` noted where it is still an empty directory, deepest first, and restores the times. */
export async function removeMountStubs(layer: WritableLayer, stubs: readonly MountStub[]): Promise<void> {
  for (const { made, parent, mtimeNs } of [...stubs].reverse()) {
    let removedAll = true;
    for (const path of made) {
      let st;
      try {
        st = await layer.lstat(path);
      } catch (error) {
        if (absent(error)) continue; // a mount nested in it went first
        throw error;
      }
      // The target of a file's bind mount is an empty file the runtime made; every other stub a directory.
      const emptyFile = path === made[0] && st.isFile() && st.size === 0;
      if (!emptyFile && (!st.isDirectory() || (await layer.readdir(path)).length > 0)) {
        removedAll = false;
        break;
      }
      await (emptyFile ? layer.unlink(path) : layer.rmdir(path));
    }
    // The parent changed only by what went again: its time as it was (what the step did there stays).
    if (removedAll && (await layer.lstat(parent)).mtimeNs !== mtimeNs) await layer.lutimes(parent, mtimeNs, mtimeNs);
  }
}
