/**
 * The build cache, each behaviour its own test: nothing changed runs nothing; an mtime alone runs nothing; a
 * file rewritten with the same size and mtime reruns its COPY and what follows (the ctime tells); a file
 * `.dockerignore` excludes runs nothing; a build arg reruns only the steps that see it; a stage rebuilt to
 * the same bytes keeps the `COPY --from` after it cached; `--no-cache` runs all; the collector keeps what
 * the cache holds until it is pruned. Also reproducible builds and squash.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildCache } from '@strata/build';
import type { Images } from '@strata/images';
import { BASE, buildWith, imageTree, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';
import { diffSnapshots } from './helpers/snapshot.js';

const DOCKERFILE = `
FROM ${BASE} AS stage
COPY data.txt unrelated.txt /in/
RUN tr a-z A-Z < /in/data.txt > /out.txt

FROM ${BASE}
COPY app.txt /app/
ARG FLAVOR=plain
COPY notes.txt /app/
COPY --from=stage /out.txt /app/out.txt
RUN echo "flavor $FLAVOR" > /app/flavor.txt
`;

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap'))('the build cache', () => {
  let work: string;
  let images: Images;
  let context: string;

  beforeAll(async () => {
    work = scratch('strata-build-cache-');
    images = await rootWithBase(work);
    context = writeContext(join(work, 'context'), {
      Dockerfile: DOCKERFILE,
      '.dockerignore': '*.tmp\n',
      'data.txt': 'data\n',
      'unrelated.txt': 'one\n',
      'app.txt': 'app v1\n',
      'notes.txt': 'notes\n',
      'scratch.tmp': 'excluded\n',
    });
  }, 30 * 60_000);

  afterAll(async () => {
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const steps = {
    stageCopy: 'COPY data.txt unrelated.txt /in/',
    stageRun: 'RUN tr a-z A-Z < /in/data.txt > /out.txt',
    app: 'COPY app.txt /app/',
    notes: 'COPY notes.txt /app/',
    from: 'COPY --from=stage /out.txt /app/out.txt',
    flavor: 'RUN echo "flavor $FLAVOR" > /app/flavor.txt',
  };
  const all = Object.values(steps);

  it('runs every step the first time, and none when nothing changed', async () => {
    const first = await buildWith(images, { context, tags: ['example.com/cache:1'] });
    expect(first.ran).toEqual(all);
    const again = await buildWith(images, { context, tags: ['example.com/cache:1'] });
    expect(again.ran).toEqual([]);
    expect(again.result.cached).toBe(all.length);
    expect(again.result.config.rootfs.diff_ids).toEqual(first.result.config.rootfs.diff_ids);
  }, 120_000);

  it('runs nothing when only an mtime moved', async () => {
    const t = Date.now() / 1000 + 5;
    utimesSync(join(context, 'app.txt'), t, t);
    expect((await buildWith(images, { context })).ran).toEqual([]);
  }, 120_000);

  it('reruns a COPY whose file was rewritten with the same size and mtime, and what follows it', async () => {
    const path = join(context, 'app.txt');
    const before = statSync(path);
    writeFileSync(path, 'app v2\n'); // same size
    utimesSync(path, before.atime, before.mtime);
    expect(statSync(path).mtimeMs).toBe(before.mtimeMs);
    const { ran, result } = await buildWith(images, { context, tags: ['example.com/cache:2'] });
    expect(ran).toEqual([steps.app, steps.notes, steps.from, steps.flavor]);
    const tree = await imageTree(images, result.names[0]!, work);
    expect(tree.get('app/app.txt')?.sha256).toBe(sha('app v2\n'));
  }, 120_000);

  it('runs nothing when a file .dockerignore excludes changes', async () => {
    writeFileSync(join(context, 'scratch.tmp'), 'changed, and longer than before\n');
    expect((await buildWith(images, { context })).ran).toEqual([]);
  }, 120_000);

  it('reruns only the steps that see a changed build arg', async () => {
    const { ran, result } = await buildWith(images, { context, buildArgs: { FLAVOR: 'spicy' }, tags: ['example.com/cache:spicy'] });
    expect(ran).toEqual([steps.flavor]);
    const tree = await imageTree(images, result.names[0]!, work);
    expect(tree.get('app/flavor.txt')?.sha256).toBe(sha('flavor spicy\n'));
  }, 120_000);

  it('keeps COPY --from cached when its stage rebuilds to the same bytes', async () => {
    writeFileSync(join(context, 'unrelated.txt'), 'two, which the stage copies but its output does not depend on\n');
    const { ran } = await buildWith(images, { context });
    expect(ran).toEqual([steps.stageCopy, steps.stageRun]);
    writeFileSync(join(context, 'data.txt'), 'other data\n');
    const changed = await buildWith(images, { context, tags: ['example.com/cache:data'] });
    expect(changed.ran).toEqual([steps.stageCopy, steps.stageRun, steps.from, steps.flavor]);
    const tree = await imageTree(images, 'example.com/cache:data', work);
    expect(tree.get('app/out.txt')?.sha256).toBe(sha('OTHER DATA\n'));
  }, 120_000);

  it('keeps apart two names that differ only in bytes that are not UTF-8, where a string hash sees one name', async () => {
    const named = (byte: string) => {
      const dir = writeContext(join(work, `latin1-${byte.charCodeAt(0).toString(16)}`), { Dockerfile: `FROM ${BASE}\nCOPY caf* /latin/\n` });
      writeFileSync(Buffer.from(`${dir}/caf${byte}`, 'latin1'), 'the same content\n');
      utimesSync(Buffer.from(`${dir}/caf${byte}`, 'latin1'), 1_600_000_000, 1_600_000_000);
      return dir;
    };
    const first = await buildWith(images, { context: named('\xe9'), tags: ['example.com/cache:e9'] });
    const second = await buildWith(images, { context: named('\xe8'), tags: ['example.com/cache:e8'] });
    expect(first.ran).toEqual(['COPY caf* /latin/']);
    expect(second.ran).toEqual(['COPY caf* /latin/']);
    expect([...(await imageTree(images, 'example.com/cache:e8', work)).keys()].filter((p) => p.startsWith('latin/'))).toEqual(['latin/caf\udce8']);
    expect((await buildWith(images, { context: named('\xe8') })).ran).toEqual([]);
  }, 120_000);

  it("keys a RUN by its mounts as written, never by a cache mount's contents", async () => {
    const dir = (name: string, mountId: string) =>
      writeContext(join(work, name), { Dockerfile: `FROM ${BASE}\nRUN --mount=type=cache,target=/var/cache/keyed,id=${mountId} date +%N >> /var/cache/keyed/runs && cp /var/cache/keyed/runs /ran\n` });
    const step = 'RUN date +%N >> /var/cache/keyed/runs && cp /var/cache/keyed/runs /ran'; // progress shows the command
    const id = `keyed-${Date.now()}`;
    expect((await buildWith(images, { context: dir('keyed', id) })).ran).toEqual([step]);
    expect((await buildWith(images, { context: dir('keyed', id) })).ran).toEqual([]); // the cache changed, the key did not
    expect((await buildWith(images, { context: dir('keyed-other', `${id}-other`) })).ran).toEqual([step]);
  }, 120_000);

  it('keys a RUN by what its bind mounts show, as COPY by its sources', async () => {
    const dir = writeContext(join(work, 'bound'), { Dockerfile: `FROM ${BASE}\nRUN --mount=type=bind,source=dep.txt,target=/dep.txt cp /dep.txt /got\n`, 'dep.txt': 'one\n', 'other.txt': 'x\n' });
    const step = 'RUN cp /dep.txt /got';
    expect((await buildWith(images, { context: dir })).ran).toEqual([step]);
    writeFileSync(join(dir, 'other.txt'), 'not bound\n');
    expect((await buildWith(images, { context: dir })).ran).toEqual([]);
    writeFileSync(join(dir, 'dep.txt'), 'two\n');
    const { ran, result } = await buildWith(images, { context: dir, tags: ['example.com/cache:bound'] });
    expect(ran).toEqual([step]);
    expect((await imageTree(images, result.names[0]!, work)).get('got')?.sha256).toBe(sha('two\n'));
  }, 120_000);

  it('runs every step with noCache', async () => {
    expect((await buildWith(images, { context, noCache: true })).ran).toEqual(all);
  }, 120_000);

  it('keeps what the cache holds through a collection, until the cache is pruned', async () => {
    // Only the cache holds the stage's layers: no image names them.
    const cache = new BuildCache(images);
    const stageLayer = cache.list().find((r) => r.step === steps.stageRun)!.layer.digest;
    const dropBuilt = () => {
      for (const image of images.list()) if (image.name !== BASE) images.removeImages([image.name ?? image.digest], { force: true });
    };
    dropBuilt();
    await images.gc();
    expect(images.content.has(stageLayer)).toBe(true);
    expect((await buildWith(images, { context })).ran).toEqual([]);
    const cacheMounts = join(images.root.path, 'build', 'cache-mounts');
    expect(readdirSync(cacheMounts).length).toBeGreaterThan(0); // the keyed RUNs' caches, above
    expect((await cache.prune()).length).toBeGreaterThan(0);
    expect(readdirSync(cacheMounts)).toEqual([]); // pruning all removes them, as BuildKit's prune does
    dropBuilt();
    const collected = await images.gc();
    expect(images.content.has(stageLayer)).toBe(false);
    expect(collected.snapshots.length).toBeGreaterThan(0);
    expect((await buildWith(images, { context })).ran).toEqual(all);
  }, 180_000);

  it("takes steps from another root's image by its inline cache (cacheTo inline, cacheFrom), as BuildKit's min mode", async () => {
    const source = await rootWithBase(work, 'inline-source');
    const target = await rootWithBase(work, 'inline-target');
    try {
      const made = await buildWith(source, { context, tags: ['example.com/inline:1'], cacheTo: 'inline' });
      expect(made.ran).toEqual(all);
      const base = source.inspect(BASE).config.rootfs.diff_ids.length;
      const record = (made.result.config as unknown as Record<string, { version: number; layers: { index: number; key: string }[] }>)['io.strata.build.cache']!;
      expect(record.version).toBe(1);
      expect(record.layers.map((l) => l.index)).toEqual([base, base + 1, base + 2, base + 3]); // the final stage's four layers
      // To the other root as a registry carries it: the image alone (an OCI archive of it), imported.
      const archive = join(work, 'inline.tar');
      await source.export(['example.com/inline:1'], archive, { format: 'oci-archive' });
      await target.import(archive);

      const taken = await buildWith(target, { context, tags: ['example.com/inline:2'], cacheFrom: ['example.com/inline:1'] });
      // The final image's steps come from it; the other stage's are not in it (min mode) and run.
      expect(taken.ran).toEqual([steps.stageCopy, steps.stageRun]);
      expect(taken.result.config.rootfs.diff_ids).toEqual(made.result.config.rootfs.diff_ids);
      expect(taken.result.config.rootfs.diff_ids).toEqual(source.inspect('example.com/inline:1').config.rootfs.diff_ids);
      // Taken into the root's own cache: a build without cacheFrom now runs nothing.
      expect((await buildWith(target, { context })).ran).toEqual([]);
      // A change reruns what it touches and after: the build arg's RUN alone, the steps before still taken.
      const other = await rootWithBase(work, 'inline-other');
      try {
        await other.import(archive);
        const flavored = await buildWith(other, { context, buildArgs: { FLAVOR: 'spicy' }, cacheFrom: ['example.com/inline:1'] });
        expect(flavored.ran).toEqual([steps.stageCopy, steps.stageRun, steps.flavor]);
        // An image that gives nothing is a warning, and the build goes on: one missing, one without inline cache.
        const warned = await buildWith(other, { context, cacheFrom: ['example.com/missing:1', BASE] });
        expect(warned.events.flatMap((e) => (e.type === 'warning' ? [e.message] : []))).toEqual([
          expect.stringMatching(/^--cache-from example\.com\/missing:1: image "example\.com\/missing:1" is not in the store/),
          `--cache-from ${BASE}: the image has no build cache of strata's (built without --cache-to); its steps run`,
        ]);
      } finally {
        await other.close();
      }
      // A cache image (--cache-to type=registry): pushed through `push` (here into an archive), its records read
      // as the inline ones; with mode max every stage's steps are in it, with min the final image's alone.
      for (const mode of ['max', 'min'] as const) {
        const carried = join(work, `cache-${mode}.tar`);
        const pushed: string[] = [];
        const exported = await buildWith(source, {
          context,
          cacheTo: { ref: `example.com/inline:cache-${mode}`, mode },
          push: async (image, ref) => {
            pushed.push(image, ref);
            await source.export([image], carried, { format: 'oci-archive' });
          },
        });
        expect(pushed[1]).toBe(`example.com/inline:cache-${mode}`);
        // Pushed, then not kept in the root that made it.
        expect(source.list().map((i) => i.digest)).not.toContain(pushed[0]);
        const fresh = await rootWithBase(work, `cache-${mode}`);
        try {
          const imported = (await fresh.import(carried)).images[0]!.target.digest;
          const config = fresh.inspect(imported).config as unknown as Record<string, { layers: { below?: string }[] }>;
          expect(config['io.strata.build.cache']!.layers.every((l) => l.below !== undefined)).toBe(true);
          const rebuilt = await buildWith(fresh, { context, cacheFrom: [imported] });
          expect(rebuilt.ran).toEqual(mode === 'max' ? [] : [steps.stageCopy, steps.stageRun]);
          expect(rebuilt.result.config.rootfs.diff_ids).toEqual(exported.result.config.rootfs.diff_ids);
        } finally {
          await fresh.close();
        }
      }
      // The same cache image as an OCI layout (--cache-to type=local): written aside and renamed into place,
      // replacing the layout an earlier build left there, never anything else.
      const layoutDir = join(work, 'cache-layout');
      for (let i = 0; i < 2; i++) await buildWith(source, { context, cacheTo: { dest: layoutDir, mode: 'max' } });
      expect(readdirSync(layoutDir).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
      expect(readdirSync(work).filter((name) => name.startsWith('cache-layout.'))).toEqual([]);
      const local = await rootWithBase(work, 'cache-local');
      try {
        expect((await buildWith(local, { context, cacheFrom: [{ src: layoutDir }] })).ran).toEqual([]);
      } finally {
        await local.close();
      }
      const notCache = join(work, 'not-a-cache');
      writeFileSync(notCache, 'mine\n');
      await expect(buildWith(source, { context, cacheTo: { dest: notCache } })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      expect(readFileSync(notCache, 'utf8')).toBe('mine\n');
      // Not with squash: the folded layer is no step's.
      const squashed = await buildWith(source, { context, cacheTo: 'inline', squash: true });
      expect((squashed.result.config as unknown as Record<string, unknown>)['io.strata.build.cache']).toBeUndefined();
    } finally {
      await source.close();
      await target.close();
    }
  }, 600_000);
});

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap'))('reproducible builds and squash', () => {
  let work: string;
  let context: string;

  beforeAll(() => {
    work = scratch('strata-build-repro-');
    context = writeContext(join(work, 'context'), {
      Dockerfile: `FROM ${BASE}\nWORKDIR /work\nCOPY . /work/\nRUN echo built > /work/out && mkdir -p /var/lib/made && date > /dev/null\nENV A=1\nRUN rm /work/remove.me && echo second >> /work/out\n`,
      'keep.txt': 'keep\n',
      'remove.me': 'gone in the last step\n',
    });
  }, 30 * 60_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('gives the same image digest from two clean roots with SOURCE_DATE_EPOCH', async () => {
    const digests: string[] = [];
    for (const name of ['a', 'b']) {
      const images = await rootWithBase(work, name);
      try {
        const { result } = await buildWith(images, { context, tags: ['example.com/repro:1'], sourceDateEpoch: 1_700_000_000 });
        expect(result.config.created).toBe('2023-11-14T22:13:20Z');
        expect(result.config.history!.slice(-5).every((h) => h.created === '2023-11-14T22:13:20Z')).toBe(true);
        digests.push(result.target.digest);
      } finally {
        await images.close();
      }
      await new Promise((r) => setTimeout(r, 1100)); // another second on the clock for the second build
    }
    expect(digests[0]).toBe(digests[1]);
  }, 300_000);

  it('squashes the layers above the base into one whose tree is the unsquashed tree', async () => {
    const images = await rootWithBase(work, 'squash');
    try {
      const plain = await buildWith(images, { context, tags: ['example.com/plain:1'] });
      const squashed = await buildWith(images, { context, tags: ['example.com/squashed:1'], squash: true });
      expect(squashed.ran).toEqual([]); // the steps are cached; squash folds their layers
      const base = images.inspect(BASE).config.rootfs.diff_ids;
      // WORKDIR /work (made: the base lacks it), COPY and two RUNs.
      expect(plain.result.config.rootfs.diff_ids.length).toBe(base.length + 4);
      expect(squashed.result.config.rootfs.diff_ids.length).toBe(base.length + 1);
      expect(squashed.result.config.rootfs.diff_ids.slice(0, base.length)).toEqual(base);
      const history = squashed.result.config.history!;
      expect(history.filter((h) => !h.empty_layer).length).toBe(base.length + 1);
      const want = await imageTree(images, 'example.com/plain:1', work);
      // The folded layer keeps a whiteout for work/remove.me (flatten cannot know the base lacks it); the kernel
      // lists such a whiteout in a directory no lower has, though nothing is there: skipped.
      const got = await imageTree(images, 'example.com/squashed:1', work, { skipVanished: true });
      expect(got.has('work/remove.me')).toBe(false);
      expect(diffSnapshots(want, got)).toEqual([]);
    } finally {
      await images.close();
    }
  }, 300_000);
});

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
