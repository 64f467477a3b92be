/**
 * buildah's own corpus of Dockerfiles: the contexts of its `bud` test suite (tests/bud of buildah 1.28.2,
 * the version Debian ships), from Debian's source package, its checksum pinned.
 */
import { execFileSync } from 'node:child_process';
import { debianSource } from './debian-source.js';
import { cachedDirectory } from '../../benchmarks/inputs.js';

const VERSION = '1.28.2+ds1';
const SHA256 = '94cc5f4979f56dc2f5f425d00fb3094784d5af847036f1a80d7c2e7354597f9e';

/** The directory of the corpus's contexts (`tests/bud`), one directory per case, unpacked once. */
export function buildahBudCorpus(): string {
  return cachedDirectory(`buildah-${VERSION}-bud`, (work) => {
    const tarball = debianSource('g/golang-github-containers-buildah', `golang-github-containers-buildah_${VERSION}.orig.tar.xz`, SHA256);
    execFileSync('tar', ['-xJf', tarball, '-C', work, '--strip-components=3', '--wildcards', '*/tests/bud/*']);
  });
}
