/**
 * The content store and leases: containerd's content semantics (resumable ingests by ref, one live writer,
 * verified commits, ALREADY_EXISTS for what is there, ranges and labels), and what leases hold.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { imagesRoot } from './helpers.js';

const digestOf = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe('content store', () => {
  const root = imagesRoot('strata-content-');

  it('resumes an ingest at its offset, verifies it at commit and publishes it whole', async () => {
    const data = randomBytes(300_000);
    const digest = digestOf(data);
    const first = root.images.content.writer('pull-1', { digest, size: data.length });
    await first.write(data.subarray(0, 100_000));
    first.close(); // the writer stops (a dropped connection, a killed process)
    expect(root.images.content.has(digest)).toBe(false);
    expect(root.images.content.ingests()).toMatchObject([{ ref: 'pull-1', offset: 100_000, total: data.length, expected: digest, locked: false }]);

    const again = root.images.content.writer('pull-1', { digest, size: data.length });
    expect(again.offset).toBe(100_000);
    await again.write(data.subarray(100_000));
    expect(await again.commit()).toEqual({ digest, size: data.length });
    expect(root.images.content.has(digest)).toBe(true);
    expect(root.images.content.ingests()).toEqual([]);
    expect(await text(root.images.content.read(digest, { start: 10, end: 20 }))).toBe(data.subarray(10, 20).toString());
    expect(root.images.content.info(digest).size).toBe(data.length);
  });

  it('starts over an ingest whose record a crash cut short, and lists it meanwhile', async () => {
    const data = randomBytes(50_000);
    const digest = digestOf(data);
    const first = root.images.content.writer('pull-cut', { digest, size: data.length });
    await first.write(Buffer.alloc(20_000)); // not a prefix of data: the record is all that says which blob
    first.close();
    const ingests = join(root.dir, 'root', 'content', 'ingest');
    const [dir] = readdirSync(ingests).filter((name) => /^[0-9a-f]{64}$/.test(name));
    for (const cut of ['', '{"digest":"sha256:', 'null']) {
      writeFileSync(join(ingests, dir!, 'expected'), cut);
      expect(root.images.content.ingests()).toMatchObject([{ ref: 'pull-cut', offset: 20_000, total: 0, locked: false }]);
    }
    const again = root.images.content.writer('pull-cut', { digest, size: data.length });
    expect(again.offset).toBe(0);
    await again.write(data);
    expect(await again.commit()).toEqual({ digest, size: data.length });
  });

  it('allows one live writer per ref, in this process and across processes', () => {
    const writer = root.images.content.writer('busy');
    expect(() => root.images.content.writer('busy')).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
    // Another process sees the ref held by this one.
    const script = `import('${join(import.meta.dirname, '..', 'dist', 'strata-images.js')}').then(async ({ openImages }) => { const im = await openImages(${JSON.stringify(join(root.dir, 'root'))}); try { im.content.writer('busy'); console.log('opened'); } catch (e) { console.log(e.code); } await im.close(); })`;
    const other = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(other.stdout.trim()).toBe('FAILED_PRECONDITION');
    writer.close();
    expect(root.images.content.writer('busy').offset).toBe(0);
  });

  it('publishes nothing when the size or digest is wrong', async () => {
    const data = Buffer.from('the real bytes');
    const wrong = root.images.content.writer('w1', { digest: digestOf(Buffer.from('other bytes')) });
    await wrong.write(data);
    await expect(wrong.commit()).rejects.toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
    expect(root.images.content.digests()).toEqual([]);
    expect(root.images.content.ingests()).toEqual([]); // a wrong blob is not worth resuming

    const long = root.images.content.writer('w2', { size: 4 });
    await expect(long.write(data)).rejects.toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
    expect(root.images.content.ingests()).toEqual([]);

    const short = root.images.content.writer('w3', { size: data.length + 10 });
    await short.write(data);
    await expect(short.commit()).rejects.toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
    expect(root.images.content.ingests().map((i) => [i.ref, i.offset])).toEqual([['w3', data.length]]); // resumable
    expect(root.images.content.digests()).toEqual([]);
  });

  it('ingests a file by its path, and a pipe by its path, each whole and verified', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 11);
    const file = join(root.dir, 'blob');
    writeFileSync(file, data);
    expect(await root.images.content.ingest(file, { digest: digestOf(data), size: data.length })).toEqual({ digest: digestOf(data), size: data.length });
    const other = Buffer.concat([data, Buffer.from('!')]);
    writeFileSync(join(root.dir, 'other'), other);
    const fifo = join(root.dir, 'fifo');
    spawnSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', 'exec cat "$0" > "$1"', join(root.dir, 'other'), fifo], { stdio: 'ignore' });
    try {
      expect(await root.images.content.ingest(fifo)).toEqual({ digest: digestOf(other), size: other.length });
    } finally {
      writer.kill();
    }
  });

  it('says ALREADY_EXISTS for a digest it holds, at open and at commit, and costs nothing', async () => {
    const data = Buffer.from('once');
    const { digest } = await root.images.content.ingest(data);
    expect(() => root.images.content.writer('again', { digest })).toThrow(expect.objectContaining({ code: 'ALREADY_EXISTS' }));
    const blind = root.images.content.writer('blind');
    await blind.write(data);
    await expect(blind.commit()).rejects.toThrow(expect.objectContaining({ code: 'ALREADY_EXISTS' }));
    expect(root.images.content.ingests()).toEqual([]);
    expect(await root.images.content.ingest(data, { digest })).toEqual({ digest, size: data.length });
  });

  it('keeps labels, filters on them, and deletes', async () => {
    const a = await root.images.content.ingest(Buffer.from('a'), {}, { labels: { kind: 'layer' } });
    const b = await root.images.content.ingest(Buffer.from('b'));
    root.images.content.update(b.digest, { kind: 'config', extra: 'x' });
    root.images.content.update(b.digest, {}, ['labels.extra']);
    expect(root.images.content.info(b.digest).labels).toEqual({ kind: 'config' });
    expect(root.images.content.walk('labels.kind==layer').map((i) => i.digest)).toEqual([a.digest]);
    expect(root.images.content.walk(`digest==${b.digest}`).map((i) => i.digest)).toEqual([b.digest]);
    expect(() => root.images.content.update(a.digest, {}, ['size'])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    root.images.content.delete(a.digest);
    expect(root.images.content.has(a.digest)).toBe(false);
    expect(() => root.images.content.delete(a.digest)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(() => root.images.content.info('sha256:zz')).toThrow(expect.objectContaining({ code: 'IMAGE_FORMAT' }));
    expect(() => root.images.content.info('sha512:abcd')).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
  });

  it('stages documents on disk, publishes them with what the caller adds in its transaction, or leaves nothing', async () => {
    const { content, leases } = root.images;
    const temporaries = () => readdirSync(join(root.dir, 'root', 'content', 'ingest')).filter((n) => n.startsWith('tmp-'));
    const held = Buffer.from('{"held":true}');
    await content.ingest(held);
    const fresh = Buffer.from('{"fresh":true}');

    // Discarded: no blob and no temporary file left.
    const dropped = await content.stageDocuments([fresh]);
    expect(temporaries()).toHaveLength(1);
    dropped.discard();
    expect(temporaries()).toEqual([]);
    expect(content.has(digestOf(fresh))).toBe(false);

    // A transaction that throws after the publish records nothing of the blobs: no lease holds them.
    const lease = leases.create();
    const failed = await content.stageDocuments([fresh]);
    expect(() =>
      root.images.root.metadata.transaction(() => {
        failed.publish(lease.id);
        throw new Error('the name could not be written');
      }),
    ).toThrow('the name could not be written');
    failed.discard();
    expect(leases.resources(lease.id)).toEqual([]);

    // Published: new bytes become a blob, bytes already there are held; the lease holds both; nothing left over.
    const staged = await content.stageDocuments([fresh, held]);
    expect(staged.blobs).toEqual([
      { digest: digestOf(fresh), size: fresh.length },
      { digest: digestOf(held), size: held.length },
    ]);
    root.images.root.metadata.transaction(() => staged.publish(lease.id));
    staged.discard(); // after a publish: a no-op
    expect(content.readBytes(digestOf(fresh), 1024).equals(fresh)).toBe(true);
    expect(leases.resources(lease.id).map((r) => r.id).sort()).toEqual([digestOf(fresh), digestOf(held)].sort());
    expect(temporaries()).toEqual([]);
    expect(() => staged.publish(lease.id)).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
    leases.delete(lease.id);
  });
});

describe('leases and collection of content', () => {
  const root = imagesRoot('strata-leases-');

  it('keeps what a lease holds until the lease goes, and lets expired leases go', async () => {
    const held = root.images.leases.create({ id: 'work' });
    const kept = await root.images.content.ingest(Buffer.from('held'), {}, { lease: held.id });
    const loose = await root.images.content.ingest(Buffer.from('loose'));
    const brief = root.images.leases.create({ expiresInMs: 1 });
    const expiring = await root.images.content.ingest(Buffer.from('brief'), {}, { lease: brief.id });
    await new Promise((r) => setTimeout(r, 5));
    const freed = await root.images.gc();
    expect(freed.blobs.sort()).toEqual([loose.digest, expiring.digest].sort());
    expect(freed.leases).toEqual([brief.id]);
    expect(root.images.content.has(kept.digest)).toBe(true);
    expect(root.images.leases.resources('work')).toEqual([{ type: 'content', id: kept.digest }]);
    root.images.leases.delete('work');
    expect((await root.images.gc()).blobs).toEqual([kept.digest]);
    expect(root.images.content.digests()).toEqual([]);
  });

  it('keeps blobs labelled containerd.io/gc.root and what their gc.ref labels name', async () => {
    const child = await root.images.content.ingest(Buffer.from('child'));
    const pinned = await root.images.content.ingest(Buffer.from('root'), {}, { labels: { 'containerd.io/gc.root': '2024-01-01T00:00:00Z', 'containerd.io/gc.ref.content.0': child.digest } });
    const other = await root.images.content.ingest(Buffer.from('other'));
    expect((await root.images.gc()).blobs).toEqual([other.digest]);
    expect(root.images.content.digests().sort()).toEqual([pinned.digest, child.digest].sort());
  });

  it('leaves an ingest a live writer holds, and one a lease holds; takes an abandoned one', async () => {
    const live = root.images.content.writer('live');
    await live.write(Buffer.from('x'));
    const lease = root.images.leases.create();
    const leased = root.images.content.writer('leased', {}, { lease: lease.id });
    await leased.write(Buffer.from('y'));
    leased.close();
    const abandoned = root.images.content.writer('abandoned');
    await abandoned.write(Buffer.from('z'));
    abandoned.close();
    // Unheld ingests are left alone for a grace period (one being opened looks the same): age them all.
    const ingestDir = join(root.dir, 'root', 'content', 'ingest');
    for (const name of readdirSync(ingestDir)) spawnSync('touch', ['-d', '2 hours ago', join(ingestDir, name)]);
    const freed = await root.images.gc();
    expect(freed.ingests).toBe(1);
    expect(root.images.content.ingests().map((i) => i.ref).sort()).toEqual(['leased', 'live']);
    live.abort();
    expect(existsSync(join(root.dir, 'root', 'content'))).toBe(true);
  });
});
