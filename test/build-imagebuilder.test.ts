/**
 * imagebuilder's conformance corpus (openshift/imagebuilder's `dockerclient/testdata`, from Debian's
 * package): the Dockerfiles and contexts its conformance tests build with Docker and with imagebuilder,
 * built here by strata and by buildah (`buildah bud`, imagebuilder inside) on the same base images, and
 * compared: both build each, and the images have the same tree and config. Many of the steps check
 * themselves (`RUN ls -al /a/b/c && ! ls -al /a/b/1`), as Docker built them. Beside them, the Dockerfiles of
 * imagebuilder's builder tests (HEALTHCHECK forms, ARG against ENV, targets), two of which both refuse.
 *
 * The corpus's base images are stand-ins, the same in both stores: `busybox` is Debian's static busybox with
 * its applets and a small /etc/passwd; `centos:7`, `alpine`, `debian`, `ubuntu` and `golang` are the
 * minbase image (`golang` with its /go/src and WORKDIR /go, which the corpus relies on). Left out: the cases
 * that fetch from the internet (ADD of GitHub URLs), `testdata/ignore`, which imagebuilder's own suite
 * leaves out, and Dockerfile.mount, which needs imagebuilder's transient mounts.
 *
 * Known and kept differences, left out of the comparison:
 * - times (each build runs at its own moment; build-buildah compares the copies' times);
 * - what buildah's chroot isolation leaves behind: the empty files it bind-mounted over (/etc/hosts,
 *   /etc/hostname, /etc/resolv.conf) and an empty /run;
 * - BuildKit's VOLUME and WORKDIR where buildah's differ, listed with the cases they show in.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Images } from '@strata/images';
import { busybox } from './helpers/busybox.js';
import { BASE, Buildah, buildWith, imageTree, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { imagebuilderCorpus } from './helpers/imagebuilder.js';
import { needs } from './helpers/oracle.js';
import { diffSnapshots, type NodeRecord } from './helpers/snapshot.js';
import { picture } from './helpers/unpacked.js';

/**
 * One conformance case: its context (in `dockerclient`), its Dockerfile (in the context), build args, and
 * the differences from buildah's image that are BuildKit's way (each line of the comparison, by its start:
 * `missing: path` is in buildah's image only, `extra: path` in strata's only).
 */
interface Case {
  name: string;
  context: string;
  dockerfile?: string;
  args?: Record<string, string>;
  /** The stage to build (the last by default). */
  target?: string;
  /** What the steps print, as imagebuilder's case expects it of Docker. */
  output?: RegExp[];
  /** A Dockerfile Docker refuses: both refuse it, before any image is made. */
  refused?: true;
  differences?: string[];
}

// BuildKit's VOLUME only declares (dispatchVolume): it makes no directory, and what later steps write below
// it stays in the image; buildah (as Docker's classic builder) makes the directory and drops what RUN writes
// there.
const VOLUME_KEEPS_RUN = 'what RUN writes below a VOLUME is kept';
const VOLUME_MAKES_NOTHING = 'VOLUME makes no directory';
// BuildKit's WORKDIR makes its directory, owned by the stage's USER (root here), where buildah leaves it to
// the next COPY, which gives it --chown's owner.
const WORKDIR_MAKES_IT = "WORKDIR makes its directory as the stage's user";
const WHY: Record<string, string> = {};
const known = (why: string, ...lines: string[]) => lines.map((line) => ((WHY[line] = why), line));

/** imagebuilder's TestConformanceInternal cases that fetch nothing, and its self-checking copyfrom_N files. */
const CASES: Case[] = [
  { name: 'directory', context: 'testdata/dir' },
  { name: 'copy to dir', context: 'testdata/copy' },
  {
    name: 'copy chown',
    context: 'testdata/copychown',
    differences: known(WORKDIR_MAKES_IT, ...['', '/several', '/several/levels', '/several/levels/deep', '/several/levels/deeper'].map((p) => `differs: new-workdir${p}\n`)),
  },
  { name: 'copy empty 1', context: 'testdata/copyempty' },
  { name: 'copy empty 2', context: 'testdata/copyempty', dockerfile: 'Dockerfile2' },
  { name: 'copy dir', context: 'testdata/copydir' },
  { name: 'copy to renamed file', context: 'testdata/copyrename' },
  { name: 'copy subdirectory 1', context: 'testdata/copyblahblub' },
  { name: 'copy subdirectory 2', context: 'testdata/copyblahblub', dockerfile: 'Dockerfile2' },
  { name: 'copy subdirectory 3', context: 'testdata/copyblahblub', dockerfile: 'Dockerfile3' },
  { name: 'directory with slash', context: 'testdata/overlapdir', dockerfile: 'Dockerfile.with_slash' },
  { name: 'directory without slash', context: 'testdata/overlapdir', dockerfile: 'Dockerfile.without_slash' },
  { name: 'environment', context: '.', dockerfile: 'testdata/Dockerfile.env' },
  { name: 'edgecases', context: '.', dockerfile: 'testdata/Dockerfile.edgecases' },
  { name: 'exposed_default', context: '.', dockerfile: 'testdata/Dockerfile.exposedefault' },
  { name: 'add archives', context: 'testdata/add' },
  { name: 'copy archives', context: 'testdata/add', dockerfile: 'Dockerfile.copy' },
  { name: 'add directories with archives', context: 'testdata/add', dockerfile: 'Dockerfile.addall' },
  { name: 'add directories with archives 2', context: 'testdata/add', dockerfile: 'Dockerfile.addslash' },
  { name: 'run with JSON', context: '.', dockerfile: 'testdata/Dockerfile.run.args', output: [/^inner outer$/m, /^first second$/m, /^third fourth$/m, /^fifth sixth$/m] },
  { name: 'shell', context: '.', dockerfile: 'testdata/Dockerfile.shell' },
  { name: 'args', context: '.', dockerfile: 'testdata/Dockerfile.args', args: { BAR: 'first' } },
  { name: 'wildcard', context: 'testdata/wildcard' },
  { name: 'volume', context: 'testdata/volume' },
  { name: 'volumerun', context: 'testdata/volumerun', differences: known(VOLUME_KEEPS_RUN, 'extra: var/www/file3') },
  { name: 'novolume', context: '.', dockerfile: 'testdata/Dockerfile.novolume', differences: known(VOLUME_MAKES_NOTHING, 'missing: var/lib/not-in-this-image') },
  { name: 'novolumenorun', context: '.', dockerfile: 'testdata/Dockerfile.novolumenorun' },
  { name: 'noworkdir', context: '.', dockerfile: 'testdata/Dockerfile.noworkdir' },
  { name: 'volumeexists', context: '.', dockerfile: 'testdata/Dockerfile.volumeexists', differences: known(VOLUME_KEEPS_RUN, 'extra: var/lib/bespoke-directory/emptyfile') },
  { name: 'multistage 1', context: 'testdata', dockerfile: 'Dockerfile.multistage' },
  { name: 'multistage reuse base', context: 'testdata', dockerfile: 'Dockerfile.reusebase' },
  { name: 'multistage 2', context: 'testdata/multistage' },
  { name: 'multistage copy', context: 'testdata/copyfrom' },
  { name: 'multistageconfiginheritance', context: 'testdata/multistage', dockerfile: 'Dockerfile.env' },
  ...Array.from({ length: 14 }, (_, i) => ({ name: `copyfrom_${i + 1}`, context: 'testdata', dockerfile: `Dockerfile.copyfrom_${i + 1}` })),
  // The Dockerfiles of imagebuilder's own builder tests.
  { name: 'healthcheck', context: 'testdata', dockerfile: 'Dockerfile.healthcheck' },
  { name: 'envsubst', context: 'testdata', dockerfile: 'Dockerfile.envsubst' },
  { name: 'envargconflict', context: 'testdata', dockerfile: 'Dockerfile.envargconflict' },
  { name: 'multiarg', context: 'testdata', dockerfile: 'Dockerfile.multiarg', output: [/^a=1 b=2 c=3 d=4$/m] },
  { name: 'target, the last stage', context: 'testdata', dockerfile: 'Dockerfile.target' },
  { name: 'target, a stage by name', context: 'testdata', dockerfile: 'Dockerfile.target', target: 'mytarget' },
  { name: 'escape', context: 'testdata', dockerfile: 'Dockerfile.escape', output: [/^0$/m] },
  { name: 'unknown instructions', context: 'testdata', dockerfile: 'Dockerfile.unknown', refused: true },
  { name: 'HEALTHCHECK without arguments', context: 'testdata', dockerfile: 'Dockerfile.badhealthcheck', refused: true },
];

/** The stand-in for Docker Hub's busybox: Debian's static busybox, its applets, root and nobody. */
const BUSYBOX = [
  'FROM scratch',
  'COPY busybox /bin/busybox',
  'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
  "RUN mkdir -p /tmp /var /etc /root /home && chmod 1777 /tmp && printf 'root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/home:/bin/false\\n' > /etc/passwd && printf 'root:x:0:\\nnogroup:x:65534:\\n' > /etc/group",
  '',
].join('\n');
const GOLANG = [`FROM ${BASE}`, 'RUN mkdir -p /go/src/example && echo go > /go/src/example/main.go', 'WORKDIR /go', ''].join('\n');
/** Names the corpus's FROM lines use, each built (busybox, golang) or the minbase image renamed. */
const STAND_INS: Record<string, string> = {
  'docker.io/library/busybox:latest': 'busybox',
  'docker.io/library/golang:latest': 'golang',
  'docker.io/library/golang:1.9': 'golang',
  'docker.io/library/centos:7': BASE,
  'docker.io/library/alpine:latest': BASE,
  'docker.io/library/debian:latest': BASE,
  'docker.io/library/ubuntu:latest': BASE,
  'docker.io/library/ubuntu:18.04': BASE,
};

describe.skipIf(!needs('root', 'overlay', 'buildah', 'podman', 'umoci', 'skopeo', 'debootstrap', 'gnu-tar'))("imagebuilder's conformance corpus: strata builds it as buildah does", () => {
  let work: string;
  let images: Images;
  let buildah: Buildah;
  let corpus: string;

  beforeAll(async () => {
    work = scratch('strata-build-imagebuilder-');
    corpus = imagebuilderCorpus();
    images = await rootWithBase(work);
    buildah = new Buildah(work);
    // The stand-ins, built once by strata and handed to buildah through an OCI layout: the same bytes in both.
    const busyboxContext = writeContext(join(work, 'busybox'), { Dockerfile: BUSYBOX });
    copyFileSync(busybox('amd64'), join(busyboxContext, 'busybox'));
    await buildWith(images, { context: busyboxContext, tags: ['docker.io/library/busybox:latest'] });
    await buildWith(images, { context: writeContext(join(work, 'golang'), { Dockerfile: GOLANG }), tags: ['docker.io/library/golang:latest'] });
    for (const [name, source] of Object.entries(STAND_INS)) {
      const from = source === 'busybox' ? 'docker.io/library/busybox:latest' : source === 'golang' ? 'docker.io/library/golang:latest' : source;
      if (from !== name) images.tag(from, name);
    }
    for (const name of Object.keys(STAND_INS)) {
      // A layout of its own for each, at a lowercase path: buildah names what it pulls after the path.
      const layout = join(tmpdir(), `strata-imagebuilder-${randomBytes(6).toString('hex')}`);
      try {
        await images.export([name], layout, { format: 'oci' });
        const id = buildah.run(['pull', '--quiet', `oci:${layout}`]).trim().split('\n').at(-1)!;
        buildah.run(['tag', id, name]);
      } finally {
        rmSync(layout, { recursive: true, force: true });
      }
    }
  }, 30 * 60_000);

  afterAll(async () => {
    buildah?.close();
    await images?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /**
   * buildah's image as its store holds it, through podman's image mount (buildah's own mount needs a
   * container, which a USER the image does not know refuses), less what buildah's chroot isolation leaves
   * behind: the empty files it bind-mounted over (/etc/hosts, /etc/hostname, /etc/resolv.conf) and the empty
   * /run it made for its secrets, where the image had no /run.
   */
  function theirTree(tag: string, mine: Map<string, NodeRecord>): Map<string, NodeRecord> {
    const podman = (...args: string[]) => execFileSync('podman', ['--root', join(work, 'buildah', 'root'), '--runroot', join(work, 'buildah', 'run'), '--storage-driver', 'overlay', ...args], { encoding: 'utf8' });
    const mount = podman('image', 'mount', tag).trim();
    let tree: Map<string, NodeRecord>;
    try {
      tree = picture(mount);
    } finally {
      podman('image', 'unmount', tag);
    }
    for (const path of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf']) if (tree.get(path)?.size === 0 && !mine.has(path)) tree.delete(path);
    if (tree.get('run')?.type === 'directory' && !mine.has('run') && ![...tree.keys()].some((p) => p.startsWith('run/'))) tree.delete('run');
    return tree;
  }

  /** A tree with the times left out where each build has its own: RUN's work, directories. */
  function comparable(tree: Map<string, NodeRecord>): Map<string, NodeRecord> {
    const out = new Map<string, NodeRecord>();
    for (const [path, record] of tree) {
      const { mtimeNs, ...rest } = record;
      void mtimeNs;
      out.set(path, rest);
    }
    return out;
  }

  /** A config value as both builders mean it: buildah writes an empty string, list or map where BuildKit writes none. */
  const meaning = (value: unknown) => (value === undefined || value === null || value === '' || (typeof value === 'object' && Object.keys(value).length === 0) ? null : value);

  const CONFIG_KEYS = ['Env', 'Cmd', 'Entrypoint', 'User', 'WorkingDir', 'ExposedPorts', 'Volumes', 'Labels', 'Shell', 'StopSignal', 'OnBuild', 'Healthcheck'];

  CASES.forEach((c, i) => {
    it(c.name, async () => {
      const context = join(corpus, c.context);
      const dockerfile = join(context, c.dockerfile ?? 'Dockerfile');
      const tag = `example.com/ib-${i}`;
      const flags = ['-f', dockerfile, ...(c.target ? ['--target', c.target] : []), ...Object.entries(c.args ?? {}).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`])];
      const options = { context, dockerfile, tags: [`${tag}:strata`], ...(c.args ? { buildArgs: c.args } : {}), ...(c.target ? { target: c.target } : {}) };
      if (c.refused) {
        await expect(buildWith(images, options)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        expect(() => buildah.build(context, `${tag}:buildah`, flags)).toThrow();
        return;
      }
      // Every other case is one Docker built: both build it (an error names its builder's reason).
      const { output } = await buildWith(images, options);
      for (const line of c.output ?? []) expect(output).toMatch(line);
      try {
        buildah.build(context, `${tag}:buildah`, flags);
      } catch (error) {
        throw new Error(`buildah refused it: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`);
      }
      const mine = await imageTree(images, `${tag}:strata`, work);
      const differences = diffSnapshots(comparable(theirTree(`${tag}:buildah`, mine)), comparable(mine), 40);
      const expected = c.differences ?? [];
      expect(differences.filter((line) => !expected.some((known) => line.startsWith(known)))).toEqual([]);
      for (const known of expected) expect(differences.some((line) => line.startsWith(known)), `${known} (${WHY[known]})`).toBe(true);
      const config = images.inspect(`${tag}:strata`).config.config as Record<string, unknown>;
      const theirConfig = buildah.config(`${tag}:buildah`);
      const labels = { ...(theirConfig.Labels as Record<string, string> | undefined) };
      delete labels['io.buildah.version'];
      theirConfig.Labels = labels;
      for (const key of CONFIG_KEYS) expect(meaning(config[key]), key).toEqual(meaning(theirConfig[key]));
    }, 10 * 60_000);
  });
});
