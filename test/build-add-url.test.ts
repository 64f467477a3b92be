/**
 * ADD of http and https URLs, against a server of the test's own on 127.0.0.1: what BuildKit's frontend
 * makes of one (a file named by the URL's last path segment, mode 0600, the time `Last-Modified` gives or the
 * epoch, never extracted), `--chmod`, `--chown`, `--checksum`, redirects, credentials in the URL (sent, and
 * never written into the image's history), transient failures tried again, and the step's key following
 * the content. Every failure names the line, keeps its type, and leaves no image, container or download.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImages, type Images } from '@strata/images';
import { buildWith, imageView, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';

const MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT';
const MODIFIED_SEC = Date.parse(MODIFIED) / 1000;
const HELLO = 'hello from the server\n';
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe.skipIf(!needs('root', 'gnu-tar'))('ADD <url>', () => {
  let work: string;
  let images: Images;
  let server: Server;
  let origin: string;
  /** Another origin, which a redirect sends a download to: it must never see the first one's credentials. */
  let other: Server;
  let otherOrigin: string;
  const otherSaw: (string | undefined)[] = [];
  let n = 0;
  let archive: Buffer;
  /** A build context as a tarball, for `docker build https://…/app.tar.gz`. */
  let contextArchive: Buffer;
  /** What `/changing.txt` serves, and with which Last-Modified. */
  const changing = { body: 'version 1\n', modified: MODIFIED };
  const seen: { url: string; authorization: string | undefined }[] = [];
  /** What `/etag.txt` serves, its ETag, and how often it sent the body or a 304. */
  const tagged = { body: 'tagged v1\n', etag: '"v1"', full: 0, notModified: 0 };
  let flakyCalls = 0;

  function serve(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url!, 'http://x');
    seen.push({ url: req.url!, authorization: req.headers.authorization });
    const send = (body: string | Buffer, headers: Record<string, string | number> = {}) => {
      res.writeHead(200, { 'content-length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    switch (url.pathname) {
      case '/files/hello.txt':
        return send(HELLO, { 'last-modified': MODIFIED });
      case '/files/nodate.bin':
        return send('no date\n');
      case '/files/with%20space.txt':
        return send('spaced\n', { 'last-modified': MODIFIED });
      case '/files/vendor.tar.gz':
        return send(archive, { 'last-modified': MODIFIED });
      case '/dir/':
        return send('an index\n');
      case '/':
        return send('the root\n');
      case '/moved':
        res.writeHead(302, { location: '/files/hello.txt' });
        return void res.end();
      case '/away':
        res.writeHead(307, { location: `${otherOrigin}/elsewhere.txt` });
        return void res.end();
      case '/private/secret.txt':
        if (req.headers.authorization !== `Basic ${Buffer.from('user:s3cret').toString('base64')}`) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' });
          return void res.end();
        }
        return send('secret\n');
      case '/etag.txt':
        if (req.headers['if-none-match'] === tagged.etag) {
          tagged.notModified++;
          res.writeHead(304, { etag: tagged.etag });
          return void res.end();
        }
        tagged.full++;
        return send(tagged.body, { etag: tagged.etag });
      case '/changing.txt':
        return send(changing.body, { 'last-modified': changing.modified });
      case '/flaky.txt':
        if (++flakyCalls === 1) {
          res.writeHead(503);
          return void res.end();
        }
        return send('second time\n');
      case '/short.txt':
        // Announces more than it sends, then hangs up.
        res.writeHead(200, { 'content-length': 1000 });
        res.write('only part of it');
        return void setTimeout(() => res.socket?.destroy(), 20);
      case '/big.bin':
        return send(Buffer.alloc(4096, 1));
      case '/contexts/app.tar.gz':
        return send(contextArchive);
      case '/contexts/Dockerfile':
        return send('FROM scratch\nLABEL from=url\n');
      default:
        res.writeHead(404);
        res.end();
    }
  }

  beforeAll(async () => {
    work = scratch('strata-build-add-url-');
    images = await openImages(join(work, 'root'), { driver: 'userspace' });
    writeContext(join(work, 'vendor'), { 'lib/v.txt': 'vendored\n' });
    archive = execFileSync('tar', ['-C', join(work, 'vendor'), '-cz', 'lib']);
    writeContext(join(work, 'url-context'), { Dockerfile: 'FROM scratch\nCOPY . /app/\n', 'src/main.txt': 'from the url\n', '.dockerignore': 'skipped\n', skipped: 'no\n' });
    contextArchive = execFileSync('tar', ['-C', join(work, 'url-context'), '-cz', '.']);
    server = createServer(serve);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    other = createServer((req, res) => {
      otherSaw.push(req.headers.authorization);
      res.writeHead(200, { 'content-length': 6 }).end('other\n');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    otherOrigin = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await new Promise((resolve) => other?.close(resolve));
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  function context(dockerfile: string): string {
    return writeContext(join(work, `context-${++n}`), { Dockerfile: dockerfile, 'local.txt': 'local\n' });
  }

  /** Downloads left in the root's temporary paths (there must be none once a build is over). */
  const leftovers = () => readdirSync(join(work, 'root', 'content', 'ingest')).filter((name) => name.startsWith('tmp-'));

  async function activeSnapshots(): Promise<string[]> {
    const keys: string[] = [];
    await images.snapshotter.walk((info) => void keys.push(info.name), 'kind==active');
    return keys;
  }

  it('fetches into a file named by the URL, mode 0600, at Last-Modified, never extracted', async () => {
    const dir = context(
      [
        'FROM scratch',
        `ADD ${origin}/files/hello.txt /dl/`,
        `ADD ${origin}/files/hello.txt /dl/renamed`,
        `ADD --chmod=644 --chown=1000:1001 ${origin}/files/hello.txt?query=ignored /dl2/`,
        `ADD ${origin}/files/vendor.tar.gz ${origin}/files/nodate.bin ${origin}/files/with%20space.txt /dl/`,
        `ADD ${origin}/moved /dl/`,
        `ADD ${origin}/dir/ ${origin}/ /dl/`,
        `ADD ${origin}/files/hello.txt local.txt /mixed/`,
        '',
      ].join('\n'),
    );
    const { result } = await buildWith(images, { context: dir, tags: ['example.com/url:1'] });
    const layer = await imageView(images, result.names[0]!);
    const stat = async (path: string) => {
      const st = await layer.lstat(path);
      return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size, mtime: Number(st.mtimeNs / 1_000_000_000n) };
    };
    expect(await layer.readFile('/dl/hello.txt', 'utf8')).toBe(HELLO);
    expect(await stat('/dl/hello.txt')).toEqual({ mode: 0o600, uid: 0, gid: 0, size: HELLO.length, mtime: MODIFIED_SEC });
    expect(await layer.readFile('/dl/renamed', 'utf8')).toBe(HELLO);
    // The query is not part of the name; --chmod and --chown apply as to any source.
    expect(await stat('/dl2/hello.txt')).toMatchObject({ mode: 0o644, uid: 1000, gid: 1001, mtime: MODIFIED_SEC });
    // An archive from a URL stays an archive, byte for byte.
    expect(Buffer.compare((await layer.readFile('/dl/vendor.tar.gz')) as Buffer, archive)).toBe(0);
    await expect(layer.lstat('/dl/lib')).rejects.toMatchObject({ code: 'ENOENT' });
    // No Last-Modified: the epoch, as BuildKit and buildah give it.
    expect(await stat('/dl/nodate.bin')).toMatchObject({ mode: 0o600, mtime: 0 });
    expect(await layer.readFile('/dl/with space.txt', 'utf8')).toBe('spaced\n');
    // A redirect is followed; the file is named by the URL as written.
    expect(await layer.readFile('/dl/moved', 'utf8')).toBe(HELLO);
    // The last segment before a trailing slash names the file, and a path with none gives BuildKit's name.
    expect(await layer.readFile('/dl/dir', 'utf8')).toBe('an index\n');
    expect(await layer.readFile('/dl/__unnamed__', 'utf8')).toBe('the root\n');
    expect(await layer.readFile('/mixed/hello.txt', 'utf8')).toBe(HELLO);
    expect(await layer.readFile('/mixed/local.txt', 'utf8')).toBe('local\n');
    const history = images.inspect('example.com/url:1').config.history!.map((h) => h.created_by);
    expect(history).toContain(`ADD ${origin}/files/hello.txt /dl/`);
    expect(leftovers()).toEqual([]);
  }, 120_000);

  it('sends credentials written in the URL to its origin only, and keeps them out of the history and the events', async () => {
    const host = origin.slice('http://'.length);
    const dir = context(`FROM scratch\nADD http://user:s3cret@${host}/private/secret.txt http://user:s3cret@${host}/away /s/\n`);
    const { result, events } = await buildWith(images, { context: dir, tags: ['example.com/url:secret'] });
    const layer = await imageView(images, result.names[0]!);
    expect(await layer.readFile('/s/secret.txt', 'utf8')).toBe('secret\n');
    expect(seen.some((r) => r.url === '/private/secret.txt' && r.authorization !== undefined)).toBe(true);
    // Redirected to another origin: fetched there, without the credentials.
    expect(await layer.readFile('/s/away', 'utf8')).toBe('other\n');
    expect(seen.some((r) => r.url === '/away' && r.authorization !== undefined)).toBe(true);
    expect(otherSaw).toEqual([undefined]);
    const history = JSON.stringify(images.inspect('example.com/url:secret').config.history);
    expect(history).toContain('user:xxxxx@');
    expect(history).not.toContain('s3cret');
    expect(JSON.stringify(events)).not.toContain('s3cret');

    const refused = context(`FROM scratch\nADD http://user:wrong@${origin.slice('http://'.length)}/private/secret.txt /s/\n`);
    const failure = buildWith(images, { context: refused });
    await expect(failure).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(failure).rejects.toThrow(/^Dockerfile line 2: ADD GET http:\/\/user:xxxxx@127\.0\.0\.1:\d+\/private\/secret\.txt answered HTTP 401$/);
  }, 120_000);

  it('checks --checksum before anything is written', async () => {
    const good = context(`FROM scratch\nADD --checksum=sha256:${sha256(HELLO)} ${origin}/files/hello.txt /c/\n`);
    const { result } = await buildWith(images, { context: good, tags: ['example.com/url:checked'] });
    expect(await (await imageView(images, result.names[0]!)).readFile('/c/hello.txt', 'utf8')).toBe(HELLO);
    const sha512 = createHash('sha512').update(HELLO).digest('hex');
    await buildWith(images, { context: context(`FROM scratch\nADD --checksum=sha512:${sha512} ${origin}/files/hello.txt /c/\n`) });

    const wrong = '0'.repeat(64);
    const bad = context(`FROM scratch\nCOPY local.txt /\nADD --checksum=sha256:${wrong} ${origin}/files/hello.txt /c/\n`);
    const failure = buildWith(images, { context: bad, tags: ['example.com/url:bad'] });
    await expect(failure).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    await expect(failure).rejects.toThrow(`Dockerfile line 3: ADD ${origin}/files/hello.txt hashes to sha256:${sha256(HELLO)}, not sha256:${wrong}`);
    expect(images.images.get('example.com/url:bad')).toBeUndefined();
    expect(await activeSnapshots()).toEqual([]);
    expect(leftovers()).toEqual([]);
  }, 120_000);

  const refusals: [string, string, RegExp, string][] = [
    ['a URL that is not there', `ADD ${'ORIGIN'}/nothing.txt /x/`, /Dockerfile line 2: ADD GET http:\/\/127\.0\.0\.1:\d+\/nothing\.txt answered HTTP 404/, 'NOT_FOUND'],
    ['a body cut short, on every try', `ADD ${'ORIGIN'}/short.txt /x/`, /Dockerfile line 2: ADD GET http:\/\/127\.0\.0\.1:\d+\/short\.txt: gave up after 5 tries \((ECONNRESET: aborted|.*sent 15 of the 1000 bytes it announced)\)/, 'UNAVAILABLE'],
    ['a body over the limit', `ADD ${'ORIGIN'}/big.bin /x/`, /Dockerfile line 2: ADD http:\/\/127\.0\.0\.1:\d+\/big\.bin is 4096 bytes, over the limit of 1000/, 'LIMIT_EXCEEDED'],
    ['a digest that is not one', `ADD --checksum=md5:abc ${'ORIGIN'}/files/hello.txt /x/`, /Dockerfile line 2: ADD --checksum: "md5:abc" is not a sha256, sha384 or sha512 digest/, 'INVALID_ARGUMENT'],
    ['--checksum of a context file', `ADD --checksum=sha256:${sha256('local\n')} local.txt /x/`, /Dockerfile line 2: ADD --checksum is for URL sources only/, 'INVALID_ARGUMENT'],
    ['COPY of a URL', `COPY ${'ORIGIN'}/files/hello.txt /x/`, /Dockerfile line 2: COPY http:\/\/127\.0\.0\.1:\d+\/files\/hello\.txt: COPY takes no URLs/, 'INVALID_ARGUMENT'],
    ['a git remote over ssh without an agent', 'ADD git@github.com:example/repo.git /x/', /Dockerfile line 2: ADD git@github\.com:example\/repo\.git: an ssh remote needs the build's SSH agent/, 'FAILED_PRECONDITION'],
    ['a repository the server does not have (cloned, not downloaded)', `ADD ${'ORIGIN'}/nothing.git#v1 /x/`, /Dockerfile line 2: ADD git ls-remote failed: .*not found/, 'NOT_FOUND'],
    ['--checksum with two sources', `ADD --checksum=sha256:${sha256(HELLO)} ${'ORIGIN'}/files/hello.txt ${'ORIGIN'}/files/hello.txt /x/`, /Dockerfile line 2: ADD --checksum takes one source/, 'INVALID_ARGUMENT'],
    ['an ftp URL', 'ADD ftp://127.0.0.1/x.txt /x/', /Dockerfile line 2: ADD ftp:\/\/127\.0\.0\.1\/x\.txt: strata fetches http and https URLs and git repositories/, 'INVALID_ARGUMENT'],
  ];
  for (const [what, line, message, code] of refusals) {
    it(`refuses ${what}, naming the line, leaving nothing`, async () => {
      const dir = context(`FROM scratch\n${line.replaceAll('ORIGIN', origin)}\n`);
      const failure = buildWith(images, { context: dir, tags: ['example.com/url:refused'], limits: { maxBytes: 1000 } });
      await expect(failure).rejects.toThrow(message);
      await expect(failure).rejects.toMatchObject({ code });
      expect(images.images.get('example.com/url:refused')).toBeUndefined();
      expect(await activeSnapshots()).toEqual([]);
      expect(leftovers()).toEqual([]);
    }, 60_000);
  }

  it('tries a transient failure again', async () => {
    flakyCalls = 0;
    const { result } = await buildWith(images, { context: context(`FROM scratch\nADD ${origin}/flaky.txt /f/\n`), tags: ['example.com/url:flaky'] });
    expect(flakyCalls).toBe(2);
    expect(await (await imageView(images, result.names[0]!)).readFile('/f/flaky.txt', 'utf8')).toBe('second time\n');
  }, 60_000);

  it('asks the server again with the ETag it gave, and fetches the bytes only when the step runs', async () => {
    const dir = context(`FROM scratch\nADD ${origin}/etag.txt /e/\n`);
    const step = `ADD ${origin}/etag.txt /e/`;
    expect((await buildWith(images, { context: dir, tags: ['example.com/url:etag'] })).ran).toEqual([step]);
    expect(tagged).toMatchObject({ full: 1, notModified: 0 });
    // Unchanged: a 304, the step from the cache, no body.
    expect((await buildWith(images, { context: dir, tags: ['example.com/url:etag'] })).ran).toEqual([]);
    expect(tagged).toMatchObject({ full: 1, notModified: 1 });
    // Unchanged, but the step has to run: the bytes are fetched then.
    expect((await buildWith(images, { context: dir, tags: ['example.com/url:etag'], noCache: true })).ran).toEqual([step]);
    expect(tagged).toMatchObject({ full: 2, notModified: 2 });
    expect(await (await imageView(images, 'example.com/url:etag')).readFile('/e/etag.txt', 'utf8')).toBe('tagged v1\n');
    // Changed: the conditional request gets the new body.
    Object.assign(tagged, { body: 'tagged v2\n', etag: '"v2"' });
    expect((await buildWith(images, { context: dir, tags: ['example.com/url:etag'] })).ran).toEqual([step]);
    expect(tagged).toMatchObject({ full: 3, notModified: 2 });
    expect(await (await imageView(images, 'example.com/url:etag')).readFile('/e/etag.txt', 'utf8')).toBe('tagged v2\n');
    // A server that says "not modified" and then sends other bytes: refused, nothing named.
    tagged.body = 'changed behind its ETag\n';
    const lied = buildWith(images, { context: dir, tags: ['example.com/url:lied'], noCache: true });
    await expect(lied).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    await expect(lied).rejects.toThrow(/Dockerfile line 2: ADD http:\/\/127\.0\.0\.1:\d+\/etag\.txt changed while the build ran/);
    expect(images.images.get('example.com/url:lied')).toBeUndefined();
    expect(await activeSnapshots()).toEqual([]);
    expect(leftovers()).toEqual([]);
  }, 120_000);

  it('keys the step by what the URL gave: the same content hits, new content or a new date runs it again', async () => {
    const dir = context(`FROM scratch\nADD ${origin}/changing.txt /c/\n`);
    const first = await buildWith(images, { context: dir, tags: ['example.com/url:changing'] });
    expect(first.ran).toEqual([`ADD ${origin}/changing.txt /c/`]);
    const again = await buildWith(images, { context: dir, tags: ['example.com/url:changing'] });
    expect(again.ran).toEqual([]);
    expect(again.result.config.rootfs.diff_ids).toEqual(first.result.config.rootfs.diff_ids);

    changing.body = 'version 2\n';
    const changed = await buildWith(images, { context: dir, tags: ['example.com/url:changing'] });
    expect(changed.ran).toEqual([`ADD ${origin}/changing.txt /c/`]);
    expect(await (await imageView(images, 'example.com/url:changing')).readFile('/c/changing.txt', 'utf8')).toBe('version 2\n');

    // The same bytes with a new date: the file's time changes, so the layer does too.
    changing.modified = 'Thu, 22 Oct 2015 07:28:00 GMT';
    const redated = await buildWith(images, { context: dir, tags: ['example.com/url:changing'] });
    expect(redated.ran).toEqual([`ADD ${origin}/changing.txt /c/`]);
    const st = await (await imageView(images, 'example.com/url:changing')).lstat('/c/changing.txt');
    expect(Number(st.mtimeNs / 1_000_000_000n)).toBe(Date.parse(changing.modified) / 1000);
  }, 120_000);
  it('builds a context at an http URL (docker build https://…/ctx.tar.gz): a tarball of it, or a Dockerfile alone', async () => {
    const ingests = readdirSync(join(work, 'root', 'content', 'ingest'));
    const { result } = await buildWith(images, { context: `${origin}/contexts/app.tar.gz` });
    const layer = await imageView(images, result.target.digest);
    expect((await layer.readdir('/app')).sort()).toEqual(['.dockerignore', 'Dockerfile', 'src']);
    expect(String(await layer.readFile('/app/src/main.txt', 'utf8'))).toBe('from the url\n');
    const alone = await buildWith(images, { context: `${origin}/contexts/Dockerfile` });
    expect(alone.result.config.config?.Labels).toEqual({ from: 'url' });
    await expect(buildWith(images, { context: `${origin}/contexts/missing.tar.gz` })).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(`the build context ${origin}/contexts/missing.tar.gz: `) });
    await expect(buildWith(images, { context: `${origin}/big.bin`, limits: { maxBytes: 100 } })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(readdirSync(join(work, 'root', 'content', 'ingest'))).toEqual(ingests);
  }, 120_000);

  it('reads an http URL as a named context as BuildKit\'s frontend does: one file, `context`, 0600, at Last-Modified, never extracted', async () => {
    const ingests = readdirSync(join(work, 'root', 'content', 'ingest'));
    const requests = () => seen.filter((s) => s.url === '/files/vendor.tar.gz').length;
    const before = requests();
    const dir = context('FROM scratch\nCOPY --from=vendor context /v/archive.tgz\nCOPY --from=vendor . /all/\nCOPY --from=hello context /h\n');
    const { result } = await buildWith(images, { context: dir, contexts: { vendor: `${origin}/files/vendor.tar.gz`, hello: `${origin}/files/nodate.bin` } });
    expect(requests() - before).toBe(1); // once a build, however many steps read it
    const view = await imageView(images, result.target.digest);
    expect(sha256(await view.readFile('/v/archive.tgz'))).toBe(sha256(archive));
    expect(await view.readdir('/all')).toEqual(['context']);
    const st = await view.lstat('/v/archive.tgz');
    expect([st.mode & 0o7777, st.uid, st.gid, Number(st.mtimeNs / 1_000_000_000n)]).toEqual([0o600, 0, 0, MODIFIED_SEC]);
    expect(Number((await view.lstat('/h')).mtimeNs)).toBe(0); // no Last-Modified: the epoch
    // A failed download names the context and the line, typed, and leaves nothing; so does the byte limit.
    const missing = buildWith(images, { context: dir, contexts: { vendor: `${origin}/files/missing.tgz`, hello: `${origin}/files/nodate.bin` } });
    await expect(missing).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/^Dockerfile line 2: the named context "vendor": /) });
    const big = buildWith(images, { context: dir, contexts: { vendor: `${origin}/big.bin`, hello: `${origin}/files/nodate.bin` }, limits: { maxBytes: 100 } });
    await expect(big).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(readdirSync(join(work, 'root', 'content', 'ingest'))).toEqual(ingests);
  }, 120_000);
});
