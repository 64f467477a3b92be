/**
 * `strata build` and `strata build cache ls|prune` as a user runs them (the built CLI): -f, -t, --target,
 * --build-arg, --progress plain and json, --secret, --ssh, -o, SOURCE_DATE_EPOCH from the environment, a failing
 * build's exit status and one-line error, the build checks' warnings and --check.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';
import { rawTar } from './helpers/raw-tar.js';
import { openImages } from '@strata/images';
import { TestRegistry } from './helpers/registry.js';

const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap', 'ssh-agent'))('strata build', () => {
  let work: string;
  let root: string;
  let context: string;
  const strata = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [cli, '--root', root, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '', ...env } });

  beforeAll(async () => {
    work = scratch('strata-build-cli-');
    root = join(work, 'root');
    await (await rootWithBase(work)).close();
    context = writeContext(join(work, 'context'), {
      'build.Dockerfile': `FROM ${BASE} AS first\nARG WHO=world\nCOPY hello.txt /\nRUN echo "hello $WHO" >> /hello.txt && cat /hello.txt\nFROM first AS second\nLABEL stage=second\n`,
      'hello.txt': 'greetings\n',
    });
  }, 30 * 60_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('builds with plain progress: each step, its output, CACHED on the second run, not for --no-cache-filter\'s stage', () => {
    const first = strata(['build', '-f', join(context, 'build.Dockerfile'), '-t', 'example.com/cli:1', '--build-arg', 'WHO=you', '--progress', 'plain', context]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toContain('[4/6] RUN echo "hello $WHO" >> /hello.txt && cat /hello.txt\ngreetings\nhello you\n');
    expect(first.stdout).toMatch(/^Built sha256:[0-9a-f]{64} as example.com\/cli:1: 2 step\(s\) ran, 0 cached\n$/);
    const second = strata(['build', '-f', join(context, 'build.Dockerfile'), '-t', 'example.com/cli:1', '--build-arg', 'WHO=you', context]);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toContain('[4/6] CACHED');
    expect(second.stdout).toContain('0 step(s) ran, 2 cached');
    // --no-cache-filter runs the stage named (both its steps), beside --no-cache; a stage not there is an error.
    const filtered = strata(['build', '-f', join(context, 'build.Dockerfile'), '--build-arg', 'WHO=you', '--no-cache-filter', 'first', context]);
    expect(filtered.status, filtered.stderr).toBe(0);
    expect(filtered.stdout).toContain('2 step(s) ran, 0 cached');
    const unknown = strata(['build', '-f', join(context, 'build.Dockerfile'), '--no-cache-filter', 'third', context]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('--no-cache-filter "third": the Dockerfile has no such stage');
  }, 120_000);

  it('gives RUN its secrets from --secret, from a file or the environment, and says which is missing', () => {
    const dir = writeContext(join(work, 'secrets'), {
      Dockerfile: `FROM ${BASE}\nRUN --mount=type=secret,id=file,required --mount=type=secret,id=env,required cat /run/secrets/file /run/secrets/env\n`,
      'token.txt': 'from a file\n',
    });
    const r = strata(['build', '--progress', 'plain', '--secret', `id=file,src=${join(dir, 'token.txt')}`, '--secret', 'id=env,env=STRATA_TEST_SECRET', dir], { STRATA_TEST_SECRET: 'from the environment\n' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('from a file\nfrom the environment\n');
    const missing = strata(['build', '--no-cache', '--secret', `id=file,src=${join(dir, 'token.txt')}`, dir]);
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('the secret "env" is required and was not given');
    const bad = strata(['build', '--secret', 'src=/nowhere', dir]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('a secret is id=ID[,src=PATH|,env=VAR]');
    // With neither src nor env: the variable named by the id, else the file, as BuildKit reads it.
    const byId = strata(['build', '--no-cache', '--progress', 'plain', '--secret', `id=file,src=${join(dir, 'token.txt')}`, '--secret', 'id=env', dir], { env: 'named by the id\n' });
    expect(byId.status, byId.stderr).toBe(0);
    expect(byId.stderr).toContain('from a file\nnamed by the id\n');
    // A file that is not there, not a file, or over BuildKit's 500 KiB is refused before the build.
    writeFileSync(join(work, 'big-secret'), Buffer.alloc(500 * 1024 + 1));
    for (const [src, what] of [['/nowhere', 'not there'], [dir, 'not a file'], [join(work, 'big-secret'), "512001 bytes, over BuildKit's 512000 for a secret"]]) {
      const refused = strata(['build', '--secret', `id=file,src=${src}`, dir]);
      expect([refused.status, refused.stderr]).toEqual([2, `strata: the secret file: ${src} is ${what}\n`]);
    }
  }, 120_000);

  it('labels the image with --label over the Dockerfile\'s LABELs, writes its ID with --iidfile and buildx\'s --metadata-file', () => {
    const dir = writeContext(join(work, 'labels'), { Dockerfile: `FROM ${BASE}\nLABEL keep=dockerfile over=dockerfile\n` });
    const iid = join(work, 'iid.txt');
    const metadata = join(work, 'metadata.json');
    const r = strata(['build', '-q', '--label', 'over=cli', '--label', 'org.opencontainers.image.revision=abc123', '--label', 'empty', '--iidfile', iid, '--metadata-file', metadata, '-t', 'example.com/labelled:1', '-t', 'example.com/labelled:2', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(iid, 'utf8')).toBe(r.stdout.trim());
    const written = JSON.parse(readFileSync(metadata, 'utf8')) as Record<string, unknown>;
    const inspectedImage = JSON.parse(strata(['image', 'inspect', '--json', 'example.com/labelled:1']).stdout) as { digest: string; mediaType: string; configDigest: string };
    expect(written).toEqual({
      'containerimage.digest': r.stdout.trim(),
      'containerimage.descriptor': { mediaType: inspectedImage.mediaType, digest: inspectedImage.digest, size: expect.any(Number) },
      'containerimage.config.digest': inspectedImage.configDigest,
      'image.name': 'example.com/labelled:1,example.com/labelled:2',
    });
    const inspected = strata(['image', 'inspect', '--json', 'example.com/labelled:1']);
    const labels = (JSON.parse(inspected.stdout) as { config: { config: { Labels: Record<string, string> } } }).config.config.Labels;
    expect(labels).toMatchObject({ keep: 'dockerfile', over: 'cli', 'org.opencontainers.image.revision': 'abc123', empty: '' });
  }, 120_000);

  it('lists what the build checks find after the build, all of it with --check (exit status 1), and stops before any step with error=true', () => {
    const dir = writeContext(join(work, 'checks'), {
      Dockerfile: `FROM ${BASE} as base\nENV greeting hello\nEXPOSE 127.0.0.1:8080:80\nCMD echo "$greeting"\n`,
    });
    const findings = [
      "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)",
      'LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy "ENV key value" format (line 2)',
      "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80' (line 3)",
      'JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 4)',
    ];
    const built = strata(['build', '-t', 'example.com/checked:1', dir]);
    expect(built.status, built.stderr).toBe(0);
    expect(built.stderr).toContain(`4 warnings found:\n${findings.map((f) => ` - ${f}\n`).join('')}`);
    // The address and host port are left out of the image, as BuildKit leaves them.
    const config = (JSON.parse(strata(['image', 'inspect', '--json', 'example.com/checked:1']).stdout) as { config: { config: { ExposedPorts: unknown } } }).config.config;
    expect(config.ExposedPorts).toEqual({ '80/tcp': {} });

    // With --progress json, each finding is an object of the stream, before the steps.
    const json = strata(['build', '--progress', 'json', dir]);
    expect(json.status, json.stderr).toBe(0);
    const objects = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { warning?: { rule: string; detail: string; line: number; url: string }; step?: number });
    expect(objects.slice(0, 4).map((o) => o.warning && `${o.warning.rule}: ${o.warning.detail} (line ${o.warning.line})`)).toEqual(findings);
    expect(objects[0]!.warning!.url).toBe('https://docs.docker.com/go/dockerfile/rule/from-as-casing/');
    expect(objects.slice(4).every((o) => typeof o.step === 'number')).toBe(true);
    const checked = strata(['build', '--check', '-t', 'example.com/checked:2', dir]);
    expect(checked.status).toBe(1);
    expect(checked.stdout).toContain('Check complete, 4 warnings have been found!\n\nWARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n');
    expect(checked.stdout).toContain("Dockerfile:3: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80'\n");
    expect(strata(['image', 'inspect', 'example.com/checked:2']).status).not.toBe(0); // nothing built

    const strict = strata(['build', '--no-cache', '--progress', 'plain', '--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=skip=JSONArgsRecommended;error=true', dir]);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toContain('Dockerfile line 1: lint violation found for rules: FromAsCasing, LegacyKeyValueFormat, ExposeInvalidFormat');
    expect(strict.stderr).not.toContain('[1/');
    const clean = writeContext(join(work, 'checks-clean'), { Dockerfile: `FROM ${BASE}\nENV greeting=hello\nCMD ["echo", "hello"]\n` });
    const none = strata(['build', '--check', clean]);
    expect(none.status, none.stderr).toBe(0);
    expect(none.stdout).toBe('Check complete, no warnings found.\n');
    // The context's .dockerignore is read for CopyIgnoredFile.
    const ignoring = writeContext(join(work, 'checks-ignore'), { Dockerfile: `FROM ${BASE}\nCOPY secret.txt /\n`, '.dockerignore': 'secret.txt\n', 'secret.txt': 'x' });
    const copied = strata(['build', '--check', ignoring]);
    expect(copied.status).toBe(1);
    expect(copied.stdout).toContain('Dockerfile:2: Attempting to Copy file "secret.txt" that is excluded by .dockerignore\n');
  }, 120_000);

  it("finds variables nothing defines (UndefinedVar) with the base image's own, in a build and in a check run", () => {
    const base = writeContext(join(work, 'env-base'), { Dockerfile: `FROM ${BASE}\nENV APP_HOME=/srv/app\n` });
    expect(strata(['build', '-q', '-t', 'example.com/env-base:1', base]).status).toBe(0);
    const dir = writeContext(join(work, 'undefined-var'), { Dockerfile: 'FROM example.com/env-base:1\nWORKDIR $APP_HOME\nLABEL home=$APP_HOM\nRUN echo $UNSET_IN_SHELL\n' });
    const finding = "UndefinedVar: Usage of undefined variable '$APP_HOM' (did you mean $APP_HOME?) (line 3)";
    const built = strata(['build', '-t', 'example.com/undefined-var:1', dir]);
    expect(built.status, built.stderr).toBe(0);
    expect(built.stderr).toContain(`1 warning found:\n - ${finding}\n`);
    const checked = strata(['build', '--check', dir]);
    expect(checked.status).toBe(1);
    expect(checked.stdout).toContain("WARNING: UndefinedVar - https://docs.docker.com/go/dockerfile/rule/undefined-var/\nVariables should be defined before their use\nDockerfile:3: Usage of undefined variable '$APP_HOM' (did you mean $APP_HOME?)\n");
    // With error=true the build stops before its first step, once it has the base image's config.
    const strict = strata(['build', '--progress', 'plain', '--no-cache', '--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=error=true', dir]);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toContain('Dockerfile line 3: lint violation found for rules: UndefinedVar');
    expect(strict.stderr).not.toContain('[1/');
    // A check run pulls nothing: a base the store does not hold leaves its stage unjudged.
    const elsewhere = writeContext(join(work, 'undefined-var-elsewhere'), { Dockerfile: 'FROM example.com/not-here:1\nLABEL home=$APP_HOM\n' });
    const unknown = strata(['build', '--check', elsewhere]);
    expect(unknown.status, unknown.stderr).toBe(0);
  }, 120_000);

  it('reads the Dockerfile from stdin with -f -, and never the context\'s', () => {
    // The context's own Dockerfile names a file that is not there: building it would fail.
    const dir = writeContext(join(work, 'stdin'), { 'a.txt': 'from stdin\n', Dockerfile: 'FROM scratch\nCOPY missing.txt /\n' });
    const run = (input: string) => spawnSync(process.execPath, [cli, '--root', root, 'build', '-q', '-f', '-', dir], { encoding: 'utf8', input, env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    const r = run('FROM scratch\nCOPY a.txt /\n');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    const history = strata(['image', 'history', '--json', r.stdout.trim()]);
    expect(history.stdout).toContain('COPY a.txt /');
    const bad = run('FROM scratch\nCOPY nowhere.txt /\n');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('Dockerfile line 2: COPY');
  }, 120_000);

  it('exports the filesystem with -o type=local (a directory) and type=tar (one archive, as GNU tar reads it)', () => {
    const dir = writeContext(join(work, 'export-fs'), { Dockerfile: `FROM ${BASE}\nRUN rm /etc/motd && echo made > /made\n` });
    const local = join(work, 'exported');
    const r = strata(['build', '-q', '-o', `type=local,dest=${local}`, dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(local, 'made'), 'utf8')).toBe('made\n');
    expect(existsSync(join(local, 'etc/motd'))).toBe(false); // the RUN's whiteout taken
    expect(existsSync(join(local, 'etc/passwd'))).toBe(true); // the base's layers under it
    const tar = join(work, 'exported.tar');
    const t = strata(['build', '-q', '-o', `type=tar,dest=${tar}`, dir]);
    expect(t.status, t.stderr).toBe(0);
    const names = execFileSync('tar', ['-tf', tar], { maxBuffer: 64 << 20 }).toString().split('\n');
    expect(names).toContain('made');
    expect(names).toContain('etc/passwd');
    expect(names).not.toContain('etc/motd');
    expect(names.filter((n) => n.includes('.wh.'))).toEqual([]);
  }, 300_000);

  it('takes buildx\'s output forms: a path alone, - and dest=- for stdout, type=oci as an archive (tar=false a layout), a symlink written through', () => {
    const dir = writeContext(join(work, 'export-forms'), { Dockerfile: 'FROM scratch\nCOPY note.txt /\n', 'note.txt': 'a note\n' });
    const binary = (args: string[]) => spawnSync(process.execPath, [cli, '--root', root, ...args], { env: { ...process.env, NODE_EXTRA_CA_CERTS: '' }, maxBuffer: 64 << 20 });
    const list = (archive: Buffer) => execFileSync('tar', ['-t'], { input: archive }).toString().split('\n').filter(Boolean).sort();
    // A path alone: the filesystem into that directory.
    const local = join(work, 'forms-local');
    expect(strata(['build', '-q', '-o', local, dir]).status).toBe(0);
    expect(readFileSync(join(local, 'note.txt'), 'utf8')).toBe('a note\n');
    // `-`: a tar archive of it on stdout and nothing else there (the summary goes to stderr).
    const dash = binary(['build', '-o', '-', dir]);
    expect(dash.status, dash.stderr.toString()).toBe(0);
    expect(list(dash.stdout)).toEqual(['note.txt']);
    expect(dash.stderr.toString()).toMatch(/Built sha256:[0-9a-f]{64} \(dangling\)/);
    // type=docker,dest=-: the image archive on stdout, as skopeo reads one.
    const docker = binary(['build', '-q', '-o', 'type=docker,dest=-', dir]);
    expect(docker.status, docker.stderr.toString()).toBe(0);
    expect(list(docker.stdout)).toContain('manifest.json');
    const archive = join(work, 'forms-docker.tar');
    writeFileSync(archive, docker.stdout);
    expect(JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `docker-archive:${archive}`], { encoding: 'utf8' }))).toMatchObject({ schemaVersion: 2 });
    // type=oci: an OCI archive, as buildx writes it; with tar=false the layout directory.
    const ociTar = join(work, 'forms-oci.tar');
    expect(strata(['build', '-q', '-o', `type=oci,dest=${ociTar}`, dir]).status).toBe(0);
    expect(JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${ociTar}`], { encoding: 'utf8' }))).toMatchObject({ schemaVersion: 2 });
    const layout = join(work, 'forms-oci-layout');
    expect(strata(['build', '-q', '-o', `type=oci,dest=${layout},tar=false`, dir]).status).toBe(0);
    expect(existsSync(join(layout, 'index.json'))).toBe(true);
    // A destination that is a symlink (as /dev/stdout is) is written through, never replaced by the archive.
    const real = join(work, 'forms-real.tar');
    const link = join(work, 'forms-link.tar');
    writeFileSync(real, '');
    symlinkSync(real, link);
    expect(strata(['build', '-q', '-o', `type=tar,dest=${link}`, dir]).status).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(list(readFileSync(real))).toEqual(['note.txt']);
    expect(readdirSync(work).filter((name) => name.includes('.tmp-'))).toEqual([]);
    // Not a directory on stdout, nor tar= for other types.
    expect(strata(['build', '-o', 'type=local,dest=-', dir]).stderr).toContain('-o dest=- (stdout) is for archives');
    expect(strata(['build', '-o', `type=docker,dest=${archive},tar=false`, dir]).stderr).toContain('-o tar= is true or false, for type=oci');
  }, 300_000);

  it('takes named contexts with --build-context: a directory relative to the current one, or docker-image://', () => {
    const dir = writeContext(join(work, 'named'), { Dockerfile: 'FROM base\nCOPY --from=extra note.txt /note.txt\n', 'extra/note.txt': 'extra\n' });
    const r = spawnSync(process.execPath, [cli, '--root', root, 'build', '-q', '--build-context', 'extra=extra', '--build-context', `base=docker-image://${BASE}`, '.'], { cwd: dir, encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    expect(r.status, r.stderr).toBe(0);
    // A URL of no kind strata takes is refused before anything is fetched.
    const bad = strata(['build', '--build-context', 'x=ftp://example.com/x.tar.gz', dir]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('the named context "x" is neither docker-image://REF, oci-layout://PATH, a git repository, an http(s) URL nor a directory: ftp://example.com/x.tar.gz');
  }, 120_000);

  it('grants RUN --security=insecure with --allow security.insecure, and refuses it or another entitlement otherwise', () => {
    const dir = writeContext(join(work, 'insecure'), { Dockerfile: `FROM ${BASE}\nRUN --security=insecure mount -t tmpfs none /mnt && echo mounted\n` });
    const refused = strata(['build', dir]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('Dockerfile line 2: RUN --security=insecure needs the security.insecure entitlement (strata build --allow security.insecure)');
    const r = strata(['build', '--progress', 'plain', '--allow', 'security.insecure', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('mounted\n');
    const other = strata(['build', '--allow', 'device', dir]);
    expect(other.status).toBe(2);
    expect(other.stderr).toContain('--allow device: the entitlements are security.insecure and network.host');
    // buildx's usual `--allow network.host --network host`: taken, the steps are on the host's network already.
    const host = strata(['build', '--progress', 'plain', '--allow', 'network.host', '--network', 'host', '--allow', 'security.insecure', dir]);
    expect(host.status, host.stderr).toBe(0);
  }, 120_000);

  it('forwards the SSH agent of --ssh (SSH_AUTH_SOCK by default, or a socket given) to RUN --mount=type=ssh', async () => {
    const socket = join(work, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
      const dir = writeContext(join(work, 'ssh'), { Dockerfile: `FROM ${BASE}\nRUN --mount=type=ssh,required test -S "$SSH_AUTH_SOCK" && echo "agent at $SSH_AUTH_SOCK"\n` });
      const r = strata(['build', '--progress', 'plain', '--ssh', 'default', dir], { SSH_AUTH_SOCK: socket });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain('agent at /run/buildkit/ssh_agent.0\n');
      const unset = spawnSync(process.execPath, [cli, '--root', root, 'build', '--ssh', 'default', dir], { encoding: 'utf8', env: { ...process.env, SSH_AUTH_SOCK: '', NODE_EXTRA_CA_CERTS: '' } });
      expect(unset.status).toBe(2);
      expect(unset.stderr).toContain('--ssh default: no socket given and SSH_AUTH_SOCK is not set');
      // What is neither a socket nor a key file, or not there at all, is refused before the build, as
      // BuildKit's ssh provider refuses it; so is an id given twice.
      for (const path of [dir, join(work, 'no-such.sock')]) {
        const notSocket = strata(['build', '--no-cache', '--ssh', `default=${path}`, dir]);
        expect([notSocket.status, notSocket.stderr]).toEqual([2, `strata: --ssh default: ${path} is neither an agent's socket nor a key file\n`]);
      }
      const twice = strata(['build', '--ssh', `default=${socket}`, '--ssh', `default=${socket}`, dir]);
      expect([twice.status, twice.stderr]).toEqual([2, 'strata: --ssh default: given twice\n']);
      // Key files instead of a socket, as buildx takes them: an agent of the build's own holds them.
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(work, 'key')]);
      const keyed = strata(['build', '--no-cache', '--progress', 'plain', '--ssh', `default=${join(work, 'key')}`, dir]);
      expect(keyed.status, keyed.stderr).toBe(0);
      expect(keyed.stderr).toContain('agent at /run/buildkit/ssh_agent.0\n');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret phrase', '-f', join(work, 'locked')]);
      const locked = strata(['build', '--no-cache', '--ssh', `default=${join(work, 'locked')}`, dir]);
      expect(locked.status).toBe(1);
      expect(locked.stderr).toContain(`--ssh: could not load the key ${join(work, 'locked')}`);
    } finally {
      agent.kill();
    }
  }, 120_000);

  it('prints one JSON object per step, builds --target, exports with -o, honours SOURCE_DATE_EPOCH', () => {
    const out = join(work, 'first.tar');
    const r = strata(['build', '-f', join(context, 'build.Dockerfile'), '--target', 'first', '--progress', 'json', '-o', `type=docker,dest=${out}`, context], { SOURCE_DATE_EPOCH: '1700000000' });
    expect(r.status, r.stderr).toBe(0);
    const steps = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(steps.map((s) => s.instruction)).toEqual([`FROM ${BASE} AS first`, 'ARG WHO=world', 'COPY hello.txt /', 'RUN echo "hello $WHO" >> /hello.txt && cat /hello.txt']);
    for (const s of steps) expect(Object.keys(s).sort()).toEqual(['cached', 'instruction', 'layer', 'seconds', 'stage', 'step']);
    expect(steps[2]).toMatchObject({ step: 3, cached: false, layer: expect.stringMatching(/^sha256:/) });
    expect(steps[1]).toMatchObject({ layer: null });
    expect(r.stderr).toMatch(/Built sha256:[0-9a-f]{64} \(dangling\)/);
    expect(existsSync(out)).toBe(true);
    const listed = spawnSync('tar', ['-tf', out], { encoding: 'utf8' }).stdout;
    expect(listed).toContain('manifest.json');
    const manifest = JSON.parse(spawnSync('tar', ['-xOf', out, 'manifest.json'], { encoding: 'utf8' }).stdout) as { Config: string }[];
    const config = JSON.parse(spawnSync('tar', ['-xOf', out, manifest[0]!.Config], { encoding: 'utf8' }).stdout) as { created: string };
    expect(config.created).toBe('2023-11-14T22:13:20Z');
  }, 120_000);

  it('builds without root: config steps, and COPY and ADD as root would (the caller is root in its containers, other owners kept in owner records); says why RUN and a symlink of another owner need root', () => {
    const rootless = join(work, 'rootless');
    const dir = writeContext(join(rootless, 'context'), { Dockerfile: 'FROM scratch\nENV A=1\nLABEL who=nobody\n', 'a.txt': 'a\n' });
    spawnSync('chown', ['-R', '65534:65534', rootless]);
    chmodSync(work, 0o755); // nobody passes through the scratch directory
    const build = (dockerfile: string, as: 'nobody' | 'root', extra: string[] = []) => {
      writeFileSync(join(dir, 'Dockerfile'), dockerfile);
      spawnSync('chown', ['65534:65534', join(dir, 'Dockerfile')]);
      const command = [cli, '--root', join(rootless, as === 'root' ? 'root-of-root' : 'root'), '--driver', 'userspace', 'build', '-q', '--source-date-epoch', '1700000000', ...extra, dir];
      const env = { ...process.env, HOME: rootless, NODE_EXTRA_CA_CERTS: '' };
      if (as === 'root') return spawnSync(process.execPath, command, { encoding: 'utf8', env });
      return spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, ...command], { encoding: 'utf8', env });
    };
    const asNobody = (dockerfile: string) => build(dockerfile, 'nobody');
    const ok = asNobody('FROM scratch\nENV A=1\nLABEL who=nobody\n');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    // COPY and ADD (of a tar whose entries are root's) write as nobody; the layers say root, as a build by
    // root of the same Dockerfile gives them: the same image, byte for byte.
    spawnSync('tar', ['-cf', join(dir, 'files.tar'), '--owner=0', '--group=0', '-C', dir, 'a.txt']);
    spawnSync('chown', ['65534:65534', join(dir, 'files.tar')]);
    const copying = 'FROM scratch\nCOPY a.txt /\nCOPY --chown=0:0 a.txt /dir/b.txt\nADD files.tar /unpacked/\n';
    const copy = asNobody(copying);
    expect(copy.status, copy.stderr).toBe(0);
    const byRoot = build(copying, 'root');
    expect(byRoot.status, byRoot.stderr).toBe(0);
    expect(copy.stdout).toBe(byRoot.stdout);
    // Owners the caller has no id for are kept in owner records (user.rootlesscontainers, as umoci keeps
    // them) and given back in the layer: the same image as root's again.
    spawnSync('tar', ['-cf', join(dir, 'theirs.tar'), '--owner=1000', '--group=1000', '-C', dir, 'a.txt']);
    spawnSync('chown', ['65534:65534', join(dir, 'theirs.tar')]);
    const owning = 'FROM scratch\nCOPY --chown=1000:1000 a.txt /\nCOPY --chown=7 a.txt /dir/\nADD theirs.tar /theirs/\nCOPY --chown=0:0 a.txt /dir/\nUSER 1000:1000\nWORKDIR /work/sub\n';
    const owned = asNobody(owning);
    expect(owned.status, owned.stderr).toBe(0);
    expect(owned.stdout).toBe(build(owning, 'root').stdout);
    // A symlink takes no record (the kernel has no user.* xattr for one): its owner is refused with the
    // line, never written as the caller's.
    writeFileSync(join(dir, 'link.tar'), rawTar([{ name: 'l', type: '2', linkname: 'a.txt', uid: 1000, gid: 1000 }]));
    spawnSync('chown', ['65534:65534', join(dir, 'link.tar')]);
    const theirs = asNobody('FROM scratch\nADD link.tar /\n');
    expect(theirs.status).toBe(1);
    expect(theirs.stderr).toContain('Dockerfile line 2: ADD');
    expect(theirs.stderr).toContain('belongs to 1000:1000, which a build without root cannot give to a symlink');
    // An archive's device nodes, which only root can make, are left out, as BuildKit leaves them out in a
    // user namespace; the rest is unpacked.
    writeFileSync(join(dir, 'devices.tar'), rawTar([{ name: 'dev/', type: '5', mode: 0o755 }, { name: 'dev/null', type: '3', mode: 0o666, devmajor: 1, devminor: 3 }, { name: 'dev/keep', data: 'kept\n' }]));
    spawnSync('chown', ['65534:65534', join(dir, 'devices.tar')]);
    const devices = build('FROM scratch\nADD devices.tar /\n', 'nobody', ['-o', `type=local,dest=${join(rootless, 'devices-out')}`]);
    expect(devices.status, devices.stderr).toBe(0);
    expect(readdirSync(join(rootless, 'devices-out', 'dev'))).toEqual(['keep']);
    const run = asNobody('FROM scratch\nRUN true\n');
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('Dockerfile line 2: RUN needs root');
  }, 120_000);

  it('builds for several platforms (--platform a,b) into an index, as skopeo reads it, the $BUILDPLATFORM stage run here for each', async () => {
    const dir = writeContext(join(work, 'multi'), {
      Dockerfile: `FROM --platform=$BUILDPLATFORM ${BASE} AS build\nARG TARGETARCH\nRUN echo "built for $TARGETARCH" > /out.txt\nFROM scratch\nCOPY --from=build /out.txt /\n`,
    });
    const layout = join(work, 'multi-layout');
    const r = strata(['build', '--platform', 'linux/amd64,linux/arm64/v8', '-t', 'example.com/multi:1', '-o', `type=oci,dest=${layout},tar=false`, '--annotation', 'index:org.opencontainers.image.source=https://example.com/repo', '--annotation', 'org.opencontainers.image.revision=abc123', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Built sha256:[0-9a-f]{64} as example\.com\/multi:1: 4 step\(s\) ran, 0 cached\n$/);
    // skopeo reads the index and each platform's image from the exported layout.
    const index = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${layout}`], { encoding: 'utf8' })) as { mediaType: string; manifests: { platform: Record<string, string> }[]; annotations?: Record<string, string> };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.annotations).toEqual({ 'org.opencontainers.image.source': 'https://example.com/repo' });
    // linux/arm64/v8 is linux/arm64, as BuildKit normalises platforms (v8 is arm64's default).
    expect(index.manifests.map((m) => m.platform)).toEqual([{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }]);
    for (const [arch, variant] of [['amd64', undefined], ['arm64', 'v8']] as const) {
      const copy = join(work, `multi-${arch}`);
      execFileSync('skopeo', ['copy', '--quiet', '--override-arch', arch, ...(variant ? ['--override-variant', variant] : []), `oci:${layout}`, `dir:${copy}`]);
      const manifest = JSON.parse(readFileSync(join(copy, 'manifest.json'), 'utf8')) as { config: { digest: string }; layers: { digest: string }[]; annotations?: Record<string, string> };
      expect(manifest.annotations).toEqual({ 'org.opencontainers.image.revision': 'abc123' });
      expect(JSON.parse(readFileSync(join(copy, manifest.config.digest.slice(7)), 'utf8'))).toMatchObject({ architecture: arch, os: 'linux' });
      expect(manifest.layers).toHaveLength(1);
      expect(execFileSync('tar', ['-xOf', join(copy, manifest.layers[0]!.digest.slice(7)), 'out.txt'], { encoding: 'utf8' })).toBe(`built for ${arch}\n`);
    }
    // The filesystems of both, each in a directory of its own named as BuildKit names them (platform-split),
    // as a directory and as one tar; merging them (platform-split=false) is refused before anything is built.
    const split = join(work, 'multi-local');
    expect(strata(['build', '-q', '--platform', 'linux/amd64,linux/arm64/v8', '-o', `type=local,dest=${split}`, dir]).status).toBe(0);
    expect(readdirSync(split).sort()).toEqual(['linux_amd64', 'linux_arm64']);
    expect(readFileSync(join(split, 'linux_arm64', 'out.txt'), 'utf8')).toBe('built for arm64\n');
    const splitTar = spawnSync(process.execPath, [cli, '--root', root, 'build', '-q', '--platform', 'linux/amd64,linux/arm64/v8', '-o', '-', dir], { env: { ...process.env, NODE_EXTRA_CA_CERTS: '' }, maxBuffer: 64 << 20 });
    expect(splitTar.status, splitTar.stderr.toString()).toBe(0);
    expect(execFileSync('tar', ['-t'], { input: splitTar.stdout }).toString().split('\n').filter(Boolean).sort()).toEqual(['linux_amd64/', 'linux_amd64/out.txt', 'linux_arm64/', 'linux_arm64/out.txt']);
    expect(strata(['build', '--platform', 'linux/amd64,linux/arm64/v8', '-o', `type=local,dest=${split}-merged,platform-split=false`, dir]).stderr).toContain('does not merge the filesystems of several platforms');
    // One cache image holds every platform's steps: another root builds both platforms from it, running none.
    const cacheDir = join(work, 'multi-cache');
    const cached = strata(['build', '--platform', 'linux/amd64,linux/arm64/v8', '--cache-to', `type=local,dest=${cacheDir},mode=max`, dir]);
    expect(cached.status, cached.stderr).toBe(0);
    await (await rootWithBase(work, 'multi-other')).close();
    const taken = spawnSync(process.execPath, [cli, '--root', join(work, 'multi-other'), 'build', '--platform', 'linux/amd64,linux/arm64/v8', '--cache-from', `type=local,src=${cacheDir}`, dir], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    expect(taken.status, taken.stderr).toBe(0);
    expect(taken.stdout).toContain('0 step(s) ran, 4 cached');
    // Index annotations on a single platform's image, and a form strata does not take, are refused.
    expect(strata(['build', '--annotation', 'index:a=b', dir]).stderr).toContain('index annotations are for a build of several platforms');
    expect(strata(['build', '--annotation', 'manifest-descriptor:a=b', dir]).stderr).toContain('--annotation is [manifest:|index:]key=value');
    // A lone manifest of this platform serves the other too, as BuildKit builds on it, with its
    // InvalidBaseImagePlatform finding (its own test's words); the image says the platform asked for, as
    // BuildKit writes it. A check run finds it too; with error=true nothing is built; a directive skips it.
    const foreign = writeContext(join(work, 'multi-foreign'), { Dockerfile: `FROM ${BASE}\nLABEL built=yes\n` });
    const finding = `InvalidBaseImagePlatform: Base image ${BASE} was pulled with platform "linux/amd64", expected "linux/arm64" for current build (line 1)`;
    const warned = strata(['build', '--platform', 'linux/amd64,linux/arm64', '-t', 'example.com/foreign:1', foreign]);
    expect(warned.status, warned.stderr).toBe(0);
    expect(warned.stderr).toContain(`1 warning found:\n - ${finding}\n`);
    for (const arch of ['amd64', 'arm64']) {
      const inspected = JSON.parse(strata(['image', 'inspect', '--json', '--platform', `linux/${arch}`, 'example.com/foreign:1']).stdout) as { config: { architecture: string; config: { Labels: Record<string, string> } } };
      expect(inspected.config.architecture).toBe(arch);
      expect(inspected.config.config.Labels).toEqual({ built: 'yes' });
    }
    const checked = strata(['build', '--check', '--platform', 'linux/arm64', foreign]);
    expect(checked.status).toBe(1);
    expect(checked.stdout).toContain(`WARNING: InvalidBaseImagePlatform\nBase image platform does not match expected target platform\nDockerfile:1: Base image ${BASE} was pulled with platform "linux/amd64", expected "linux/arm64" for current build\n`);
    expect(strata(['build', '--check', '--platform', 'linux/amd64', foreign]).status).toBe(0);
    const strict = strata(['build', '--progress', 'plain', '--platform', 'linux/arm64', '--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=error=true', foreign]);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toContain('Dockerfile line 1: lint violation found for rules: InvalidBaseImagePlatform');
    expect(strict.stderr).not.toContain('[1/');
    const skipped = writeContext(join(work, 'multi-foreign-skipped'), { Dockerfile: `# check=skip=InvalidBaseImagePlatform\nFROM ${BASE}\nLABEL built=yes\n` });
    const quiet = strata(['build', '--platform', 'linux/arm64', skipped]);
    expect(quiet.status, quiet.stderr).toBe(0);
    expect(quiet.stderr).not.toContain('warning');
  }, 300_000);

  it('fails with the line and a non-zero status, and lists and prunes the cache', () => {
    const bad = writeContext(join(work, 'bad'), { Dockerfile: `FROM ${BASE}\nRUN exit 7\n` });
    const r = strata(['build', bad]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Dockerfile line 2: RUN exit 7 failed with exit status 7');
    const ls = strata(['build', 'cache', 'ls', '--json']);
    expect(ls.status, ls.stderr).toBe(0);
    const records = ls.stdout.trim().split('\n').map((l) => JSON.parse(l) as { step: string; size: number; layerSize: number });
    expect(records.map((x) => x.step)).toContain('COPY hello.txt /');
    // A record's size is what it keeps on disk: its layer blob and its snapshot.
    for (const record of records) expect(record.size, record.step).toBeGreaterThan(record.layerSize);
    // Records just used: not unused for an hour, and they fit in a gigabyte.
    for (const kept of [['--filter', 'until=1h'], ['--older-than', '1'], ['--keep-storage', '1g'], ['--min-free-space', '1k'], ['--max-used-space', '1', '--reserved-space', '1g']]) {
      expect(strata(['build', 'cache', 'prune', ...kept]).stdout).toMatch(/^Deleted 0 cache record\(s\)/);
    }
    for (const bad of [['--keep-storage', 'lots'], ['--filter', 'label=x']]) expect(strata(['build', 'cache', 'prune', ...bad]).status).toBe(2);
    // Down to a byte: every record goes, least recently used first.
    const prune = strata(['build', 'cache', 'prune', '--max-used-space', '1']);
    expect(prune.status, prune.stderr).toBe(0);
    expect(prune.stdout).toMatch(/^Deleted [1-9]\d* cache record\(s\); freed /);
    expect(strata(['build', 'cache', 'ls', '--json']).stdout).toBe('');
  }, 120_000);
  it('takes the context on stdin (-), a tar archive of it (GNU tar, gzip or xz) or a Dockerfile alone, as docker build - does', async () => {
    const dir = writeContext(join(work, 'stdin-context'), {
      Dockerfile: 'FROM scratch\nCOPY . /ctx/\n',
      'alt/Dockerfile': 'FROM scratch\nCOPY sub/a /alt\n',
      'sub/a': 'from the archive\n',
      ignored: 'left out by .dockerignore\n',
      '.dockerignore': 'ignored\n',
    });
    const fromStdin = (args: string[], input: Buffer | string) => spawnSync(process.execPath, [cli, '--root', root, 'build', '-q', ...args, '-'], { input, encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    const ingests = join(root, 'content', 'ingest');
    const before = existsSync(ingests) ? readdirSync(ingests) : [];
    const gz = fromStdin(['-t', 'example.com/stdin:gz'], execFileSync('tar', ['-C', dir, '-cz', '.']));
    expect(gz.status, gz.stderr).toBe(0);
    const xz = fromStdin(['-t', 'example.com/stdin:xz', '-f', 'alt/Dockerfile'], execFileSync('tar', ['-C', dir, '-cJ', '.']));
    expect(xz.status, xz.stderr).toBe(0);
    const alone = fromStdin(['-t', 'example.com/stdin:dockerfile'], 'FROM scratch\nLABEL context=none\n');
    expect(alone.status, alone.stderr).toBe(0);
    const both = spawnSync(process.execPath, [cli, '--root', root, 'build', '-f', '-', '-'], { input: '', encoding: 'utf8' });
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('the build context and the Dockerfile cannot both be read from stdin');
    // A hostile archive is refused as a hostile layer is, and nothing of it stays.
    const escaping = fromStdin(['-t', 'example.com/stdin:bad'], execFileSync('gzip', ['-c'], { input: rawTar([{ name: '../../../escaped', data: 'x' }]) }));
    expect(escaping.status).not.toBe(0);
    expect(escaping.stderr).toMatch(/strata: UNSAFE_PATH: the build context: /);
    expect(existsSync(join(root, 'escaped')) || existsSync(join(work, 'escaped'))).toBe(false);
    // A device node is no context's; a .dockerignore that is a FIFO (which a read would wait on forever) is none.
    const device = fromStdin([], rawTar([{ name: 'Dockerfile', data: 'FROM scratch\n' }, { name: 'disk', type: '4', devmajor: 8, devminor: 0 }]));
    expect(device.stderr).toMatch(/strata: UNSUPPORTED: the build context: /);
    const fifo = spawnSync(process.execPath, [cli, '--root', root, 'build', '-q', '-'], { input: rawTar([{ name: 'Dockerfile', data: 'FROM scratch\nCOPY . /c/\n' }, { name: '.dockerignore', type: '6' }]), encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    expect(fifo.status, fifo.stderr).toBe(0);
    expect(existsSync(ingests) ? readdirSync(ingests) : []).toEqual(before);
    const images = await openImages(root);
    try {
      const view = async (ref: string) => images.snapshotter.open((await images.unpack(ref)).chainID!);
      const ctx = await view('example.com/stdin:gz');
      expect((await ctx.readdir('/ctx')).sort()).toEqual(['.dockerignore', 'Dockerfile', 'alt', 'sub']);
      expect(String(await ctx.readFile('/ctx/sub/a', 'utf8'))).toBe('from the archive\n');
      expect(String(await (await view('example.com/stdin:xz')).readFile('/alt', 'utf8'))).toBe('from the archive\n');
      expect(images.platformImage('example.com/stdin:dockerfile').config.config?.Labels).toEqual({ context: 'none' });
    } finally {
      await images.close();
    }
  }, 300_000);

  it('answers --call=targets and --call=outline as buildx prints them, text or JSON, building nothing', () => {
    const dir = writeContext(join(work, 'call'), {
      Dockerfile: '\n# build defines stage for compiling the binary\nFROM alpine AS build\nARG VERSION=1.0\n# TOKEN is read from the environment\nARG TOKEN\nRUN --mount=type=secret,id=npmrc,required=true true\n\nFROM busybox as second\n\n# binary returns the compiled binary\nFROM second AS binary\nCOPY --from=build /out /\n',
    });
    const targets = strata(['build', '--call', 'targets', dir]);
    expect(targets.status, targets.stderr).toBe(0);
    expect(targets.stdout).toBe('TARGET           DESCRIPTION\nbuild            defines stage for compiling the binary\nsecond           \nbinary (default) returns the compiled binary\n');
    const json = JSON.parse(strata(['build', '--call', 'targets,format=json', dir]).stdout) as { targets: Record<string, unknown>[]; sources: string[] };
    expect(json.targets[2]).toEqual({ name: 'binary', default: true, description: 'returns the compiled binary', base: 'second', location: { ranges: [{ start: { line: 12 }, end: { line: 12 } }] } });
    expect(Buffer.from(json.sources[0]!, 'base64').toString()).toContain('FROM second AS binary');
    const outline = strata(['build', '--call=outline', '--build-arg', 'VERSION=2.0', dir]);
    expect(outline.status, outline.stderr).toBe(0);
    expect(outline.stdout).toBe(
      'TARGET:      binary\nDESCRIPTION: returns the compiled binary\n\nBUILD ARG   VALUE   DESCRIPTION\nVERSION     2.0     \nTOKEN               is read from the environment\n\nSECRET   REQUIRED\nnpmrc    true\n\n',
    );
    expect(strata(['build', '--call', 'bogus', dir]).stderr).toContain('--call is build, check, targets or outline');
    expect(strata(['build', '--check', '--call', 'targets', dir]).stderr).toContain('--check is --call=check');
    expect(strata(['build', '--call', 'check,format=json', dir]).stderr).toContain('writes no JSON');
  });
});

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap', 'docker-registry'))('strata build with a registry', () => {
  let work: string;
  let registry: TestRegistry;

  beforeAll(async () => {
    work = scratch('strata-build-cli-registry-');
    registry = await TestRegistry.start(join(work, 'registry'));
  }, 30 * 60_000);

  afterAll(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('carries the build cache through a registry: --cache-to type=inline, --push, and --cache-from on another root, pulling it', async () => {
    const roots = ['one', 'two'].map((name) => join(work, name));
    for (const name of ['one', 'two']) await (await rootWithBase(work, name)).close();
    const context = writeContext(join(work, 'context'), { Dockerfile: `FROM ${BASE}\nCOPY hello.txt /\nRUN cp /hello.txt /copied.txt\n`, 'hello.txt': 'greetings\n' });
    const ref = `${registry.host}/cache/app:1`;
    const strataIn = (root: string, args: string[]) => spawnSync(process.execPath, [cli, '--root', root, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    expect(strataIn(roots[0]!, ['build', '--push', context]).stderr).toContain('--push needs a name to push to (-t, or -o name=)');
    expect(strataIn(roots[0]!, ['build', '-o', 'type=registry', context]).stderr).toContain('--push needs a name to push to (-t, or -o name=)');
    const made = strataIn(roots[0]!, ['build', '--cache-to', 'type=inline', '--push', '-t', ref, context]);
    expect(made.status, made.stderr).toBe(0);
    expect(made.stdout).toContain('2 step(s) ran, 0 cached');
    expect(made.stderr).toMatch(new RegExp(`Pushed ${ref.replace(/[.]/g, '\\.')}@sha256:[0-9a-f]{64}: \\d+ blob\\(s\\) uploaded`));
    // The other root has only the base: the cache image is pulled, and no step runs.
    const taken = strataIn(roots[1]!, ['build', '--cache-from', `type=registry,ref=${ref}`, '--progress', 'plain', context]);
    expect(taken.status, taken.stderr).toBe(0);
    expect(taken.stdout).toContain('0 step(s) ran, 2 cached');
    expect(taken.stderr).toContain('[3/3] CACHED');
    const bad = strataIn(roots[1]!, ['build', '--cache-to', 'type=gha', context]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--cache-to: strata writes type=inline, type=registry,ref=REF or type=local,dest=DIR (mode=min|max): type=gha');
    // buildx's image exporter: -o type=registry,name=REF names the image and pushes it, as --push does.
    const exported = strataIn(roots[1]!, ['build', '-q', '-o', `type=registry,name=${registry.host}/cache/exported:1`, context]);
    expect(exported.status, exported.stderr).toBe(0);
    const remoteTags = strataIn(roots[1]!, ['image', 'ls-remote', `${registry.host}/cache/exported`, '--json']);
    expect(JSON.parse(remoteTags.stdout)).toEqual(['1']);
    // The build's plain layers go gzip-compressed, as BuildKit's exporter pushes them; compression= chooses
    // (the first root's: its layers are its own builds', plain, where the other took them from the registry).
    const layerTypes = (tag: string) =>
      (JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/cache/exported:${tag}`], { encoding: 'utf8' })) as { layers: { mediaType: string }[] }).layers.map((l) => l.mediaType).at(-1);
    expect(layerTypes('1')).toMatch(/tar[+.]gzip$/);
    const metadata = join(work, 'pushed-metadata.json');
    const zstd = strataIn(roots[0]!, ['build', '-q', '--metadata-file', metadata, '-o', `type=registry,name=${registry.host}/cache/exported:zstd,compression=zstd`, context]);
    expect(zstd.status, zstd.stderr).toBe(0);
    expect(layerTypes('zstd')).toMatch(/tar\+zstd$/);
    // The metadata file names what the registry holds, as buildx's does: not the local, plain image.
    const remoteDigest = execFileSync('skopeo', ['inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${registry.host}/cache/exported:zstd`], { encoding: 'utf8' }).trim();
    expect(JSON.parse(readFileSync(metadata, 'utf8'))['containerimage.digest']).toBe(remoteDigest);
    expect(zstd.stdout.trim()).not.toBe(remoteDigest);
    expect(strataIn(roots[0]!, ['build', '-q', '-o', `type=registry,name=${registry.host}/cache/exported:plain,compression=uncompressed`, context]).status).toBe(0);
    expect(layerTypes('plain')).toMatch(/\.tar$/);
    expect(strataIn(roots[1]!, ['build', '-q', '-o', `type=registry,name=${registry.host}/cache/exported:x,compression=lz4`, context]).stderr).toContain('-o compression= is gzip, zstd or uncompressed');
    // Read when a step misses the root's own cache: a changed file's steps look, and the image is missing.
    writeFileSync(join(context, 'hello.txt'), 'changed\n');
    const missing = strataIn(roots[1]!, ['build', '--cache-from', `${registry.host}/cache/none:1`, context]);
    expect(missing.status, missing.stderr).toBe(0);
    expect(missing.stderr).toMatch(/strata: warning: --cache-from 127\.0\.0\.1:\d+\/cache\/none:1: .*; its steps run/);
  }, 300_000);

  it('pushes a cache image with --cache-to type=registry,mode=max, which gives another root every stage\'s steps', async () => {
    const roots = ['max-one', 'max-two'].map((name) => join(work, name));
    for (const name of ['max-one', 'max-two']) await (await rootWithBase(work, name)).close();
    const context = writeContext(join(work, 'max-context'), {
      Dockerfile: `FROM ${BASE} AS builder\nCOPY src.txt /\nRUN tr a-z A-Z < /src.txt > /built.txt\nFROM ${BASE}\nCOPY --from=builder /built.txt /\n`,
      'src.txt': 'compiled\n',
    });
    const cacheRef = `${registry.host}/cache/app:buildcache`;
    const strataIn = (root: string, args: string[]) => spawnSync(process.execPath, [cli, '--root', root, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    const made = strataIn(roots[0]!, ['build', '--cache-to', `type=registry,ref=${cacheRef},mode=max`, context]);
    expect(made.status, made.stderr).toBe(0);
    expect(made.stdout).toContain('3 step(s) ran, 0 cached');
    // Only the cache image went to the registry, and the root that made it keeps no image of it.
    const listed = strataIn(roots[0]!, ['image', 'ls', '--json']);
    expect(listed.stdout).not.toContain('buildcache');
    const taken = strataIn(roots[1]!, ['build', '--cache-from', `type=registry,ref=${cacheRef}`, context]);
    expect(taken.status, taken.stderr).toBe(0);
    expect(taken.stdout).toContain('0 step(s) ran, 3 cached');
  }, 300_000);
});
