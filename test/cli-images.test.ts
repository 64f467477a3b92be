/**
 * `strata image …`, `strata container …`, `unpack`, `commit`, `gc` and `fsck` as a user runs them (the built
 * CLI): Docker's and ctr's shapes, JSON listings, progress on stderr only, typed one-line errors.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, layer, layoutFiles, named, writeArchive } from './helpers/images.js';
import { needs } from './helpers/oracle.js';

const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');

describe('strata image, container, commit and gc', () => {
  let work: string;
  let root: string;
  let archive: string;
  const strata = (...args: string[]) => spawnSync(process.execPath, [cli, '--root', root, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
  const ok = (...args: string[]) => {
    const r = strata(...args);
    expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  const lines = (text: string) => text.trim().split('\n').filter((l) => l !== '');
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error('build first: pnpm build');
    work = mkdtempSync(join(tmpdir(), 'strata-cli-images-'));
    root = join(work, 'root');
    const base = layer({ 'etc/': '', 'etc/os-release': 'ID=cli\n' });
    const one = buildImage({ layers: [base, layer({ 'app/': '', 'app/one': '1\n' })] });
    const two = buildImage({ layers: [base, layer({ 'app/': '', 'app/two': '2\n' })] });
    archive = writeArchive(join(work, 'images.tar'), layoutFiles(new Map([...one.blobs, ...two.blobs]), [named(one.manifestDescriptor, 'example.com/one:1', '1'), named(two.manifestDescriptor, 'example.com/two:1', '1')]));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('imports, lists, inspects, tags, shows history, unpacks and exports', () => {
    const imported = ok('--driver', 'userspace', 'image', 'import', archive, '--unpack');
    expect(lines(imported.stdout)).toEqual(['Loaded image: example.com/one:1', 'Loaded image: example.com/two:1', expect.stringMatching(/^Unpacked example.com\/one:1: sha256:/), expect.stringMatching(/^Unpacked example.com\/two:1: sha256:/)]);
    expect(imported.stderr).toMatch(/import .*: 100%/); // progress, on stderr, as plain lines off a terminal
    const listed = lines(ok('image', 'ls', '--json').stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(listed.map((i) => Object.keys(i))).toEqual([['name', 'digest', 'size', 'created', 'recorded', 'dangling'], ['name', 'digest', 'size', 'created', 'recorded', 'dangling']]);
    expect(listed[0]!.created).toBe('2024-01-01T00:00:00Z'); // the config's, as docker images shows it
    expect(listed.map((i) => [i.name, i.dangling])).toEqual([['example.com/one:1', false], ['example.com/two:1', false]]);
    expect(lines(ok('image', 'ls').stdout)[0]).toMatch(/^NAME\s+ID\s+SIZE\s+CREATED$/);
    const inspected = JSON.parse(ok('image', 'inspect', 'example.com/one:1', '--json').stdout) as Record<string, unknown>;
    expect(inspected).toMatchObject({ names: ['example.com/one:1'], manifest: listed[0]!.digest, platform: 'linux/amd64', config: { rootfs: { type: 'layers' } } });
    // By ID (a prefix of the digest), as Docker takes it.
    ok('image', 'tag', String(listed[0]!.digest).slice(7, 19), 'one:alias');
    expect(JSON.parse(ok('image', 'inspect', 'one:alias', '--json').stdout).names).toEqual(['docker.io/library/one:alias', 'example.com/one:1']);
    const history = lines(ok('image', 'history', 'one:alias', '--json').stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(history.map((h) => h.createdBy)).toEqual(['step 1', 'step 0']);
    expect(ok('unpack', 'example.com/two:1', '-q').stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    for (const format of ['oci', 'oci-archive', 'docker']) ok('image', 'export', 'example.com/one:1', '-o', join(work, `out-${format}`), '--format', format, '-q');
    expect(existsSync(join(work, 'out-oci', 'index.json'))).toBe(true);
  });

  it('pipes an export into an import (export -o -, import -), as docker save | docker load (the same manifest through an OCI archive)', () => {
    const raw = (rootDir: string, args: string[], input?: Buffer) => spawnSync(process.execPath, [cli, '--root', rootDir, ...args], { env: { ...process.env, NODE_EXTRA_CA_CERTS: '' }, maxBuffer: 64 << 20, ...(input ? { input } : {}) });
    const saved = raw(root, ['image', 'export', 'example.com/one:1', '-o', '-', '--format', 'oci-archive']);
    expect(saved.status, saved.stderr.toString()).toBe(0);
    expect(saved.stdout.subarray(257, 262).toString()).toBe('ustar'); // the archive alone on stdout
    const other = join(work, 'piped-root');
    const loaded = raw(other, ['image', 'import', '-'], saved.stdout);
    expect(loaded.status, loaded.stderr.toString()).toBe(0);
    expect(loaded.stdout.toString()).toBe('Loaded image: example.com/one:1\n');
    const digest = (rootDir: string) => (JSON.parse(raw(rootDir, ['image', 'inspect', 'example.com/one:1', '--json']).stdout.toString()) as { manifest: string }).manifest;
    expect(digest(other)).toBe(digest(root));
    // Through a shell's pipe, and from a file on stdin: each read through its path, not process.stdin's stream.
    const archiveFile = join(work, 'one.tar');
    writeFileSync(archiveFile, saved.stdout);
    for (const [name, script] of [
      ['pipe', 'cat "$3" | exec "$0" "$1" --root "$2" image import -'],
      ['file', 'exec "$0" "$1" --root "$2" image import - < "$3"'],
    ] as const) {
      const dir = join(work, `${name}-root`);
      const r = spawnSync('sh', ['-c', script, process.execPath, cli, dir, archiveFile], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe('Loaded image: example.com/one:1\n');
      expect(digest(dir)).toBe(digest(root));
    }
    expect(raw(root, ['image', 'export', 'example.com/one:1', '-o', '-', '--format', 'oci']).stderr.toString()).toContain('an OCI layout is a directory');
  });

  it('exports to stdout through a pipe whose reader falls behind, with progress on, the archive -o FILE writes', () => {
    // Larger than a pipe holds: the export waits for its reader (it failed "write failed" a few MB in).
    const bigRoot = join(work, 'big-root');
    const big = buildImage({ layers: [layer({ 'data/': '', 'data/blob': randomBytes(4 << 20).toString('hex') })] }); // gzip leaves half
    const bigArchive = writeArchive(join(work, 'big.tar'), layoutFiles(big.blobs, [named(big.manifestDescriptor, 'example.com/big:1', '1')]));
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: '' };
    expect(spawnSync(process.execPath, [cli, '--root', bigRoot, 'image', 'import', bigArchive, '-q'], { env }).status).toBe(0);
    const [file, piped] = [join(work, 'big-file.tar'), join(work, 'big-piped.tar')];
    expect(spawnSync(process.execPath, [cli, '--root', bigRoot, 'image', 'export', 'example.com/big:1', '-o', file, '-q'], { env }).status).toBe(0);
    const r = spawnSync('bash', ['-c', 'set -o pipefail; "$0" "$1" --root "$2" image export example.com/big:1 -o - | { sleep 1; cat > "$3"; }', process.execPath, cli, bigRoot, piped], { encoding: 'utf8', env });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/export -: 100%/);
    expect(readFileSync(piped).equals(readFileSync(file))).toBe(true);
  });

  it('makes containers, commits them, refuses to remove an image in use, and collects', () => {
    ok('container', 'create', 'example.com/one:1', 'web', '--label', 'team=x');
    const containers = lines(ok('container', 'ls', '--json').stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(containers).toMatchObject([{ name: 'web', image: 'example.com/one:1', snapshot: 'container-web', labels: { team: 'x' } }]);
    expect(ok('container', 'ls', '--format', '{{.Names}} {{.Image}} {{.Labels}} {{.State}} {{.Snapshot}} {{.RunningFor}}').stdout).toMatch(/^web example\.com\/one:1 team=x created container-web (Less than a second|\d+ seconds?) ago\n$/);
    expect(lines(ok('container', 'ls', '--format', 'table').stdout)).toEqual([expect.stringMatching(/^NAMES\s+IMAGE\s+CREATED\s+STATE$/), expect.stringMatching(/^web\s+example\.com\/one:1\s+.+ ago\s+created$/)]);
    expect(strata('container', 'ls', '--format', '{{.ID}}').status).toBe(2); // docker's ID: strata's containers have names only
    const layerPath = join(work, 'web.tar');
    expect(ok('container', 'diff', 'web', '-o', layerPath).stdout).toMatch(/^diffID sha256:/);
    const committed = ok('commit', 'web', 'example.com/one:web', '-m', 'from the cli', '--author', 'tester');
    expect(committed.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    expect(JSON.parse(lines(ok('image', 'history', 'example.com/one:web', '--json').stdout)[0]!)).toMatchObject({ comment: 'from the cli', author: 'tester' });

    const untagged = strata('image', 'rm', 'example.com/one:1');
    expect(untagged.status).toBe(0); // not the image's last name
    expect(untagged.stdout).toContain('Untagged: example.com/one:1');
    const last = strata('image', 'rm', 'one:alias');
    expect(last.status).toBe(1);
    expect(last.stderr).toMatch(/^strata: FAILED_PRECONDITION: image "one:alias" is used by container "web"/);
    expect(ok('image', 'rm', '-f', 'one:alias').stdout).toContain('Untagged: docker.io/library/one:alias');
    ok('container', 'rm', 'web');
    const freed = JSON.parse(ok('gc', '--json').stdout) as { blobs: string[]; snapshots: string[]; bytes: number };
    expect(freed.blobs.length).toBeGreaterThan(0);
    expect(freed.bytes).toBeGreaterThan(0);
    expect(ok('fsck', '--content').stdout).toMatch(/0 problem\(s\), 0 left\n$/);
  });

  it.skipIf(!needs('root'))('without root, a commit gives the caller’s files to root, as a build does, and refuses files of other owners', () => {
    const rootless = join(work, 'rootless');
    mkdirSync(rootless);
    chownSync(rootless, 65534, 65534);
    chmodSync(work, 0o755); // nobody passes through to its root and reads the archive
    chmodSync(archive, 0o644);
    const asNobody = (...args: string[]) =>
      spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cli, '--root', join(rootless, 'root'), '--driver', 'userspace', ...args], {
        encoding: 'utf8',
        env: { ...process.env, HOME: rootless, NODE_EXTRA_CA_CERTS: '' },
      });
    for (const args of [['image', 'import', archive, '--unpack', '-q'], ['container', 'create', 'example.com/one:1', 'c']]) {
      const r = asNobody(...args);
      expect(r.status, r.stderr).toBe(0);
    }
    const upper = /upperdir=([^,\s]+)/.exec(asNobody('snapshot', 'mounts', '/mnt', 'container-c').stdout)![1]!;
    // What the container wrote is nobody's on the host, as a rootless container's files are.
    spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', 'mkdir -p "$1/app" && echo changed > "$1/app/new"', 'sh', upper]);
    const committed = asNobody('commit', 'c', 'example.com/one:rootless', '--compression', 'none');
    expect(committed.status, committed.stderr).toBe(0);
    const diff = join(rootless, 'diff.tar');
    expect(asNobody('container', 'diff', 'c', '-o', diff).status).toBe(0);
    const listing = spawnSync('tar', ['-tvf', diff, '--numeric-owner'], { encoding: 'utf8' }).stdout;
    expect(lines(listing).map((l) => l.split(/\s+/)[1])).toEqual(['0/0', '0/0']); // app/ and app/new, root's in the image
    const exported = join(rootless, 'out');
    expect(asNobody('image', 'export', 'example.com/one:rootless', '-o', exported, '--format', 'oci', '-q').status).toBe(0);
    expect(existsSync(exported)).toBe(true);
    // A file the caller does not own cannot be given an owner inside: refused, naming it, nothing committed.
    writeFileSync(join(upper, 'app', 'roots'), 'root wrote this\n');
    const refused = asNobody('commit', 'c', 'example.com/one:refused');
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^strata: UNSUPPORTED: .*app\/roots.* belongs to 0:0/);
    expect(asNobody('image', 'inspect', 'example.com/one:refused').status).toBe(1);
  });

  it('lists and prunes dangling images, squashes, and says what is wrong in one line', () => {
    ok('image', 'tag', 'example.com/two:1', 'example.com/one:web'); // the committed image loses its name
    const dangling = lines(ok('image', 'ls', '--dangling', '--json').stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(dangling).toMatchObject([{ name: null, dangling: true }]);
    expect(ok('image', 'prune').stdout).toMatch(/^Deleted: sha256:/);
    expect(ok('image', 'ls', '--dangling', '--json').stdout).toBe('');
    expect(ok('image', 'squash', 'example.com/two:1', 'example.com/two:flat').stdout).toMatch(/2 layer\(s\) folded/);
    expect(JSON.parse(ok('image', 'inspect', 'example.com/two:flat', '--json').stdout).layers).toHaveLength(1);

    const missing = strata('image', 'inspect', 'nope');
    expect([missing.status, missing.stderr]).toEqual([1, 'strata: NOT_FOUND: image "nope" does not exist\n']);
    const bad = join(work, 'bad.tar');
    writeFileSync(bad, 'not an archive at all');
    expect(strata('image', 'import', bad).stderr).toMatch(/^strata: (LAYER_FORMAT|IMAGE_FORMAT): /);
    expect(strata('image', 'import', archive, '--platform', 'linux/arm64', '--all-platforms').status).toBe(2);
    for (const command of [['image', 'import'], ['image', 'export'], ['container', 'create'], ['commit'], ['gc']]) {
      const help = strata(...command, '--help');
      expect(help.status).toBe(0);
      expect(help.stdout).toContain(`Usage: strata ${command.join(' ')}`);
    }
  });

  it('prunes as docker image prune -a does, with until and label filters, keeping what containers use', () => {
    const pruneRoot = join(work, 'prune-root');
    const p = (...args: string[]) => spawnSync(process.execPath, [cli, '--root', pruneRoot, '--driver', 'userspace', ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    for (const args of [['image', 'import', archive, '-q'], ['image', 'tag', 'example.com/one:1', 'example.com/one:alias'], ['container', 'create', 'example.com/one:alias', 'c']]) {
      expect(p(...args).status).toBe(0);
    }
    const removed = (r: ReturnType<typeof p>) => {
      expect(r.status, r.stderr).toBe(0);
      return lines(r.stdout).filter((l) => /^(Untagged|Deleted):/.test(l));
    };
    expect(removed(p('image', 'prune'))).toEqual([]);
    expect(removed(p('image', 'prune', '-a', '--filter', 'until=1h'))).toEqual([]);
    expect(removed(p('image', 'prune', '-a', '--filter', 'label=test'))).toEqual([]); // no config has it
    const wrong = p('image', 'prune', '--filter', 'since=1h');
    expect([wrong.status, wrong.stderr]).toEqual([2, expect.stringMatching(/the filters here are until, label, label!/)]);
    expect(p('image', 'prune', '--filter', 'until=yesterday').status).toBe(2);
    const two = JSON.parse(p('image', 'inspect', 'example.com/two:1', '--json').stdout).manifest as string;
    expect(removed(p('image', 'prune', '--all', '--filter', `until=${Math.ceil(Date.now() / 1000) + 60}`))).toEqual(['Untagged: example.com/one:1', 'Untagged: example.com/two:1', `Deleted: ${two}`]);
    expect(lines(p('image', 'ls', '--json').stdout).map((l) => JSON.parse(l).name)).toEqual(['example.com/one:alias']);
  });

  it("lists with docker images' filters, only the IDs with -q, and in docker's --format", () => {
    const listRoot = join(work, 'list-root');
    const l = (...args: string[]) => spawnSync(process.execPath, [cli, '--root', listRoot, '--driver', 'userspace', ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    for (const args of [['image', 'import', archive, '-q'], ['image', 'tag', 'example.com/one:1', 'one:alias']]) expect(l(...args).status).toBe(0);
    const names = (...filters: string[]) => {
      const r = l('image', 'ls', '--json', ...filters.flatMap((f) => ['--filter', f]));
      expect(r.status, r.stderr).toBe(0);
      return lines(r.stdout).map((line) => JSON.parse(line).name as string);
    };
    // Created at the same time: by name.
    expect(names()).toEqual(['docker.io/library/one:alias', 'example.com/one:1', 'example.com/two:1']);
    expect(names('reference=one')).toEqual(['docker.io/library/one:alias']);
    expect(names('reference=example.com/*:1', 'reference=one:alias')).toEqual(['docker.io/library/one:alias', 'example.com/one:1', 'example.com/two:1']);
    expect(names('reference=example.com/t*', 'dangling=false')).toEqual(['example.com/two:1']);
    expect(names('label=test')).toEqual([]);
    expect(names('since=example.com/one:1')).toEqual([]); // not after itself
    expect(names('until=1h')).toEqual([]);
    const ids = lines(l('image', 'ls', '-q').stdout);
    expect(ids).toHaveLength(2); // one:alias and example.com/one:1 are one image
    expect(ids.every((id) => /^sha256:[0-9a-f]{64}$/.test(id))).toBe(true);
    const missing = l('image', 'ls', '--filter', 'before=example.com/none:1');
    expect([missing.status, missing.stderr]).toEqual([1, expect.stringMatching(/^strata: NOT_FOUND: /)]);
    const pattern = l('image', 'ls', '--filter', 'reference=one[');
    expect([pattern.status, pattern.stderr]).toEqual([1, expect.stringMatching(/^strata: INVALID_ARGUMENT: bad pattern "one\["/)]);
    // df: two images (one of them under two names), nothing active, no containers, no build cache.
    const df = lines(l('df', '--json').stdout).map((line) => JSON.parse(line) as { type: string; total: number; active: number; size: number; reclaimable: number });
    expect(df.map((r) => [r.type, r.total, r.active])).toEqual([['Images', 2, 0], ['Containers', 0, 0], ['Build Cache', 0, 0]]);
    expect(df[0]!.size).toBeGreaterThan(0);
    expect(df[0]!.reclaimable).toBe(df[0]!.size);
    expect(lines(l('df', '--format', '{{.Type}}:{{.TotalCount}}:{{.Active}}').stdout)).toEqual(['Images:2:0', 'Containers:0:0', 'Build Cache:0:0']);
    const dfJson = lines(l('df', '--format', 'json').stdout).map((line) => JSON.parse(line) as Record<string, string>);
    expect(Object.keys(dfJson[0]!)).toEqual(['Active', 'Reclaimable', 'Size', 'TotalCount', 'Type']);
    expect(dfJson[0]!.Reclaimable).toBe(`${dfJson[0]!.Size} (100%)`);
    expect(lines(l('df', '--format', 'table').stdout)[0]).toMatch(/^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/);
    expect(lines(l('df').stdout)[0]).toMatch(/^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/);
    // --format as docker's: a Go template per image, json, or table [TEMPLATE] aligned as Go's tabwriter.
    const ok2 = (...args: string[]) => {
      const r = l(...args);
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    const full = lines(ok2('image', 'ls', '-q'));
    expect(ok2('image', 'ls', '--format', '{{.Repository}}:{{.Tag}}')).toBe('one:alias\nexample.com/one:1\nexample.com/two:1\n');
    expect(ok2('image', 'ls', '--format', '{{if eq .Repository "one"}}{{.ID}} {{.Digest}}{{end}}', '--no-trunc').split('\n').filter(Boolean)).toEqual([`${full[0]} ${full[0]}`]);
    const json = lines(ok2('image', 'ls', '--format', 'json')).map((line) => JSON.parse(line) as Record<string, string>);
    expect(Object.keys(json[0]!)).toEqual(['CreatedAt', 'CreatedSince', 'Digest', 'ID', 'Repository', 'Size', 'Tag']);
    expect(json.map((r) => [r.Repository, r.Tag, r.ID!.length, r.Digest!.length])).toEqual([['one', 'alias', 12, 71], ['example.com/one', '1', 12, 71], ['example.com/two', '1', 12, 71]]);
    expect(json[0]!.Size).toMatch(/^\d+(\.\d+)?[kMG]?B$/);
    expect(json[0]!.CreatedSince).toMatch(/ ago$|^N\/A$/);
    expect(json[0]!.CreatedAt).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$|^N\/A$/);
    const table = lines(ok2('image', 'ls', '--format', 'table'));
    expect(table[0]).toMatch(/^REPOSITORY {8}TAG {7}IMAGE ID {7}CREATED +SIZE$/);
    expect(table[1]).toMatch(/^one {15}alias {5}[0-9a-f]{12}   /);
    expect(lines(ok2('image', 'ls', '--format', 'table {{.Tag}}\\t{{.Repository}}'))).toEqual(['TAG       REPOSITORY', 'alias     one', '1         example.com/one', '1         example.com/two']);
    expect(lines(ok2('image', 'ls', '--digests'))[0]).toMatch(/^NAME\s+DIGEST\s+ID\s+SIZE\s+CREATED$/);
    expect(lines(ok2('image', 'ls', '--format', 'table', '--digests'))[0]).toMatch(/^REPOSITORY\s+TAG\s+DIGEST\s+IMAGE ID\s+CREATED\s+SIZE$/);
    for (const bad of [['--format', '{{.Tag'], ['--format', '{{nosuch .Tag}}'], ['--format', '{{.Repo}}'], ['--format', 'x', '--json']]) {
      const r = l('image', 'ls', ...bad);
      expect([r.status, r.stdout], bad.join(' ')).toEqual([2, '']);
    }
    expect(l('image', 'ls', '--format', '{{.Tag').stderr).toMatch(/^strata: --format: template: :1: unclosed action/);
    // image inspect -f over docker's inspect fields, and history --format over docker history's.
    const inspected = JSON.parse(ok2('image', 'inspect', 'example.com/one:1', '--json')) as { digest: string; config: { rootfs: { diff_ids: string[] }; os: string } };
    expect(ok2('image', 'inspect', 'one:alias', '-f', '{{.Id}}|{{json .RepoTags}}|{{.Os}}|{{len .RootFS.Layers}}|{{index .RootFS.Layers 0}}|{{if .RepoDigests}}{{index .RepoDigests 0}}{{end}}')).toBe(
      `${inspected.digest}|["one:alias","example.com/one:1"]|${inspected.config.os}|${inspected.config.rootfs.diff_ids.length}|${inspected.config.rootfs.diff_ids[0]}|one@${inspected.digest}\n`,
    );
    expect(Object.keys(JSON.parse(ok2('image', 'inspect', 'one:alias', '--format', 'json')))).toEqual(expect.arrayContaining(['Id', 'RepoTags', 'RepoDigests', 'Created', 'Config', 'Architecture', 'Os', 'Size', 'RootFS']));
    const steps = lines(ok2('image', 'history', 'example.com/one:1', '--json')).length;
    expect(lines(ok2('image', 'history', 'example.com/one:1', '--format', '{{.ID}} {{.Size}}'))).toEqual([
      expect.stringMatching(new RegExp(`^${inspected.digest.slice(7, 19)} \\d`)),
      ...Array.from({ length: steps - 1 }, () => expect.stringMatching(/^<missing> \d/)),
    ]);
    expect(lines(ok2('image', 'history', 'example.com/one:1', '--format', '{{.ID}}', '--no-trunc'))[0]).toBe(inspected.digest);
    expect(lines(ok2('image', 'history', 'example.com/one:1', '--format', 'table'))[0]).toMatch(/^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
    for (const bad of [['inspect', 'one:alias', '-f', '{{.Id'], ['inspect', 'one:alias', '--format', 'table'], ['history', 'one:alias', '--format', '{{if}}']]) {
      const r = l('image', ...bad);
      expect([r.status, r.stdout], bad.join(' ')).toEqual([2, '']);
    }
    const unknown = l('image', 'ls', '--filter', 'id=1');
    expect([unknown.status, unknown.stderr]).toEqual([2, expect.stringMatching(/the filters here are dangling, label, label!, before, since, reference, until/)]);
  });

  it.skipIf(!needs('root', 'overlay'))('mounts a container with the kernel, and will not remove it mounted', () => {
    const kernelRoot = join(work, 'kernel-root');
    const k = (...args: string[]) => spawnSync(process.execPath, [cli, '--root', kernelRoot, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    expect(k('--driver', 'overlay', 'image', 'import', archive, '-q').status).toBe(0);
    expect(k('container', 'create', 'example.com/one:1', 'm').status).toBe(0);
    const target = join(work, 'mnt');
    mkdirSync(target);
    expect(k('container', 'mount', 'm', target).status).toBe(0);
    try {
      writeFileSync(join(target, 'etc', 'written'), 'x\n');
      const refused = k('container', 'rm', 'm');
      expect(refused.stderr).toMatch(/^strata: FAILED_PRECONDITION: container "m" is mounted at /);
    } finally {
      expect(k('container', 'unmount', target).status).toBe(0);
    }
    expect(k('commit', 'm', 'example.com/one:m').status).toBe(0);
    expect(k('container', 'rm', 'm').status).toBe(0);
  });

  it('builds FROM an image whose config says null where Docker writes it, and refuses one whose fields have the wrong types', () => {
    const typedRoot = join(work, 'typed-root');
    const t = (...args: string[]) => spawnSync(process.execPath, [cli, '--root', typedRoot, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    const base = layer({ 'etc/': '', 'etc/os-release': 'ID=cli\n' });
    const nulls = buildImage({ layers: [base], config: (c) => (c.config = { Env: null, Cmd: null, Entrypoint: null, Labels: null, OnBuild: null, Shell: null, Volumes: null, ExposedPorts: { '80/tcp': null }, Healthcheck: null }) });
    const wrong = buildImage({ layers: [base], config: (c) => (c.config = { Env: 'PATH=/bin' }) });
    const imported = t('image', 'import', writeArchive(join(work, 'nulls.tar'), layoutFiles(nulls.blobs, [named(nulls.manifestDescriptor, 'example.com/nulls:1')])), '-q');
    expect(imported.status, imported.stderr).toBe(0);
    const refused = t('image', 'import', writeArchive(join(work, 'wrong.tar'), layoutFiles(wrong.blobs, [named(wrong.manifestDescriptor, 'example.com/wrong:1')])), '-q');
    expect([refused.status, refused.stderr]).toEqual([1, expect.stringMatching(/^strata: IMAGE_FORMAT: config sha256:[0-9a-f]{64}: config\.Env must be an array of strings, not a string\n$/)]);
    const context = join(work, 'typed-context');
    mkdirSync(context);
    writeFileSync(join(context, 'Dockerfile'), 'FROM example.com/nulls:1\nENV A=1\nLABEL a=b\nEXPOSE 81\nVOLUME /v\nONBUILD RUN true\nHEALTHCHECK CMD true\nCMD ["run"]\nCOPY Dockerfile /\n');
    const built = t('build', context, '-t', 'example.com/built:1', '-q');
    expect(built.status, built.stderr).toBe(0);
    const config = JSON.parse(t('image', 'inspect', 'example.com/built:1', '--json').stdout).config.config as Record<string, unknown>;
    expect(config).toMatchObject({ Env: [expect.stringMatching(/^PATH=/), 'A=1'], Labels: { a: 'b' }, ExposedPorts: { '80/tcp': {}, '81/tcp': {} }, Volumes: { '/v': {} }, OnBuild: ['RUN true'], Cmd: ['run'] });
  });
});
