/**
 * The directories behind `RUN --mount=type=cache`, under `<root>/build/cache-mounts/`: one per id (named by
 * the id's sha256, so any id is a safe name), made on first use with the mount's mode and owner and kept
 * across builds until `build cache prune` removes them (all, or those unused for a while: a step that lets
 * go of one touches `<name>.used` beside it), as BuildKit keeps them. Sharing as BuildKit
 * does: `shared` (the default) lets any number of steps use the directory at once; `locked` waits until no
 * other step holds it; `private` takes another instance of the id while one is held. A step holding a
 * directory leaves a file named by its pid beside it (created exclusively for `locked` and `private`), so a
 * crashed build's hold is seen as stale, and prune leaves what a live build holds.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeFd, diskUsage, FailedPreconditionError, mountBind, openDirAt, openRoot, processAlive, removeTree, unmount } from '@strata/core';
import type { Images } from '@strata/images';
import type { CacheMount } from './run-mounts.js';

/** Where a root keeps its cache mounts. */
export const cacheMountsDir = (images: Images): string => join(images.root.path, 'build', 'cache-mounts');

/** A held cache directory: `path` to mount; `release` when the step is done with it. */
export interface HeldCache {
  readonly path: string;
  release(): void;
}

/** Beside a cache directory, the file whose time is the last release of it. */
const USED = '.used';

export class CacheMounts {
  constructor(readonly dir: string) {}

  /**
   * Takes the directory for `mount` (making it on first use), as its `sharing` allows. `key` names it (default
   * the id); `seed` fills a new one before it is put in place (a cache `from` a stage: its first contents),
   * so no step sees it half filled.
   */
  async acquire(mount: CacheMount, signal?: AbortSignal, { key = mount.id, seed }: { key?: string; seed?: (dir: string) => Promise<void> } = {}): Promise<HeldCache> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const base = createHash('sha256').update(key).digest('hex');
    for (let instance = 0; ; ) {
      signal?.throwIfAborted();
      const name = instance === 0 ? base : `${base}-${instance}`;
      const hold = this.#hold(name, mount.sharing !== 'shared');
      if (hold !== undefined) {
        const path = join(this.dir, name);
        try {
          await this.#make(path, mount, seed);
        } catch (error) {
          hold();
          throw error;
        }
        return {
          path,
          release: () => {
            try {
              writeFileSync(join(this.dir, `${name}${USED}`), ''); // its time: when a step last had it
            } catch {
              // Only an age for prune --older-than: without it the directory's own time stands in.
            } finally {
              hold();
            }
          },
        };
      }
      if (mount.sharing === 'private') instance++;
      else await sleep(50); // locked: until the step holding it is done
    }
  }

  /** Makes the directory at `path` unless it is there: made aside (and seeded), then renamed into place. */
  async #make(path: string, mount: CacheMount, seed?: (dir: string) => Promise<void>): Promise<void> {
    if (seed === undefined) {
      try {
        makeDirectory(path, mount); // the first step to make it wins; the others use it
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      return;
    }
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) return;
    // No dot in its name: a dead build's half-made one is removed by prune like any unheld directory.
    const made = join(this.dir, `seed-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      makeDirectory(made, mount);
      await seed(made);
      renameSync(made, path);
    } catch (error) {
      removeTree(made);
      // Another step made it meanwhile: theirs stands.
      if (!['EEXIST', 'ENOTEMPTY'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
    }
  }

  /**
   * Marks `name` held by this process; with `exclusive`, only when no live process holds it. Returns what
   * releases it, or undefined when it is held exclusively elsewhere (or at all, for `exclusive`).
   */
  #hold(name: string, exclusive: boolean): (() => void) | undefined {
    const holds = this.#holders(name);
    if (holds.some((h) => h.exclusive) || (exclusive && holds.length > 0)) return undefined;
    const file = join(this.dir, `${name}.${exclusive ? 'lock' : `use-${process.pid}-${randomBytes(4).toString('hex')}`}`);
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined; // another process won the race
      throw error;
    }
    // Taken while another process took a hold: a shared hold gives way to a lock, a lock to any other hold
    // (both looked before they took; one of them sees the other now, and waits).
    const holders = this.#holders(name);
    if (exclusive ? holders.length > 1 : holders.some((h) => h.exclusive)) {
      unlinkSync(file);
      return undefined;
    }
    return () => rmSync(file, { force: true });
  }

  /** The live holds on `name`; stale ones (their process gone) are removed on the way. */
  #holders(name: string): Array<{ exclusive: boolean }> {
    const out: Array<{ exclusive: boolean }> = [];
    for (const entry of readdirSync(this.dir)) {
      if (!entry.startsWith(`${name}.`) || entry.endsWith(USED)) continue;
      const file = join(this.dir, entry);
      let pid: number;
      try {
        pid = Number(readFileSync(file, 'utf8'));
      } catch {
        continue; // released meanwhile
      }
      // A lock file just created and not yet written reads as 0: held.
      if (pid !== 0 && !processAlive(pid)) rmSync(file, { force: true });
      else out.push({ exclusive: entry.endsWith('.lock') });
    }
    return out;
  }

  /**
   * When a step last let go of `name` (its directory's time where none has since this was recorded), in ms;
   * 0 when another prune removed it meanwhile.
   */
  #lastUse(name: string): number {
    const at = (file: string) => statSync(join(this.dir, file), { throwIfNoEntry: false })?.mtimeMs;
    return at(`${name}${USED}`) ?? at(name) ?? 0;
  }

  /** Every cache directory: when a step last had it (ms), the bytes it takes, and whether a live build holds it. */
  list(): Array<{ name: string; used: number; size: number; held: boolean }> {
    return this.#names().map((name) => ({ name, used: this.#lastUse(name), size: diskUsage(join(this.dir, name)).size, held: this.#holders(name).length > 0 }));
  }

  /** Removes the directory `name` unless a live build holds it (then false). */
  remove(name: string): boolean {
    if (this.#holders(name).length > 0) return false;
    removeTree(join(this.dir, name));
    rmSync(join(this.dir, `${name}${USED}`), { force: true });
    return true;
  }

  /**
   * Removes every cache directory no live build holds (with `before`, only those no step has had since);
   * returns how many went.
   */
  prune(before?: Date): number {
    let removed = 0;
    for (const name of this.#names()) if ((before === undefined || this.#lastUse(name) < before.getTime()) && this.remove(name)) removed++;
    return removed;
  }

  /** The cache directories' names (the files beside them have a dot in theirs). */
  #names(): string[] {
    try {
      return readdirSync(this.dir).filter((name) => !name.includes('.'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }
}

/** A cache directory as the mount asks for it: its owner, then its mode (chown clears set-id bits), whatever the umask. */
function makeDirectory(path: string, mount: CacheMount): void {
  mkdirSync(path, { mode: 0o700 });
  chownSync(path, mount.uid, mount.gid);
  chmodSync(path, mount.mode);
}

/**
 * Directory `source` of a held cache (`RUN --mount=type=cache,source=…` without `from`), as BuildKit mounts
 * a subpath of the cache, bound at `at` (a new directory of the step's bundle) for the runtime to mount: the
 * directory is opened beneath the cache with no symlink followed on the way, and that open directory is what
 * is bound, so nothing a step leaves in the shared cache, a symlink out or a directory renamed, can point the
 * mount elsewhere (BuildKit's testCacheMountSourceEscape). The runtime cannot bind the descriptor itself: a
 * bind's source must be a mount of its own namespace. `release` unmounts it. Throws FAILED_PRECONDITION when
 * it is missing, not a directory, or reached through a symlink.
 */
export function cacheSubdirectory(cache: HeldCache, source: string, at: string): HeldCache {
  const relative = posix.join('/', source).slice(1);
  if (relative === '') return { path: cache.path, release: () => {} };
  const root = openRoot(cache.path);
  let fd: number;
  try {
    fd = openDirAt(root, relative);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // The last component a symlink says ENOTDIR (O_NOFOLLOW with O_DIRECTORY); a look names it, for the message only.
    const symlink = code === 'ELOOP' || code === 'EXDEV' || (code === 'ENOTDIR' && lstatSync(join(cache.path, relative), { throwIfNoEntry: false })?.isSymbolicLink() === true);
    const why = symlink ? 'is reached through a symlink, which a cache source may not follow' : code === 'ENOENT' ? 'is not in the cache' : code === 'ENOTDIR' ? 'is not a directory' : `cannot be opened (${code})`;
    throw new FailedPreconditionError(`the cache's source ${JSON.stringify(source)} ${why}`, { path: source, cause: error });
  } finally {
    closeFd(root);
  }
  try {
    mkdirSync(at, { mode: 0o700 });
    mountBind(`/proc/self/fd/${fd}`, at, false);
  } finally {
    closeFd(fd); // the mount holds the directory now
  }
  return {
    path: at,
    release: () => {
      unmount(at, { detach: true });
      rmdirSync(at); // fails while still mounted: the bundle is then left, never removed through the cache
    },
  };
}
