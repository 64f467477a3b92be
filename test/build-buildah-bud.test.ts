/**
 * buildah's own corpus of Dockerfiles (the contexts of buildah 1.28.2's `bud` test suite, from Debian's
 * source package), built by strata and by buildah on the same stand-in base images and compared
 * (helpers/corpus-builds.ts): the same tree and config, but for the differences listed below, each of
 * them BuildKit's way. `alpine` and `busybox` stand in as Debian's static busybox, `ubuntu`, `fedora` and
 * `centos` as the minbase image.
 *
 * Taken: every Dockerfile of the corpus that both build here (126 of 207). Left out, as the corpus is pinned:
 * - those both refuse for want of what this machine has not (the internet, registries, images the suite
 *   pulls, build args its bats script gives, devices, capabilities) or that check refusals;
 * - those where buildah and BuildKit part ways before any image: `--mount` options of podman's (`z`,
 *   `tmpcopyup`), which BuildKit refuses as unknown keys; a RUN writing to /run, which BuildKit removes
 *   from the step's mounts and buildah makes; several files copied to a path without a `/`, which strata
 *   refuses as the Dockerfile reference says (BuildKit copies each over the last); a `RUN` without a
 *   command, which strata runs as an empty one; a VOLUME below a symlink, which buildah cannot make;
 *   buildah's `.in` preprocessing and a cache read after a different build;
 * - one where only the order of Env differs (an ENV set again keeps its place in BuildKit's config, where
 *   buildah moves it to the end), and an image of no layer, which podman cannot mount.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { buildahBudCorpus } from './helpers/buildah-bud.js';
import { CorpusBuilds, known, VOLUME_KEEPS_RUN, type Known, type StandIn } from './helpers/corpus-builds.js';
import { needs } from './helpers/oracle.js';

/** The Dockerfiles both build the same, by directory. */
const SAME: Record<string, string[]> = {
  'add-chmod': ['Dockerfile', 'Dockerfile.combined'],
  'add-chown': ['Dockerfile'],
  'add-create-absolute-path': ['Dockerfile'],
  'add-create-relative-path': ['Dockerfile'],
  'add-file': ['Dockerfile'],
  'addtl-tags': ['Dockerfile'],
  'build-arg': ['Dockerfile', 'Dockerfile2', 'Dockerfile3', 'Dockerfile4'],
  'build-with-from': ['Containerfile'],
  'buildkit-mount': ['Dockerfiletmpfs'],
  'buildkit-mount-from': ['Dockerfilebuildkitbase', 'Dockerfilebuildkitbaserelative', 'Dockerfilemultistagefrom', 'Dockerfilemultistagefromcache'],
  'cache-chown': ['Dockerfile.add1', 'Dockerfile.add2', 'Dockerfile.copy1', 'Dockerfile.copy2', 'Dockerfile.prev1', 'Dockerfile.prev2'],
  'cache-format': ['Dockerfile'],
  'cache-scratch': ['Dockerfile', 'Dockerfile.config', 'Dockerfile.different1', 'Dockerfile.different2'],
  'cache-stages': ['Dockerfile.1', 'Dockerfile.2'],
  containeranddockerfile: ['Containerfile', 'Dockerfile'],
  containerfile: ['Containerfile'],
  'copy-chmod': ['Dockerfile', 'Dockerfile.combined'],
  'copy-chown': ['Containerfile.chown_user', 'Dockerfile'],
  'copy-create-absolute-path': ['Dockerfile'],
  'copy-create-relative-path': ['Dockerfile'],
  'copy-envvar': ['Containerfile'],
  'copy-from': ['Dockerfile2', 'Dockerfile3', 'Dockerfile4'],
  'copy-multiple-files': ['Dockerfile'],
  'copy-multistage-paths': ['Dockerfile.absolute', 'Dockerfile.relative'],
  'copy-root': ['Dockerfile'],
  'copy-workdir': ['Dockerfile', 'Dockerfile.2'],
  'dest-final-slash': ['Dockerfile'],
  'dest-symlink-dangling': ['Dockerfile'],
  dockerfile: ['Dockerfile'],
  dockerignore2: ['Dockerfile'],
  'dupe-arg-env-name': ['Containerfile'],
  env: ['Dockerfile.check-env', 'Dockerfile.env-same-file', 'Dockerfile.special-chars'],
  'from-as': ['Dockerfile', 'Dockerfile.skip'],
  'from-multiple-files': ['Dockerfile1.alpine', 'Dockerfile1.scratch', 'Dockerfile2.glob', 'Dockerfile2.withfrom'],
  'from-scratch': ['Containerfile', 'Dockerfile'],
  hardlink: ['Dockerfile'],
  healthcheck: ['Dockerfile'],
  'layers-squash': ['Dockerfile', 'Dockerfile.hardlinks', 'Dockerfile.multi-stage'],
  'leading-args': ['Dockerfile'],
  maintainer: ['Dockerfile'],
  mount: ['Dockerfile'],
  'multi-stage-builds': ['Dockerfile.arg', 'Dockerfile.index', 'Dockerfile.mixed', 'Dockerfile.name', 'Dockerfile.rebase', 'Dockerfile.reused'],
  'multi-stage-builds-small-as': ['Dockerfile.index', 'Dockerfile.mixed', 'Dockerfile.name'],
  'no-change': ['Dockerfile'],
  onbuild: ['Dockerfile', 'Dockerfile2'],
  recurse: ['Dockerfile'],
  'run-mounts': ['Dockerfile.secret-not-required'],
  'run-scenarios': ['Dockerfile.args', 'Dockerfile.cmd-run', 'Dockerfile.entrypoint-cmd-run', 'Dockerfile.entrypoint-run', 'Dockerfile.multi-args', 'Dockerfile.noop-flags'],
  shell: ['Dockerfile', 'Dockerfile.build-shell-custom', 'Dockerfile.build-shell-default'],
  'supplemental-groups': ['Dockerfile'],
  symlink: ['Containerfile.add-tar-gz-with-link', 'Containerfile.add-tar-with-link', 'Dockerfile.absolute-dir-symlink', 'Dockerfile.absolute-symlink', 'Dockerfile.replace-symlink'],
  target: ['Dockerfile'],
  'use-args': ['Containerfile', 'Containerfile.dest_nobrace', 'Containerfile.destination'],
  'use-layers': ['Dockerfile.2', 'Dockerfile.5', 'Dockerfile.6', 'Dockerfile.7', 'Dockerfile.build-args'],
  'volume-symlink': ['Dockerfile', 'Dockerfile.no-symlink'],
  'with-arg': ['Dockerfile', 'Dockerfile2'],
  'workdir-symlink': ['Dockerfile-2', 'Dockerfile-3'],
};

// BuildKit's cache and bind mounts leave the step's tree as it was: a target an earlier step made stays,
// where buildah 1.28 removes it.
const MOUNT_TARGET_STAYS = "a RUN --mount's target made by an earlier step stays";
// BuildKit's unpack gives an archive's files --chown's owner (moby's TarOptions.ChownOpts); buildah keeps the
// archive's.
const ADD_CHOWN_UNPACKS = "ADD --chown owns what it extracts";
// BuildKit reads the context's .dockerignore (or <Dockerfile>.dockerignore), never podman's .containerignore.
const DOCKERIGNORE_ONLY = 'BuildKit reads .dockerignore, not .containerignore';
// BuildKit's walk of the context goes into an excluded directory when an exception (`!*/sub1*`) may match
// below it, and sends what it matches, with the directory; buildah 1.28 leaves the directory out.
const EXCEPTIONS_BELOW = 'an exception pattern brings back a file below an excluded directory';

/** The Dockerfiles whose images differ in BuildKit's way. */
const KNOWN: Record<string, Known[]> = {
  'buildkit-mount/Dockerfilecachewritewithoutz': known(MOUNT_TARGET_STAYS, 'extra: test2'),
  'buildkit-mount-from/Dockerfilecachefrom': known(MOUNT_TARGET_STAYS, 'extra: test'),
  'buildkit-mount-from/Dockerfilecachemultiplefrom': known(MOUNT_TARGET_STAYS, 'extra: test'),
  'cache-chown/Dockerfile.tar1': known(ADD_CHOWN_UNPACKS, 'differs: testfile\n'),
  'cache-chown/Dockerfile.tar2': known(ADD_CHOWN_UNPACKS, 'differs: testfile\n'),
  'containerignore/Dockerfile.succeed': known(DOCKERIGNORE_ONLY, 'missing: test2.txt'),
  'dockerignore/Dockerfile.succeed': known(EXCEPTIONS_BELOW, 'extra: subdir', 'extra: subdir/sub1.txt'),
  'dockerignore6/Dockerfile.succeed': known(EXCEPTIONS_BELOW, 'extra: subdir', 'extra: subdir/sub1.txt'),
  'preserve-volumes/Dockerfile': known(VOLUME_KEEPS_RUN, 'extra: vol/anothervolfile', 'extra: vol/subvol/subvolfile'),
};

const STAND_INS: Record<string, StandIn> = {
  'docker.io/library/alpine:latest': 'busybox',
  'docker.io/library/busybox:latest': 'busybox',
  'docker.io/library/ubuntu:latest': 'minbase',
  'docker.io/library/fedora:latest': 'minbase',
  'docker.io/library/centos:8': 'minbase',
};

describe.skipIf(!needs('root', 'overlay', 'buildah', 'podman', 'umoci', 'skopeo', 'debootstrap', 'gnu-tar', 'python3'))("buildah's bud corpus: strata builds it as buildah does, but where BuildKit differs", () => {
  let builds: CorpusBuilds;
  let corpus: string;

  beforeAll(async () => {
    corpus = buildahBudCorpus();
    builds = await CorpusBuilds.open('strata-build-buildah-bud-', STAND_INS);
  }, 30 * 60_000);

  afterAll(() => builds?.close());

  const cases = [...Object.entries(SAME).flatMap(([dir, files]) => files.map((file) => `${dir}/${file}`)), ...Object.keys(KNOWN)].sort();
  for (const name of cases) {
    const dir = name.slice(0, name.indexOf('/'));
    it(name, () => builds.check({ name, context: join(corpus, dir), dockerfile: join(corpus, name), differences: KNOWN[name] ?? [] }), 10 * 60_000);
  }
});
