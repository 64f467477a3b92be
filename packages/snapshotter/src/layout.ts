/**
 * A root on disk, laid out as containerd's overlay snapshotter lays its own out, so the same root serves
 * the kernel and strata's userspace view alike:
 *
 *   <root>/metadata.db                the database (see metadata.ts)
 *   <root>/snapshots/<id>/fs          a snapshot's own layer: an overlay upper, or (native) a full tree
 *   <root>/snapshots/<id>/work        the overlay work directory of an active snapshot
 *   <root>/snapshots/new-<pid>-<rand> a snapshot being made, renamed to <id> in the transaction that records it
 *   <root>/snapshots/rm-<id>          a snapshot being removed, after the transaction that forgot it
 *
 * So a crash leaves only what `cleanup` can tell apart and remove: staging directories of processes that
 * are gone, and numbered directories no record names.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive, removeTree } from '@strata/core';

/** What `list` finds under `snapshots/`. */
export interface Listing {
  /** Numbered snapshot directories. */
  readonly ids: number[];
  /** Staging directories whose process is gone (a live process's are left alone). */
  readonly deadStaging: string[];
  /** Directories of removals that did not finish. */
  readonly removing: string[];
  /** Anything else: reported, never touched. */
  readonly unknown: string[];
}

export class Layout {
  readonly snapshots: string;

  constructor(readonly root: string) {
    this.snapshots = join(root, 'snapshots');
  }

  /** Creates the root's directories (mode 0700: snapshots may hold anyone's files). */
  init(): void {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    mkdirSync(this.snapshots, { recursive: true, mode: 0o700 });
  }

  dir(id: number): string {
    return join(this.snapshots, String(id));
  }

  fs(id: number): string {
    return join(this.snapshots, String(id), 'fs');
  }

  work(id: number): string {
    return join(this.snapshots, String(id), 'work');
  }

  /** A new, empty staging directory for a snapshot being made. */
  stage(): string {
    const dir = join(this.snapshots, `new-${process.pid}-${randomBytes(6).toString('hex')}`);
    mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /**
   * Moves a staged snapshot to its numbered place. A directory already there cannot belong to a record (ids
   * are never reused): it is what a crash left between this rename and its transaction's commit, and goes.
   */
  publish(staging: string, id: number): void {
    const target = this.dir(id);
    removeTree(target);
    renameSync(staging, target);
  }

  /** Moves a snapshot's directory aside for removal (after its record is gone); returns where it went. */
  retire(id: number): string | undefined {
    const aside = join(this.snapshots, `rm-${id}`);
    try {
      renameSync(this.dir(id), aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    return aside;
  }

  /** Removes a directory tree (a retired or staged snapshot). */
  discard(path: string): void {
    removeTree(path);
  }

  /** What is under `snapshots/`, sorted into the kinds `cleanup` and `fsck` deal with. */
  list(): Listing {
    const ids: number[] = [];
    const deadStaging: string[] = [];
    const removing: string[] = [];
    const unknown: string[] = [];
    for (const name of readdirSync(this.snapshots)) {
      const path = join(this.snapshots, name);
      if (/^[1-9]\d*$/.test(name)) ids.push(Number(name));
      else if (/^rm-\d+$/.test(name)) removing.push(path);
      else if (/^new-\d+-[0-9a-f]+$/.test(name)) {
        if (!processAlive(Number(name.split('-')[1]))) deadStaging.push(path);
      } else unknown.push(path);
    }
    return { ids, deadStaging, removing, unknown };
  }
}
