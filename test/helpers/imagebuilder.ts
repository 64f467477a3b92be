/**
 * openshift/imagebuilder's conformance corpus (the builder under buildah 1.28): the Dockerfiles and
 * contexts of `dockerclient/testdata`, which its conformance tests build with Docker and with imagebuilder
 * and compare. Taken from Debian's golang-github-openshift-imagebuilder-dev (fetched with apt, its lists
 * signed as every package's) into the cache the benchmarks and the minbase tree use.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CACHE } from '../../benchmarks/inputs.js';

const PACKAGE = 'golang-github-openshift-imagebuilder-dev';

/** The corpus's `dockerclient` directory: its own tests' context where they name none, `testdata` in it. */
export function imagebuilderCorpus(): string {
  const dir = join(CACHE, 'imagebuilder', 'dockerclient');
  if (existsSync(dir)) return dir;
  const work = mkdtempSync(join(tmpdir(), 'strata-imagebuilder-'));
  try {
    execFileSync('apt-get', ['download', '-qq', PACKAGE], { cwd: work, stdio: 'ignore' });
    const deb = readdirSync(work).find((name) => name.endsWith('.deb'));
    if (deb === undefined) throw new Error(`apt-get download ${PACKAGE} gave no package`);
    execFileSync('dpkg-deb', ['-x', join(work, deb), join(work, 'tree')]);
    mkdirSync(join(CACHE, 'imagebuilder'), { recursive: true });
    renameSync(join(work, 'tree', 'usr', 'share', 'gocode', 'src', 'github.com', 'openshift', 'imagebuilder', 'dockerclient'), dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dir;
}
