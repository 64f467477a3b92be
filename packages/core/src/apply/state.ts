/**
 * What one apply remembers between entries: which paths the layer itself put in place (its deletions never
 * remove those), which it whited out, and the work deferred to the end (directory modes and times, hardlinks
 * whose target comes later). Paths are resolved paths (see `ApplyTarget`).
 *
 * One rule keeps deferred work honest: when a later entry replaces a path, whatever was pending at or below
 * it is dropped, because what it was meant for is gone (the last entry for a path wins). So no deferred step
 * ever runs on a path that now means something else.
 */
import type { Entry } from '../entry.js';
import { isWithin, parentOf, ROOT } from '../path.js';

export class ApplyState {
  /**
   * Paths this layer put in place, and every ancestor of one: never removed by this layer's own deletions.
   * Only deletions and hardlinks ask (most layers have few of either, many have none), so paths are listed
   * as they come and folded into the set when one is asked about: an append per entry, not two or three
   * lookups in a set of tens of thousands of paths.
   */
  readonly #touched = new Set<string>([ROOT]);
  #pending: string[] = [];
  /** Paths this layer whited out: a directory it then makes there hides everything below (opaque). */
  readonly whitedOut = new Set<string>();
  /** Directories whose mode and times are set at the end, so that their children cannot disturb them. */
  readonly directories = new Map<string, Entry>();
  /** Hardlinks linked at the end (their target came later in the layer), by the link's resolved path. */
  readonly links = new Map<string, Entry>();
  /** Devices (and links to them) the policy left out, where no later entry took the path. */
  readonly skippedDevices = new Set<string>();

  /** Records that the layer put something at `path`. */
  touch(path: string): void {
    this.#pending.push(path);
  }

  /** True when the layer put something at `path` or below it. */
  isTouched(path: string): boolean {
    const pending = this.#pending;
    if (pending.length !== 0) {
      const touched = this.#touched;
      for (const added of pending) for (let p = added; !touched.has(p); p = parentOf(p)) touched.add(p);
      this.#pending = [];
    }
    return this.#touched.has(path);
  }

  /**
   * A new entry takes `path`: anything still pending for an earlier entry there is void. `present`: something
   * stands there now. When nothing does, only a hardlink can be pending (a directory pending its mode and
   * times stands where it is until removed, and removing it drops it), and an apply's new paths, nearly all
   * of them, cost no lookup in the map of directories.
   */
  replaced(path: string, present = true): void {
    if (present) this.directories.delete(path);
    if (this.links.size !== 0) this.links.delete(path); // nearly always empty
    if (this.skippedDevices.size !== 0) this.skippedDevices.delete(path); // empty but where devices are skipped
  }

  /** `path` was removed (with everything below it, for a directory): forget what was pending there. */
  removed(path: string, wasDirectory: boolean): void {
    this.replaced(path);
    if (!wasDirectory) return;
    for (const dir of this.directories.keys()) if (isWithin(dir, path)) this.directories.delete(dir);
    for (const link of this.links.keys()) if (isWithin(link, path)) this.links.delete(link);
    for (const device of this.skippedDevices) if (isWithin(device, path)) this.skippedDevices.delete(device);
  }
}
