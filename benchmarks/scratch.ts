/**
 * Where benchmarks write: a fresh journaled ext4, made for the run and mounted from a sparse file.
 *
 * Why not the root file system's /tmp: on these VMs it is ext4 without a journal, and ext4 without a journal
 * does not reuse an inode deleted less than a minute ago (five, while its table block is dirty). Every
 * creation then walks past all of them: after a run deletes its 6,000-entry output, the next run's file
 * creations cost 10–15× more (16 µs a file on a journaled ext4, 250 µs after three rounds of churn here),
 * and more with every round. That is no host a container engine runs on, and it swamps what is measured:
 * tar and strata alike spent most of their time in `recently_deleted`. A journaled ext4 is what Docker and
 * containerd hosts have, and each run starts from the same empty one.
 *
 * The loop device does direct I/O to its file: buffered, it writes into the file's page cache, and each
 * fsync then waits for everything written since the last (the disk sees nothing before the flush), which
 * no real disk does. The apt change's layer synced as it is written cost 31 ms more buffered, 5 ms direct.
 *
 * As root only (mounting needs it, as dropping caches does). `STRATA_BENCH_SCRATCH=<dir>` writes in `dir`
 * as it is, and without root the run writes under the temporary directory as before.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A scratch directory, and how to give it back. */
export interface Scratch {
  dir: string;
  release(): void;
}

/** Sparse: blocks are only used as written. Room for the largest run (/usr/share outputs, registries, roots). */
const SIZE = '24G';

/** A directory under `parent`, on whatever file system that is. */
function plainScratch(parent: string): Scratch {
  const dir = mkdtempSync(join(parent, 'strata-bench-'));
  return { dir, release: () => rmSync(dir, { recursive: true, force: true }) };
}

export function makeScratch(cache: string): Scratch {
  const given = process.env.STRATA_BENCH_SCRATCH;
  if (given !== undefined) {
    mkdirSync(given, { recursive: true });
    return plainScratch(given);
  }
  if (process.getuid?.() !== 0) return plainScratch(tmpdir());
  mkdirSync(cache, { recursive: true });
  const image = join(cache, `bench-scratch-${process.pid}.ext4`);
  const dir = mkdtempSync(join(tmpdir(), 'strata-bench-'));
  try {
    execFileSync('truncate', ['-s', SIZE, image]);
    // Inode tables and journal written now: lazy initialisation would zero them in the background while runs are timed.
    execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]);
    const device = execFileSync('losetup', ['--direct-io=on', '--find', '--show', image], { encoding: 'utf8' }).trim();
    try {
      execFileSync('mount', [device, dir]);
    } finally {
      // Detached now if the mount failed, else (autoclear) when it is unmounted.
      execFileSync('losetup', ['--detach', device]);
    }
  } catch (error) {
    rmSync(image, { force: true });
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    try {
      // Lazily when a daemon of an interrupted run still holds a file there: detached now, gone when it exits.
      execFileSync('umount', ['--lazy', dir]);
      rmSync(dir, { recursive: true, force: true });
    } finally {
      rmSync(image, { force: true });
    }
  };
  // An interrupted run leaves no mount behind.
  process.once('exit', release);
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15]] as const) {
    process.once(signal, () => {
      release();
      process.exit(128 + number);
    });
  }
  return { dir, release };
}
