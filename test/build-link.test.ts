/**
 * `COPY --link` and `ADD --link` as BuildKit's documentation and frontend define them: the files go into an
 * empty tree laid over the image, so the destination's directories are the link's own (mode 0755, root's or
 * `--chown`'s), a symlink on the way is replaced rather than followed, a destination without a trailing `/`
 * is the file's own path even where the image has a directory, and directories the image has keep what they
 * hold. With `--chmod` BuildKit makes a plain copy, and so does strata. The linked layer is made on an empty
 * tree, so it is the same layer on any base, and a change below it reuses it (BuildKit's rebase); `--chown`
 * names are the base's users. buildah 1.28 refuses `--link`, so the documented behaviour is the oracle, each
 * case beside the plain COPY it differs from.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Images } from '@strata/images';
import { BASE, buildWith, imageView, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';

/** A base with a symlinked directory, a private directory holding a file, and a directory where a file will go. */
const SETUP = `FROM ${BASE} AS setup
RUN mkdir -p /srv/real /opt/private /data && ln -s /srv/real /app && echo kept > /opt/private/old && chmod 700 /opt/private && chown 1234:1234 /opt/private && echo inside > /data/inside
`;

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap'))('COPY --link', () => {
  let work: string;
  let images: Images;
  let n = 0;

  beforeAll(async () => {
    work = scratch('strata-build-link-');
    images = await rootWithBase(work);
  }, 30 * 60_000);

  afterAll(async () => {
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  async function tree(steps: string) {
    const dir = writeContext(join(work, `context-${++n}`), { Dockerfile: `${SETUP}${steps}`, 'a.txt': 'a\n' });
    const built = await buildWith(images, { context: dir });
    return { layer: await imageView(images, built.result.target.digest), built };
  }

  const stat = async (layer: Awaited<ReturnType<typeof tree>>['layer'], path: string) => {
    const st = await layer.lstat(path);
    return { type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  };

  it('replaces a symlink on the destination path with a directory, where COPY follows it', async () => {
    const linked = (await tree('COPY --link a.txt /app/\n')).layer;
    expect(await stat(linked, '/app')).toMatchObject({ type: 'dir', mode: 0o755, uid: 0 });
    expect(await linked.readFile('/app/a.txt', 'utf8')).toBe('a\n');
    await expect(linked.lstat('/srv/real/a.txt')).rejects.toMatchObject({ code: 'ENOENT' });

    const plain = (await tree('COPY a.txt /app/\n')).layer;
    expect(await stat(plain, '/app')).toMatchObject({ type: 'symlink' });
    expect(await plain.readFile('/srv/real/a.txt', 'utf8')).toBe('a\n');
  }, 300_000);

  it("gives the destination's directories its own metadata, and keeps what they hold", async () => {
    const linked = (await tree('COPY --link a.txt /opt/private/\n')).layer;
    expect(await stat(linked, '/opt/private')).toEqual({ type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    expect(await stat(linked, '/opt')).toMatchObject({ mode: 0o755, uid: 0 });
    expect(await linked.readFile('/opt/private/old', 'utf8')).toBe('kept\n');
    expect(await linked.readFile('/opt/private/a.txt', 'utf8')).toBe('a\n');

    const owned = (await tree('COPY --link --chown=4321:4321 a.txt /opt/private/\n')).layer;
    expect(await stat(owned, '/opt/private')).toEqual({ type: 'dir', mode: 0o755, uid: 4321, gid: 4321 });
    expect(await stat(owned, '/opt/private/a.txt')).toMatchObject({ uid: 4321, gid: 4321 });

    const plain = (await tree('COPY a.txt /opt/private/\n')).layer;
    expect(await stat(plain, '/opt/private')).toEqual({ type: 'dir', mode: 0o700, uid: 1234, gid: 1234 });
  }, 300_000);

  it("writes a destination without a trailing / at that path, where COPY goes into the image's directory", async () => {
    const linked = (await tree('COPY --link a.txt /data\n')).layer;
    expect(await stat(linked, '/data')).toMatchObject({ type: 'file' });
    expect(await linked.readFile('/data', 'utf8')).toBe('a\n');

    const plain = (await tree('COPY a.txt /data\n')).layer;
    expect(await plain.readFile('/data/a.txt', 'utf8')).toBe('a\n');
    expect(await plain.readFile('/data/inside', 'utf8')).toBe('inside\n');
  }, 300_000);

  it('makes the same layer on any base, and lays the one made before on a changed base without running again', async () => {
    const dockerfile = (version: string) => `FROM ${BASE}\nRUN echo ${version} > /base-version\nCOPY --link a.txt /opt/linked/\nRUN cat /opt/linked/a.txt /base-version > /after\n`;
    const dir = writeContext(join(work, 'rebase'), { Dockerfile: dockerfile('one'), 'a.txt': 'a\n' });
    // Fixed times, so that a layer made again is the same bytes (its directories are made at build time).
    const sourceDateEpoch = 1_700_000_000;
    const first = await buildWith(images, { context: dir, sourceDateEpoch });
    writeContext(dir, { Dockerfile: dockerfile('two') });
    const second = await buildWith(images, { context: dir, sourceDateEpoch });
    // The base changed, the link did not: reused; the step after it sees both, so it ran.
    expect(second.ran).toEqual(['RUN echo two > /base-version', 'RUN cat /opt/linked/a.txt /base-version > /after']);
    const linkLayer = (r: typeof first) => r.result.config.rootfs.diff_ids.at(-2);
    expect(linkLayer(second)).toBe(linkLayer(first));
    const layer = await imageView(images, second.result.target.digest);
    expect(await layer.readFile('/after', 'utf8')).toBe('a\ntwo\n');
    // The same layer as the link makes on a base with nothing at its paths.
    const bare = writeContext(join(work, 'rebase-bare'), { Dockerfile: `FROM ${BASE}\nCOPY --link a.txt /opt/linked/\n`, 'a.txt': 'a\n' });
    expect((await buildWith(images, { context: bare, noCache: true, sourceDateEpoch })).result.config.rootfs.diff_ids.at(-1)).toBe(linkLayer(first));
  }, 300_000);

  it("looks --chown names up in the base's users", async () => {
    const { layer } = await tree('COPY --link --chown=nobody:nogroup a.txt /opt/owned/\n');
    expect(await stat(layer, '/opt/owned/a.txt')).toMatchObject({ uid: 65534, gid: 65534 });
    expect(await stat(layer, '/opt/owned')).toMatchObject({ uid: 65534, gid: 65534 });
  }, 300_000);

  it('makes a plain copy with --chmod or --link=false, keys the step apart, and refuses another value', async () => {
    for (const flags of ['--link --chmod=644', '--link=false']) {
      const { layer } = await tree(`COPY ${flags} a.txt /app/\n`);
      expect(await stat(layer, '/app')).toMatchObject({ type: 'symlink' });
    }
    const { built } = await tree('COPY --link a.txt /srv/real/\n');
    const again = await tree('COPY a.txt /srv/real/\n');
    expect(again.built.ran).toEqual(['COPY a.txt /srv/real/']); // not the linked step's layer
    expect(built.result.config.history!.at(-1)!.created_by).toBe('COPY --link a.txt /srv/real/');
    const dir = writeContext(join(work, 'bad-link'), { Dockerfile: `FROM ${BASE}\nCOPY --link=maybe a.txt /x\n`, 'a.txt': 'a\n' });
    await expect(buildWith(images, { context: dir })).rejects.toThrow(/Dockerfile line 2: COPY --link=maybe: true or false is expected/);
  }, 300_000);
});
