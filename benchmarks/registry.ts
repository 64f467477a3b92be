/**
 * Registry benchmarks against `skopeo copy`, both talking to Debian's docker-registry on 127.0.0.1
 * (anonymous; started untimed), on the two-layer image (minbase + the apt change; a small change over
 * zoneinfo in smoke runs):
 *
 * - push of the image from a root holding it, into a registry emptied before each run, against skopeo
 *   copying the same image from its OCI layout;
 * - pull of the image into an empty root (no unpack), against skopeo copying it to a new OCI layout;
 * - pull of the image where its base is already present (strata's root pulled the base, skopeo's layout
 *   holds it): both fetch only the new layer.
 *
 * strata runs as its CLI, a whole process, like skopeo; the `-embedded` variants time the library calls in
 * a process that has made the same calls before (as a builder or daemon embedding strata does), while
 * skopeo still starts for each copy.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { openImages } from '@strata/images';
import { pullImage, pushImage } from '@strata/registry';
import { TestRegistry } from '../test/helpers/registry.js';
import { aptImage, twoLayerImage } from './inputs.js';
import { tinyChange } from './diff.js';
import type { Benchmark, Plan } from './suite.js';

const CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const strata = (root: string, ...args: string[]) => [process.execPath, CLI, '--root', root, ...args];
const run = (command: string[]) => execFileSync(command[0]!, command.slice(1), { stdio: 'ignore' });

function layoutFor(tree: { name: string }, work: string): string {
  if (tree.name === 'zoneinfo') {
    const change = tinyChange(work);
    return twoLayerImage(change.lower, change.merged, join(work, 'tiny-image')).layout;
  }
  return aptImage().layout;
}

/** A registry holding the image as `bench/app:base` and `:apt`, and an empty root made ready. */
async function registryWithImage(work: string, layout: string): Promise<TestRegistry> {
  const registry = await TestRegistry.start(join(work, 'registry'));
  for (const tag of ['base', 'apt']) run(['skopeo', 'copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${registry.host}/bench/app:${tag}`]);
  return registry;
}

/**
 * The registry's own program: both sides talk to it, and after a cache drop its pages would come back
 * during whichever case ran first. Warmed with the inputs, like the data it serves.
 */
const registryProgram = execFileSync('sh', ['-c', 'command -v docker-registry || true'], { encoding: 'utf8' }).trim();

/** Empties `root` and opens it once (untimed: a new root's first open probes an overlay mount). */
function emptyRoot(root: string): void {
  rmSync(root, { recursive: true, force: true });
  run(strata(root, 'image', 'ls'));
}

export const registryBenchmarks: Benchmark[] = [
  {
    name: 'registry-push',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const layout = layoutFor(tree, work);
      const registry = await TestRegistry.start(join(work, 'registry'));
      const root = join(work, 'root');
      emptyRoot(root);
      run(strata(root, 'image', 'import', layout, '--name', 'example.com/apt', '-q'));
      return {
        description: `push of the two-layer image to docker-registry on 127.0.0.1, emptied before each run: strata push (from its root) vs skopeo copy oci:<layout> docker://`,
        cases: [
          { label: 'strata', command: strata(root, 'push', 'example.com/apt:apt', `${registry.host}/bench/strata:apt`, '-q') },
          { label: 'skopeo', command: ['skopeo', 'copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:apt`, `docker://${registry.host}/bench/skopeo:apt`] },
        ],
        writeHeavy: true,
        inputs: [join(root, 'content'), layout, registryProgram],
        // The registry's storage goes (it reads it afresh each request): every blob is uploaded again.
        reset: () => rmSync(join(work, 'registry', 'data'), { recursive: true, force: true }),
        cleanup: () => void registry.stop(),
      };
    },
  },
  ...[false, true].map(
    (onBase): Benchmark => ({
      name: onBase ? 'registry-pull-on-base' : 'registry-pull',
      once: true,
      async plan(tree, work): Promise<Plan> {
        const layout = layoutFor(tree, work);
        const registry = await registryWithImage(work, layout);
        const root = join(work, 'root');
        const copied = join(work, 'skopeo-layout');
        const skopeo = (tag: string) => ['skopeo', 'copy', '--quiet', '--src-tls-verify=false', `docker://${registry.host}/bench/app:${tag}`, `oci:${copied}:${tag}`];
        return {
          description: onBase
            ? `pull of the two-layer image whose base is already present (strata's root pulled the base, skopeo's layout holds it), so only the new layer and config travel: strata pull vs skopeo copy docker:// oci:<layout>`
            : `pull of the two-layer image from docker-registry on 127.0.0.1 into an empty root (no unpack): strata pull vs skopeo copy docker:// oci:<new layout>`,
          cases: [
            { label: 'strata', command: strata(root, 'pull', `${registry.host}/bench/app:apt`, '-q') },
            { label: 'skopeo', command: skopeo('apt') },
          ],
          writeHeavy: true,
          inputs: [join(work, 'registry', 'data'), registryProgram],
          reset: () => {
            emptyRoot(root);
            rmSync(copied, { recursive: true, force: true });
            if (onBase) {
              run(strata(root, 'pull', `${registry.host}/bench/app:base`, '-q'));
              run(skopeo('base'));
            }
          },
          cleanup: () => void registry.stop(),
        };
      },
    }),
  ),
  {
    name: 'registry-push-embedded',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const layout = layoutFor(tree, work);
      const registry = await TestRegistry.start(join(work, 'registry'));
      const images = await openImages(join(work, 'root'));
      await images.import(layout, { name: 'example.com/apt' });
      return {
        description: `push of the two-layer image to docker-registry on 127.0.0.1, emptied before each run: strata's pushImage in process (after 3 untimed pushes) vs skopeo copy oci:<layout> docker://`,
        cases: [
          { label: 'strata', run: () => pushImage(images, 'example.com/apt:apt', `${registry.host}/bench/strata:apt`) },
          { label: 'skopeo', command: ['skopeo', 'copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:apt`, `docker://${registry.host}/bench/skopeo:apt`] },
        ],
        writeHeavy: true,
        warmup: 3,
        inputs: [join(work, 'root', 'content'), layout, registryProgram],
        reset: () => rmSync(join(work, 'registry', 'data'), { recursive: true, force: true }),
        cleanup: () => {
          void images.close();
          void registry.stop();
        },
      };
    },
  },
  {
    name: 'registry-pull-embedded',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const layout = layoutFor(tree, work);
      const registry = await registryWithImage(work, layout);
      const roots = join(work, 'roots');
      const copied = join(work, 'skopeo-layout');
      let n = 0;
      return {
        description: `pull of the two-layer image from docker-registry on 127.0.0.1 into a new root (no unpack): strata's pullImage in process (after 3 untimed pulls) vs skopeo copy docker:// oci:<new layout>`,
        cases: [
          {
            label: 'strata',
            run: async () => {
              const images = await openImages(join(roots, String(++n)), { driver: 'userspace' });
              try {
                await pullImage(images, `${registry.host}/bench/app:apt`);
              } finally {
                await images.close();
              }
            },
          },
          { label: 'skopeo', command: ['skopeo', 'copy', '--quiet', '--src-tls-verify=false', `docker://${registry.host}/bench/app:apt`, `oci:${copied}:apt`] },
        ],
        writeHeavy: true,
        warmup: 3,
        inputs: [join(work, 'registry', 'data'), registryProgram],
        reset: () => {
          rmSync(roots, { recursive: true, force: true });
          mkdirSync(roots);
          rmSync(copied, { recursive: true, force: true });
        },
        cleanup: () => void registry.stop(),
      };
    },
  },
];
