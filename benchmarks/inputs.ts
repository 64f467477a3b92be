/**
 * Benchmark inputs: real trees only. The full run uses a debootstrap minbase root filesystem (built once
 * and cached) and /usr/share (50,000+ entries); the tiny run uses /usr/share/zoneinfo.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeScratch, type Scratch } from './scratch.js';

/** A real tree a benchmark runs on. */
export interface Tree {
  name: string;
  path: string;
}

/** The trees a run measures, and a scratch directory for outputs (see scratch.ts). */
export interface Inputs {
  trees: Tree[];
  scratch: Scratch;
}

/** Where inputs made or downloaded once are kept (the benchmarks' trees, the tests' corpora and tools). */
export const CACHE = process.env.STRATA_BENCH_CACHE ?? '/var/cache/strata';

/**
 * The cache's directory `name`, made once: `fill` writes it into a new directory beside it, which is renamed
 * into place only when complete, so a failed or interrupted fill leaves nothing that looks made.
 */
export function cachedDirectory(name: string, fill: (work: string) => void): string {
  const dir = join(CACHE, name);
  if (existsSync(dir)) return dir;
  mkdirSync(CACHE, { recursive: true });
  const work = mkdtempSync(`${dir}-`);
  try {
    fill(work);
    renameSync(work, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dir;
}

/** Builds (once) a Debian bookworm minbase root filesystem with debootstrap; tests use it too. */
export function minbaseRootfs(): string {
  const dir = join(CACHE, 'minbase');
  if (existsSync(join(dir, 'etc/os-release'))) return dir;
  mkdirSync(CACHE, { recursive: true });
  const staging = `${dir}.tmp`;
  rmSync(staging, { recursive: true, force: true });
  process.stderr.write('building the minbase rootfs with debootstrap (once)…\n');
  execFileSync('debootstrap', ['--variant=minbase', 'bookworm', staging, 'http://deb.debian.org/debian'], { stdio: ['ignore', 'ignore', 'inherit'] });
  renameSync(staging, dir);
  return dir;
}

export async function prepareInputs(options: { tiny: boolean }): Promise<Inputs> {
  const scratch = makeScratch(CACHE);
  if (options.tiny) return { trees: [{ name: 'zoneinfo', path: '/usr/share/zoneinfo' }], scratch };
  return { trees: [{ name: 'minbase', path: minbaseRootfs() }, { name: 'usr-share', path: '/usr/share' }], scratch };
}

/** A real container change: the upper `apt-get install python3 curl` leaves over minbase, and the merged tree. */
export interface AptChange {
  lower: string;
  upper: string;
  merged: string;
}

/** Builds (once) the apt change over the minbase rootfs (inputs/apt-upper.sh); tests use it too. */
export function aptChange(): AptChange {
  const lower = minbaseRootfs();
  execFileSync('bash', [join(import.meta.dirname, 'inputs', 'apt-upper.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { lower, upper: join(CACHE, 'apt-upper'), merged: join(CACHE, 'apt-merged') };
}

/** A real two-layer image made by umoci and skopeo: minbase, then the apt change (inputs/two-layer-image.sh). */
export interface AptImage {
  /** An OCI layout with tags `base` and `apt`. */
  layout: string;
  /** The `apt` image as a docker save archive (skopeo), named example.com/apt:latest. */
  dockerArchive: string;
}

/** Builds (once) the two-layer apt image; tests and benchmarks use it. */
export function aptImage(): AptImage {
  const change = aptChange();
  return twoLayerImage(change.lower, change.merged, join(CACHE, 'apt-image'));
}

/** Builds (once) a two-layer image of `base` and then `changed` at `out` (an OCI layout) and `out`.docker.tar. */
export function twoLayerImage(base: string, changed: string, out: string): AptImage {
  const image = { layout: out, dockerArchive: `${out}.docker.tar` };
  execFileSync('bash', [join(import.meta.dirname, 'inputs', 'two-layer-image.sh'), base, changed, image.layout, image.dockerArchive], { stdio: ['ignore', 'ignore', 'inherit'] });
  return image;
}
