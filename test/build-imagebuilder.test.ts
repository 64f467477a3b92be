/**
 * imagebuilder's conformance corpus (openshift/imagebuilder's `dockerclient/testdata`, from Debian's
 * package): the Dockerfiles and contexts its conformance tests build with Docker and with imagebuilder,
 * built here by strata and by buildah (`buildah bud`, imagebuilder inside) on the same stand-in base
 * images, and compared (helpers/corpus-builds.ts): both build each, and the images have the same tree and
 * config. Many of the steps check themselves (`RUN ls -al /a/b/c && ! ls -al /a/b/1`), as Docker built them.
 * Beside them, the Dockerfiles of imagebuilder's builder tests (HEALTHCHECK forms, ARG against ENV,
 * targets), two of which both refuse.
 *
 * The stand-ins: `busybox` for busybox, the minbase image for `centos:7`, `alpine`, `debian` and `ubuntu`,
 * and `golang` (its /go/src and WORKDIR /go, which the corpus relies on). Left out: the cases that fetch from
 * the internet (ADD of GitHub URLs), `testdata/ignore`, which imagebuilder's own suite leaves out, and
 * Dockerfile.mount, which needs imagebuilder's transient mounts.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { CorpusBuilds, known, VOLUME_KEEPS_RUN, VOLUME_MAKES_NOTHING, WORKDIR_MAKES_IT, type CorpusCase, type StandIn } from './helpers/corpus-builds.js';
import { imagebuilderCorpus } from './helpers/imagebuilder.js';
import { needs } from './helpers/oracle.js';

/** A case as imagebuilder's suite names it: its context in `dockerclient`, its Dockerfile in the context. */
type Case = Omit<CorpusCase, 'context' | 'dockerfile'> & { context: string; dockerfile?: string };

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

/** The names the corpus's FROM lines use. */
const STAND_INS: Record<string, StandIn> = {
  'docker.io/library/busybox:latest': 'busybox',
  'docker.io/library/golang:latest': 'golang',
  'docker.io/library/golang:1.9': 'golang',
  'docker.io/library/centos:7': 'minbase',
  'docker.io/library/alpine:latest': 'minbase',
  'docker.io/library/debian:latest': 'minbase',
  'docker.io/library/ubuntu:latest': 'minbase',
  'docker.io/library/ubuntu:18.04': 'minbase',
};

describe.skipIf(!needs('root', 'overlay', 'buildah', 'podman', 'umoci', 'skopeo', 'debootstrap', 'gnu-tar'))("imagebuilder's conformance corpus: strata builds it as buildah does", () => {
  let builds: CorpusBuilds;
  let corpus: string;

  beforeAll(async () => {
    corpus = imagebuilderCorpus();
    builds = await CorpusBuilds.open('strata-build-imagebuilder-', STAND_INS);
  }, 30 * 60_000);

  afterAll(() => builds?.close());

  for (const c of CASES) {
    it(c.name, () => builds.check({ ...c, context: join(corpus, c.context), dockerfile: join(corpus, c.context, c.dockerfile ?? 'Dockerfile') }), 10 * 60_000);
  }
});
