/**
 * The mount points a RUN's mounts need (and the directories above them) are made by the runtime in the
 * step's tree and removed after it; the directory that held them keeps the time it should have: its own
 * from before the step where only the stub changed it, the step's where the step wrote there too, and a
 * symlink's target directory (the directory the runtime reached) rather than the symlink.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Images } from '@strata/images';
import { BASE, buildWith, imageTree, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';

const OLD = 1_000_000_000; // seconds: a time no step of this test runs at

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap'))('mount stubs', () => {
  let work: string;
  let images: Images;

  beforeAll(async () => {
    work = scratch('strata-mount-stubs-');
    images = await rootWithBase(work);
  }, 30 * 60_000);

  afterAll(async () => {
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('leaves no stub, and gives the directory above it the time it should have', async () => {
    const dir = writeContext(join(work, 'context'), {
      Dockerfile: [
        `FROM ${BASE}`,
        `RUN mkdir -p /srv/kept /srv/wrote /real && ln -s /real /link && touch -d @${OLD} /srv/kept /srv/wrote /real`,
        'RUN --mount=type=tmpfs,target=/srv/kept/scratch --mount=type=tmpfs,target=/srv/wrote/scratch --mount=type=tmpfs,target=/link/deep/scratch touch /srv/wrote/file',
        '',
      ].join('\n'),
    });
    const { result } = await buildWith(images, { context: dir, tags: ['example.com/stubs:strata'] });
    const tree = await imageTree(images, result.names[0]!, work);
    const old = `${OLD}000000000`;
    for (const path of ['srv/kept/scratch', 'srv/wrote/scratch', 'real/deep', 'real/deep/scratch']) expect(tree.has(path), path).toBe(false);
    // Only the stub changed it: as before the step.
    expect(tree.get('srv/kept')).toMatchObject({ type: 'directory', mtimeNs: old });
    // The step wrote there too: the time the step left, not the one from before it.
    expect(tree.get('srv/wrote/file')).toMatchObject({ type: 'file' });
    expect(BigInt(tree.get('srv/wrote')!.mtimeNs!)).toBeGreaterThan(BigInt(old));
    // Made through a symlink: the directory it reached gets its time back; the symlink is as it was.
    expect(tree.get('real')).toMatchObject({ type: 'directory', mtimeNs: old });
    expect(tree.get('link')).toMatchObject({ type: 'symlink', linkname: '/real' });
  }, 10 * 60_000);
});
