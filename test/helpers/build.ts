/**
 * What the build tests share: a strata root with the minbase image imported as `example.com/base:base`,
 * buildah with the same image in a store of its own, build contexts written from a table, and the trees of
 * the results as the kernel shows them.
 */
import { chmodSync, lutimesSync, mkdirSync, mkdtempSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build, type BuildEvent, type BuildOptions, type BuildResult } from '@strata/build';
import type { WritableLayer } from '@strata/core';
import { openImages, type Images } from '@strata/images';
import { aptImage } from '../../benchmarks/inputs.js';
import { execBuildah } from './buildah-run.js';
import type { NodeRecord } from './snapshot.js';
import { chainTree, picture } from './unpacked.js';

export const BASE = 'example.com/base:base';

/** A context's files: text content, or a spec with mode, mtime or a symlink target. */
export type ContextFiles = Record<string, string | { content?: string; mode?: number; mtime?: number; symlink?: string; dir?: true }>;

/** Writes `files` under `dir` (made if missing). */
export function writeContext(dir: string, files: ContextFiles): string {
  mkdirSync(dir, { recursive: true });
  for (const [path, spec] of Object.entries(files)) {
    const host = join(dir, path);
    mkdirSync(dirname(host), { recursive: true });
    const s = typeof spec === 'string' ? { content: spec } : spec;
    if (s.symlink !== undefined) symlinkSync(s.symlink, host);
    else if (s.dir) mkdirSync(host, { recursive: true });
    else writeFileSync(host, s.content ?? '');
    if (s.mode !== undefined) chmodSync(host, s.mode);
    if (s.mtime !== undefined) (s.symlink === undefined ? utimesSync : lutimesSync)(host, s.mtime, s.mtime);
  }
  return dir;
}

/** A strata root under `work` with the minbase image imported as `BASE`. */
export async function rootWithBase(work: string, name = 'root', driver: 'overlay' | 'userspace' = 'overlay'): Promise<Images> {
  const images = await openImages(join(work, name), { driver });
  const apt = aptImage();
  const imported = await images.import(apt.layout, { name: 'example.com/base' });
  if (!imported.images.some((i) => i.name === 'docker.io/example.com/base:base' || i.name === BASE)) throw new Error(`import named ${imported.images.map((i) => i.name).join(', ')}`);
  return images;
}

/** Builds and records every event. */
export async function buildWith(images: Images, options: BuildOptions): Promise<{ result: BuildResult; events: BuildEvent[]; ran: string[]; output: string }> {
  const events: BuildEvent[] = [];
  const result = await build(images, { ...options, onEvent: (e) => events.push(e) });
  const ran = events.flatMap((e) => (e.type === 'done' && e.layer !== null && !e.cached ? [e.instruction] : []));
  const output = events.flatMap((e) => (e.type === 'output' ? [e.data.toString()] : [])).join('');
  return { result, events, ran, output };
}

/** A built image's files, read through strata's view of its unpacked top snapshot. */
export async function imageView(images: Images, ref: string): Promise<WritableLayer> {
  return images.snapshotter.open((await images.unpack(ref)).chainID!);
}

/** The tree of a built image, unpacked in its root and mounted by the kernel. */
export async function imageTree(images: Images, ref: string, work: string, options: { skipVanished?: boolean } = {}): Promise<Map<string, NodeRecord>> {
  const unpacked = await images.unpack(ref);
  return chainTree(images, unpacked.chainID!, work, options);
}

/** buildah with a store of its own under `work`, the minbase image in it as `BASE`. */
export class Buildah {
  readonly #args: string[];
  /** Its temporary directory, under `work`: buildah keeps RUN --mount=type=cache's caches there, which would outlive the test in /var/tmp. */
  readonly #env: NodeJS.ProcessEnv;

  constructor(readonly work: string) {
    this.#args = ['--root', join(work, 'buildah', 'root'), '--runroot', join(work, 'buildah', 'run'), '--storage-driver', 'overlay'];
    this.#env = { ...process.env, TMPDIR: join(work, 'buildah', 'tmp') };
    mkdirSync(this.#env.TMPDIR!, { recursive: true });
    const id = this.run(['pull', '--quiet', `oci:${aptImage().layout}:base`]).trim().split('\n').at(-1)!;
    this.run(['tag', id, BASE]);
  }

  /** A buildah command on this store (run again when buildah only failed to seal its memfd copy). */
  run(args: string[]): string {
    return execBuildah('buildah', [...this.#args, ...args], this.#env);
  }

  /** `buildah bud --layers --isolation chroot` of `context`, tagged `tag`. */
  build(context: string, tag: string, extra: string[] = []): void {
    this.run(['bud', '--quiet', '--layers', '--isolation', 'chroot', '--pull-never', '--format', 'docker', ...extra, '-t', tag, context]);
  }

  config(tag: string): Record<string, unknown> {
    return (JSON.parse(this.run(['inspect', '--type', 'image', tag])) as { Docker: { config: Record<string, unknown> } }).Docker.config;
  }

  /** The image's tree, through a buildah container's mount. */
  tree(tag: string): Map<string, NodeRecord> {
    const container = this.run(['from', '--pull-never', tag]).trim().split('\n').at(-1)!;
    try {
      const mount = this.run(['mount', container]).trim();
      return picture(mount);
    } finally {
      this.run(['rm', container]);
    }
  }

  close(): void {
    try {
      this.run(['rm', '--all']);
      this.run(['rmi', '--all', '--force']);
    } catch {
      // nothing left
    }
  }
}

/** A scratch directory. */
export function scratch(prefix: string): string {
  return mkdtempSync(join(process.env.TMPDIR ?? '/tmp', prefix));
}
