/**
 * What a step's mounts leave in its tree: the runtime makes each mount's target (an empty file for a file's
 * bind mount), and the directories above it, where the tree has none, and they would land in the step's layer. As BuildKit does, they are noted
 * before the step runs and removed after it where they are still empty directories, and the directory
 * that holds them gets back its time.
 */
import { posix } from 'node:path';
import type { WritableLayer } from '@strata/core';
import type { RunMount } from './run-mounts.js';

/** The paths a mount will make (deepest first), and the directory above them with its time before the step. */
export interface MountStub {
  readonly made: readonly string[];
  /** Where the runtime will make the first of `made`: a symlink to a directory stands for that directory. */
  readonly parent: string;
  /** Undefined where `parent` is no directory (the runtime then fails, or makes nothing there). */
  readonly mtimeNs: bigint | undefined;
}

const absent = (error: unknown) => ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '');

/** The stubs `mounts` will make in `layer` (a step's tree, before it runs). */
export async function mountStubs(layer: WritableLayer, mounts: readonly RunMount[]): Promise<MountStub[]> {
  const stubs: MountStub[] = [];
  for (const { target } of mounts) {
    if (target === undefined) continue; // a secret given as a variable only
    const made: string[] = [];
    for (let path = target; ; path = posix.dirname(path)) {
      try {
        await layer.lstat(path);
      } catch (error) {
        if (!absent(error)) throw error;
        made.push(path);
        continue;
      }
      // The runtime follows a symlink here, as every path below it did: the directory it reaches is the one
      // whose time the stub changes.
      if (made.length > 0) stubs.push({ made, parent: path, mtimeNs: await directoryTime(layer, path) });
      break;
    }
  }
  return stubs;
}

async function directoryTime(layer: WritableLayer, path: string): Promise<bigint | undefined> {
  try {
    const st = await layer.stat(path);
    return st.isDirectory() ? st.mtimeNs : undefined;
  } catch (error) {
    if (absent(error) || (error as NodeJS.ErrnoException).code === 'ELOOP') return undefined;
    throw error;
  }
}

/**
 * Removes what `stubs` noted where it is still an empty directory (or the empty file of a file's bind),
 * deepest first, and gives the directory above the time it had: before the step where the runtime's stub
 * was the last thing to change it, else (the step wrote there too) the time the step left, as BuildKit's
 * cleaner keeps it.
 */
export async function removeMountStubs(layer: WritableLayer, stubs: readonly MountStub[]): Promise<void> {
  for (const { made, parent, mtimeNs } of [...stubs].reverse()) {
    const top = made[made.length - 1]!;
    let stubTime: bigint | undefined;
    let left: bigint | undefined;
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
      if (path === top) {
        stubTime = st.mtimeNs;
        left = await directoryTime(layer, parent);
      }
      await (emptyFile ? layer.unlink(path) : layer.rmdir(path));
    }
    if (!removedAll || mtimeNs === undefined || left === undefined || stubTime === undefined) continue;
    // The stub's making set the parent's time, and anything the step did there after it set a later one
    // (a clock tick apart at least, so one within the same tick reads as the stub's).
    const restore = left <= stubTime ? mtimeNs : left;
    if ((await layer.stat(parent)).mtimeNs !== restore) await layer.utimes(parent, restore, restore);
  }
}
