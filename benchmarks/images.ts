/**
 * Image benchmarks on a real two-layer image made by umoci (the minbase root filesystem, then the
 * `apt-get install` change; the smoke run uses a small change over /usr/share/zoneinfo):
 *
 * - import + unpack of the image as an OCI archive, against containerd (`ctr images import`, which unpacks;
 *   its daemon started untimed), `umoci unpack`, and GNU `tar -x` of the two layer blobs;
 * - export to a docker save archive, against `skopeo copy oci:… docker-archive:…` (both decompress the layers);
 * - commit of a container holding the apt change, against `tar -c` of its upper (and gzip against `tar -cz`);
 * - removal and collection of 100 images on a shared base, against `ctr images rm --sync`.
 *
 * strata runs as its CLI, a whole process, like its peers.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { openImages } from '@strata/images';
import { Containerd } from '../test/helpers/containerd.js';
import { rawTar } from '../test/helpers/raw-tar.js';
import { tinyChange } from './diff.js';
import { aptChange, aptImage, twoLayerImage, type AptImage } from './inputs.js';
import type { Benchmark, Plan } from './suite.js';

const CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const strata = (root: string, ...args: string[]) => [process.execPath, CLI, '--root', root, ...args];
const small = (tree: { name: string }) => tree.name === 'zoneinfo';

/** The image for this run: the apt image in full runs, a small one over zoneinfo in smoke runs. */
function imageFor(tree: { name: string }, work: string): { image: AptImage; upper: string; lower: string } {
  if (small(tree)) {
    const change = tinyChange(work);
    return { image: twoLayerImage(change.lower, change.merged, join(work, 'tiny-image')), upper: change.upper, lower: change.lower };
  }
  const change = aptChange();
  return { image: aptImage(), upper: change.upper, lower: change.lower };
}

interface Layout {
  manifests: { digest: string; annotations?: Record<string, string> }[];
}

/** The layer blobs of tag `tag` in an OCI layout, bottom first. */
function layerBlobs(layout: string, tag: string): string[] {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as Layout;
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)!;
  const blob = (digest: string) => join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const manifest = JSON.parse(readFileSync(blob(entry.digest), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => blob(l.digest));
}

const sh = (script: string, ...args: string[]) => ['sh', '-c', script, 'sh', ...args];

export const imageBenchmarks: Benchmark[] = [
  {
    name: 'image-import-unpack',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const { image } = imageFor(tree, work);
      const archive = join(work, 'image.tar');
      execFileSync('tar', ['-cf', archive, '-C', image.layout, '.']);
      const root = join(work, 'root');
      const bundle = join(work, 'bundle');
      const extracted = join(work, 'tar-x');
      const [l1, l2] = layerBlobs(image.layout, 'apt') as [string, string];
      const containerd = await Containerd.start(join(work, 'containerd'));
      const ctr = (...args: string[]) => containerd.ctr(...args);
      return {
        description: `import of the two-layer image (an OCI archive, tags base and apt) with unpack into an existing, empty root: strata image import --unpack vs ctr images import (unpacks; daemon started untimed) vs umoci unpack of the layout vs tar -xzf of the two layer blobs, alone and followed by sync`,
        cases: [
          { label: 'strata', command: strata(root, 'image', 'import', archive, '--name', 'example.com/apt', '--unpack', '-q') },
          { label: 'ctr import', command: [...ctr('images', 'import', '--base-name', 'example.com/apt', archive)] },
          { label: 'umoci unpack', command: ['umoci', 'unpack', '--image', `${image.layout}:apt`, bundle] },
          { label: 'tar -x', command: sh('mkdir -p "$1" && tar -xzf "$2" -C "$1" && tar -xzf "$3" -C "$1"', extracted, l1, l2) },
          // strata's snapshots are durable once committed (its database's commit flushes the file system's
          // journal, data included), as containerd's are; tar leaves its writes in the page cache.
          { label: 'tar -x + sync', command: sh('mkdir -p "$1" && tar -xzf "$2" -C "$1" && tar -xzf "$3" -C "$1" && sync', extracted, l1, l2) },
        ],
        writeHeavy: true,
        inputs: [archive, image.layout, containerd.program],
        reset: () => {
          for (const dir of [root, bundle, extracted]) rmSync(dir, { recursive: true, force: true });
          // The root exists, empty, as containerd's does when its daemon is up: made untimed (a new root's
          // first open probes a test overlay mount, whose unmount flushes the file system).
          execFileSync(strata(root, 'image', 'ls')[0]!, strata(root, 'image', 'ls').slice(1), { stdio: 'ignore' });
          // containerd keeps what it imported: its images go (and with --sync, its content and snapshots).
          const listed = execFileSync(ctr('images', 'ls', '-q')[0]!, ctr('images', 'ls', '-q').slice(1), { encoding: 'utf8' }).trim();
          if (listed !== '') execFileSync(ctr()[0]!, [...ctr('images', 'rm', '--sync').slice(1), ...listed.split('\n')], { stdio: 'ignore' });
        },
        cleanup: () => containerd.stop(),
      };
    },
  },
  {
    name: 'image-export-docker',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const { image } = imageFor(tree, work);
      const root = join(work, 'root');
      const images = await openImages(root);
      try {
        await images.import(image.layout, { name: 'example.com/apt' });
        await images.unpack('example.com/apt:apt'); // as a user's root would have it
      } finally {
        await images.close();
      }
      const [ours, theirs] = [join(work, 'strata.tar'), join(work, 'skopeo.tar')];
      return {
        description: `the image as a docker save archive (layers decompressed): strata image export --format docker vs skopeo copy oci:<layout> docker-archive:`,
        cases: [
          { label: 'strata', command: strata(root, 'image', 'export', 'example.com/apt:apt', '-o', ours, '--format', 'docker', '-q') },
          { label: 'skopeo', command: ['skopeo', 'copy', '--quiet', `oci:${image.layout}:apt`, `docker-archive:${theirs}:example.com/apt:apt`] },
        ],
        writeHeavy: true,
        inputs: [join(root, 'content'), image.layout],
        reset: () => {
          for (const f of [ours, theirs]) rmSync(f, { force: true });
        },
      };
    },
  },
  ...([
    { name: 'commit', compression: 'none', embedded: false },
    { name: 'commit-embedded', compression: 'none', embedded: true },
    { name: 'commit-gzip', compression: 'gzip', embedded: false },
  ] as const).map(
    (variant): Benchmark => ({
      name: variant.name,
      once: true,
      async plan(tree, work): Promise<Plan> {
        const { image, upper: change } = imageFor(tree, work);
        const root = join(work, 'root');
        const images = await openImages(root);
        let upper: string;
        let lowers: string[];
        try {
          await images.import(image.layout, { name: 'example.com/apt' });
          await images.createContainer('example.com/apt:base', 'c1');
          const mounts = await images.snapshotter.mounts('container-c1');
          const option = (key: string) => mounts[0]!.options.find((o) => o.startsWith(`${key}=`))!.slice(key.length + 1);
          upper = option('upperdir');
          lowers = option('lowerdir').split(':');
        } catch (error) {
          await images.close();
          throw error;
        }
        // The container's upper holds what the apt install left: the same bytes the kernel wrote.
        execFileSync('cp', ['-a', `${change}/.`, upper]);
        const out = join(work, 'out.tar');
        const gzip = variant.compression === 'gzip';
        let n = 0;
        const ours: Plan['cases'][number] = variant.embedded
          ? // In process, as a builder commits its steps, after untimed commits (V8 has compiled the hot paths).
            { label: 'strata', run: () => images.commit('c1', `example.com/apt:e${++n}`, { compression: 'none' }) }
          : { label: 'strata', command: strata(root, 'commit', 'c1', 'example.com/apt:committed', '--compression', variant.compression) };
        if (!variant.embedded) await images.close();
        return {
          description: gzip
            ? 'docker commit of a container holding the apt change, gzip: strata commit (on every core) vs tar -cz of its upper'
            : `docker commit of a container holding the apt change (${change}): strata commit (layer on disk, config, manifest, name; ${variant.embedded ? 'the library call, in process, after 12 untimed commits' : 'a whole process'}) vs tar -c of the upper, vs tar -c piped through openssl sha256 (a diffID needs the hash tar does not compute), and vs that with the tarball synced to disk (a store records a blob only once it is)`,
          cases: [
            ours,
            { label: gzip ? 'tar -cz' : 'tar -c', command: ['tar', gzip ? '-czf' : '-cf', out, '-C', upper, '.'] },
            ...(gzip
              ? []
              : [
                  { label: 'tar -c + openssl sha256', command: sh('tar -cf - -C "$1" . | tee "$2" | openssl dgst -sha256 >/dev/null', upper, out) },
                  { label: 'tar -c + sha256 + sync', command: sh('tar -cf - -C "$1" . | tee "$2" | openssl dgst -sha256 >/dev/null && sync "$2"', upper, out) },
                ]),
          ],
          writeHeavy: true,
          ...(variant.embedded ? { warmup: 12 } : {}),
          // The container's lower and the root's database too, as diff-upper warms its lower: a commit
          // follows the container's run, which read the one, and the commands that made it, which wrote
          // the other. tar reads neither.
          inputs: [upper, ...lowers, join(root, 'metadata.db')],
          reset: () => rmSync(out, { force: true }),
          ...(variant.embedded ? { cleanup: () => void images.close() } : {}),
        };
      },
    }),
  ),
  {
    name: 'gc-100-images',
    once: true,
    async plan(tree, work): Promise<Plan> {
      const count = small(tree) ? 10 : 100;
      const { image } = imageFor(tree, work);
      // A layout of `count` images on the image's base layer, each with a small layer of its own.
      const layout = join(work, 'many');
      execFileSync('cp', ['-a', image.layout, layout]);
      const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as Layout;
      const baseEntry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'base')!;
      const blobPath = (digest: string) => join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
      const baseManifest = JSON.parse(readFileSync(blobPath(baseEntry.digest), 'utf8')) as { config: { digest: string }; layers: object[] };
      const baseConfig = JSON.parse(readFileSync(blobPath(baseManifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
      const put = (bytes: Buffer) => {
        const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
        writeFileSync(blobPath(digest), bytes);
        return { digest, size: bytes.length };
      };
      const names: string[] = [];
      const manifests = [];
      for (let i = 0; i < count; i++) {
        const tar = rawTar([{ name: `etc/image-${i}`, data: `image ${i}\n`.repeat(100), mode: 0o644, mtime: 1_700_000_000 }]);
        const layer = put(gzipSync(tar));
        const diffID = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
        const config = put(Buffer.from(JSON.stringify({ ...baseConfig, rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, diffID] } })));
        const manifest = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [...baseManifest.layers, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }] })));
        const name = `example.com/many:${i}`;
        names.push(name);
        manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': String(i) } });
      }
      // The base stays named: what goes is the images' own (their layers, configs, manifests, snapshots).
      manifests.push({ ...baseEntry, mediaType: 'application/vnd.oci.image.manifest.v1+json', annotations: { 'io.containerd.image.name': 'example.com/many:base' } });
      writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
      const archive = join(work, 'many.tar');
      execFileSync('tar', ['-cf', archive, '-C', layout, '.']);
      const root = join(work, 'root');
      const containerd = await Containerd.start(join(work, 'containerd'));
      const ctr = (...args: string[]) => containerd.ctr(...args);
      const run = (command: string[]) => execFileSync(command[0]!, command.slice(1), { stdio: 'ignore' });
      return {
        description: `removal of ${count} unpacked images on one shared base (which another image keeps), and collection of what they held (each its own layer, config, manifest and snapshot): strata image rm (which collects) vs ctr images rm --sync`,
        cases: [
          { label: 'strata', command: strata(root, 'image', 'rm', ...names) },
          { label: 'ctr rm --sync', command: ctr('images', 'rm', '--sync', ...names) },
        ],
        writeHeavy: false,
        inputs: [],
        reset: () => {
          // Untimed: both hold all the images, unpacked, again (what is there already costs little).
          run(strata(root, 'image', 'import', archive, '--unpack', '-q'));
          run(ctr('images', 'import', archive));
        },
        cleanup: () => containerd.stop(),
      };
    },
  },
];
