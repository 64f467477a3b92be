/**
 * `strata build` (a Dockerfile into an image of the root) and `strata build cache ls|prune`. Progress is
 * one line per step (`[3/9] RUN …`, then the step's output, then `CACHED` or its time), or with
 * `--progress json` one object per finished step on stdout.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { BuildCheck, BuildEvent, BuildOptions, BuildOutline, BuildResult, BuildTarget, CacheExport, Entitlement, MountOutline, SourceLocation } from '@strata/build';
import type { Images } from '@strata/images';
import type { PushResult } from '@strata/registry';
import { print, sanitize, UsageError } from './format.js';
import { pushedLine } from './registry-commands.js';
import { archiveToStdout, readStdin, spoolStdin } from './stdin.js';
import { humanBytes } from './progress.js';
import { parseImageFilters } from './image-filters.js';
import { agentWithKeys, type KeyAgent } from './ssh-keys.js';
import { collect, table, withImages } from './root.js';
import { tabwrite } from './row-format.js';

interface BuildFlags {
  file?: string;
  tag?: string[];
  target?: string;
  buildArg?: string[];
  secret?: string[];
  ssh?: string[];
  allow?: string[];
  label?: string[];
  iidfile?: string;
  annotation?: string[];
  metadataFile?: string;
  buildContext?: string[];
  pull?: boolean;
  network?: string;
  addHost?: string[];
  ulimit?: string[];
  shmSize?: string;
  cache: boolean;
  cacheFrom?: string[];
  /** `--no-cache-filter`'s stages: commander reads a `--no-` option as the negation of `cacheFilter`, true when not given. */
  cacheFilter?: string[] | true;
  cacheTo?: string;
  push?: boolean;
  squash?: boolean;
  platform?: string;
  progress: 'auto' | 'plain' | 'json';
  output?: string;
  quiet?: boolean;
  sourceDateEpoch?: string;
  plainHttp?: boolean;
  check?: boolean;
  call?: string;
}

/**
 * `--secret id=ID[,src=PATH|,env=VAR][,type=file|env]`, as `docker build` reads it: the file's bytes, or the
 * environment variable's value; with neither, the file or variable named by the id.
 */
function secrets(specs: string[] = []): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const spec of specs) {
    const fields = new Map<string, string>();
    for (const part of spec.split(',')) {
      const eq = part.indexOf('=');
      fields.set((eq < 0 ? part : part.slice(0, eq)).toLowerCase(), eq < 0 ? '' : part.slice(eq + 1));
    }
    const id = fields.get('id');
    if (!id || [...fields.keys()].some((k) => !['id', 'src', 'source', 'env', 'type'].includes(k))) throw new UsageError(`a secret is id=ID[,src=PATH|,env=VAR]: ${spec}`);
    const src = fields.get('src') ?? fields.get('source');
    // With neither a source nor a type: the variable named by the id if the environment has one, else the file, as BuildKit reads it.
    const type = fields.get('type') ?? (fields.has('env') || (src === undefined && process.env[id] !== undefined) ? 'env' : 'file');
    if (type === 'env') {
      const value = process.env[fields.get('env') ?? id];
      if (value === undefined) throw new UsageError(`the secret ${id}: the environment has no ${fields.get('env') ?? id}`);
      out[id] = Buffer.from(value);
    } else if (type === 'file') out[id] = secretFile(id, src ?? id);
    else throw new UsageError(`a secret's type is file or env: ${spec}`);
  }
  return out;
}

/** BuildKit's bound on a secret's size. */
const MAX_SECRET_BYTES = 500 * 1024;

/** A secret's file, read whole: it must be a file within BuildKit's bound. */
function secretFile(id: string, path: string): Buffer {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat?.isFile()) throw new UsageError(`the secret ${id}: ${path} is ${stat ? 'not a file' : 'not there'}`);
  if (stat.size > MAX_SECRET_BYTES) throw new UsageError(`the secret ${id}: ${path} is ${stat.size} bytes, over BuildKit's ${MAX_SECRET_BYTES} for a secret`);
  return readFileSync(path);
}

/**
 * `--ssh ID[=SOCKET|=KEYFILE[,KEYFILE]…]`, as `docker build` reads it: the socket of the agent for id ID (with
 * none, `$SSH_AUTH_SOCK`), or private key files, which an agent of the build's own will hold (ssh-keys.ts).
 */
function sshAgents(specs: string[] = []): { agents: Record<string, string>; keys: Record<string, string[]> } {
  const agents: Record<string, string> = {};
  const keys: Record<string, string[]> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const id = eq < 0 ? spec : spec.slice(0, eq);
    const value = eq < 0 ? process.env.SSH_AUTH_SOCK : spec.slice(eq + 1);
    if (!/^[\w.-]+$/.test(id)) throw new UsageError(`an SSH agent is ID[=SOCKET|=KEYFILE[,KEYFILE]...]: ${spec}`);
    if (!value) throw new UsageError(`--ssh ${id}: no socket given and SSH_AUTH_SOCK is not set`);
    if (id in agents || id in keys) throw new UsageError(`--ssh ${id}: given twice`);
    const paths = value.split(',');
    // A socket is an agent's; files are keys, which an agent of the build's own will hold. Each must be
    // there when the build starts, as BuildKit's ssh provider checks.
    const kinds = paths.map((path) => statSync(path, { throwIfNoEntry: false }));
    if (paths.length === 1 && kinds[0]?.isSocket()) agents[id] = value;
    else {
      for (const [i, path] of paths.entries()) if (!kinds[i]?.isFile()) throw new UsageError(`--ssh ${id}: ${path} is neither an agent's socket nor a key file`);
      keys[id] = paths;
    }
  }
  return { agents, keys };
}

/**
 * `--build-context name=value`, as buildx reads the kinds strata takes: `docker-image://REF`,
 * `oci-layout://PATH…`, a git repository (a URL or `user@host:path`; the library tells which URLs are
 * repositories), another http(s) URL, or a directory.
 */
function namedContexts(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0 || at === pair.length - 1) throw new UsageError(`a named context is name=value: ${pair}`);
    const value = pair.slice(at + 1);
    const remote = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) || /^[a-z0-9_-]+@[a-z0-9.-]+:/i.test(value);
    out[pair.slice(0, at)] = remote ? value : resolve(value);
  }
  return out;
}

/** `--ulimit name=soft[:hard]` (one value: both), as `docker build` reads them; -1 is unlimited. The names are the library's to check. */
function ulimits(specs: string[]): Record<string, { soft: number; hard: number }> {
  const out: Record<string, { soft: number; hard: number }> = {};
  for (const spec of specs) {
    const match = /^([a-z]+)=(-1|\d+)(?::(-1|\d+))?$/.exec(spec);
    if (!match) throw new UsageError(`--ulimit ${spec}: name=soft[:hard] is expected (whole numbers, -1 for unlimited)`);
    const soft = Number(match[2]);
    out[match[1]!] = { soft, hard: match[3] === undefined ? soft : Number(match[3]) };
  }
  return out;
}

/** `--shm-size 64m`, as `docker build` reads a size: bytes, or a number with a binary unit (k, m, g; b, ib and case ignored). */
function bytesOf(flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(text);
  if (!match) throw new UsageError(`${flag} ${text}: a size is expected (bytes, or a number with k, m or g)`);
  const unit = match[2] === undefined ? 1 : 1024 ** ('kmgtp'.indexOf(match[2].toLowerCase()) + 1);
  return Math.floor(Number(match[1]) * unit);
}

/** `--add-host name:address` (or `name=address`), as `docker build` reads them; an IPv6 address may be bracketed. */
function extraHosts(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const match = /^([^:=\s]+)[:=](.+)$/.exec(pair);
    const address = match?.[2]?.replace(/^\[(.*)\]$/, '$1');
    if (!match || !address || !(isIP(address) || address === 'host-gateway')) throw new UsageError(`--add-host ${pair}: name:address is expected (an IPv4 or IPv6 address)`);
    if (address === 'host-gateway') throw new UsageError(`--add-host ${pair}: host-gateway has no meaning where RUN shares the host's network (use 127.0.0.1)`);
    out[match[1]!] = address;
  }
  return out;
}

/** `--label key=value` pairs, as `docker build` reads them (a key alone is an empty label). */
function labels(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at === 0) throw new UsageError(`a label is key=value: ${pair}`);
    out[at < 0 ? pair : pair.slice(0, at)] = at < 0 ? '' : pair.slice(at + 1);
  }
  return out;
}

/** `k=v` build args; a bare `k` takes the value of the environment variable, as Docker's. */
function buildArgs(pairs: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at === 0) throw new UsageError(`a build arg is NAME=value: ${pair}`);
    if (at < 0) {
      const value = process.env[pair];
      if (value !== undefined) out[pair] = value;
    } else out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

/** The `key=value` fields of a comma-separated flag value (`type=registry,ref=REF`), as buildx writes them. */
function keyValueFields(text: string): Record<string, string> {
  return Object.fromEntries(csvFields(text).map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
}

/**
 * The comma-separated fields of an `-o`, `--cache-to` or `--cache-from` value, read as CSV as buildx reads
 * them: a field in double quotes may hold commas (`"name=a,b"`), `""` in it is one quote, and a quote inside
 * an unquoted field is refused.
 */
function csvFields(text: string): string[] {
  const fields: string[] = [];
  let at = 0;
  for (;;) {
    if (text[at] === '"') {
      let field = '';
      let i = at + 1;
      for (;;) {
        const quote = text.indexOf('"', i);
        if (quote < 0) throw new UsageError(`an unclosed quote in ${JSON.stringify(text)}`);
        field += text.slice(i, quote);
        if (text[quote + 1] !== '"') {
          i = quote + 1;
          break;
        }
        field += '"';
        i = quote + 2;
      }
      if (i < text.length && text[i] !== ',') throw new UsageError(`text after a closing quote in ${JSON.stringify(text)}`);
      fields.push(field);
      at = i + 1;
    } else {
      const comma = text.indexOf(',', at);
      const field = text.slice(at, comma < 0 ? text.length : comma);
      if (field.includes('"')) throw new UsageError(`a quote inside an unquoted field of ${JSON.stringify(text)}`);
      fields.push(field);
      at = comma < 0 ? text.length + 1 : comma + 1;
    }
    if (at > text.length) return fields;
  }
}

/** An exporter's `compression=`, as strata names them. */
type ExportCompression = 'gzip' | 'zstd' | 'none';

/** `name=a,b` of an exporter: the names, as BuildKit splits them. */
const exporterNames = (name: string | undefined): string[] => (name ?? '').split(',').filter((n) => n !== '');

/** `--annotation [manifest:|index:]key=value`, as buildx reads them (its descriptor and per-platform forms are not taken). */
function annotations(pairs: string[]): { manifest: Record<string, string>; index: Record<string, string> } {
  const out = { manifest: {} as Record<string, string>, index: {} as Record<string, string> };
  for (const pair of pairs) {
    const typed = /^(manifest|index):(.*)$/s.exec(pair);
    const text = typed ? typed[2]! : pair;
    const eq = text.indexOf('=');
    if (eq <= 0 || /^[a-z-]+(\[[^\]]*\])?:/.test(text.slice(0, eq))) throw new UsageError(`--annotation is [manifest:|index:]key=value: ${pair}`);
    out[typed ? (typed[1] as 'manifest' | 'index') : 'manifest'][text.slice(0, eq)] = text.slice(eq + 1);
  }
  return out;
}

/** `--cache-from`: an image whose build cache strata reads, as buildx names one: `REF`, `type=registry,ref=REF`, `type=local,src=DIR`. */
function cacheFromSpec(text: string): string | { src: string } {
  if (!text.includes('=')) return text;
  const fields = keyValueFields(text);
  if ((fields.type ?? 'registry') === 'registry' && fields.ref) return fields.ref;
  if (fields.type === 'local' && fields.src) return { src: resolve(fields.src) };
  throw new UsageError(`--cache-from takes an image whose build cache to read (REF, type=registry,ref=REF or type=local,src=DIR): ${text}`);
}

/** `--cache-to`: `type=inline`, or strata's cache image at `type=registry,ref=REF` or `type=local,dest=DIR`, `mode=min|max` (gha and s3 are BuildKit's). */
function cacheToSpec(text: string): 'inline' | CacheExport {
  const fields = keyValueFields(text);
  if (fields.type === 'inline' && Object.keys(fields).length === 1) return 'inline';
  if (fields.mode === undefined || fields.mode === 'min' || fields.mode === 'max') {
    const mode = fields.mode ?? 'min';
    if (fields.type === 'registry' && fields.ref) return { ref: fields.ref, mode };
    if (fields.type === 'local' && fields.dest) return { dest: resolve(fields.dest), mode };
  }
  throw new UsageError(`--cache-to: strata writes type=inline, type=registry,ref=REF or type=local,dest=DIR (mode=min|max): ${text}`);
}

/**
 * `-o type=…`: an image layout or archive at `dest=PATH`, or the filesystem (`local`: a directory; `tar`: one
 * archive); or, as buildx's image exporters, `type=image[,name=REF][,push=true]` (the image, named too) and
 * `type=registry[,name=REF]` (the same, pushed: `--push`).
 */
function outputSpec(text: string): { format: 'oci' | 'docker' | 'oci-archive' | 'local' | 'tar'; dest: string; names: string[]; platformSplit?: boolean; compression?: ExportCompression } | { format: 'image'; names: string[]; push: boolean; compression?: ExportCompression } {
  // buildx's shorthands: a path alone is the filesystem into that directory, `-` a tar archive of it on stdout.
  if (text === '-') return { format: 'tar', dest: '-', names: [] };
  if (!text.includes('=')) return { format: 'local', dest: text, names: [] };
  const fields = keyValueFields(text);
  const format = fields.type;
  // BuildKit's exporter compression, of what is pushed or written as an OCI image: its "uncompressed" is strata's none.
  const compression = fields.compression === 'uncompressed' ? 'none' : fields.compression;
  if (compression !== undefined && compression !== 'gzip' && compression !== 'zstd' && compression !== 'none') throw new UsageError(`-o compression= is gzip, zstd or uncompressed: ${text}`);
  const compressed = compression !== undefined ? { compression: compression as ExportCompression } : {};
  if (format === 'image' || format === 'registry') {
    if (fields.push !== undefined && fields.push !== 'true' && fields.push !== 'false') throw new UsageError(`-o push= is true or false: ${text}`);
    return { format: 'image', names: exporterNames(fields.name), push: format === 'registry' || fields.push === 'true', ...compressed };
  }
  if (format !== 'oci' && format !== 'docker' && format !== 'oci-archive' && format !== 'local' && format !== 'tar') throw new UsageError(`-o type= is oci, oci-archive, docker, local, tar, image or registry: ${text}`);
  if (!fields.dest) throw new UsageError(`-o needs dest=PATH: ${text}`);
  if (fields.tar !== undefined && (format !== 'oci' || (fields.tar !== 'true' && fields.tar !== 'false'))) throw new UsageError(`-o tar= is true or false, for type=oci: ${text}`);
  // As buildx writes them: type=oci is an archive, a layout directory with tar=false.
  const chosen = format === 'oci' && fields.tar !== 'false' ? 'oci-archive' : format;
  if (fields.dest === '-' && (chosen === 'local' || chosen === 'oci')) throw new UsageError(`-o dest=- (stdout) is for archives, not a directory: ${text}`);
  const split = fields['platform-split'];
  if (split !== undefined && ((chosen !== 'local' && chosen !== 'tar') || (split !== 'true' && split !== 'false'))) throw new UsageError(`-o platform-split= is true or false, for type=local and type=tar: ${text}`);
  if (fields.name !== undefined && (chosen === 'local' || chosen === 'tar')) throw new UsageError(`-o name= names an image, for type=oci and type=docker: ${text}`);
  // A docker archive holds its layers uncompressed, as docker save writes them.
  if (compression !== undefined && chosen !== 'oci' && chosen !== 'oci-archive') throw new UsageError(`-o compression= is for type=oci and the image exporters: ${text}`);
  return { format: chosen, dest: fields.dest, names: exporterNames(fields.name), ...compressed, ...(split !== undefined ? { platformSplit: split === 'true' } : {}) };
}

/** `--call METHOD[,format=json]`, as buildx reads it (a CSV list: the method, then its options). */
function callSpec(text: string): { method: 'build' | 'check' | 'targets' | 'outline'; json: boolean } {
  let method = 'build';
  let json = false;
  for (const field of csvFields(text)) {
    const eq = field.indexOf('=');
    if (eq < 0) method = field;
    else if (field.slice(0, eq) === 'format' && (field.slice(eq + 1) === 'json' || field.slice(eq + 1) === 'text')) json = field.slice(eq + 1) === 'json';
    else throw new UsageError(`--call takes a method and format=json|text: ${text}`);
  }
  if (method !== 'build' && method !== 'check' && method !== 'targets' && method !== 'outline') throw new UsageError(`--call is build, check, targets or outline: ${text}`);
  if (json && (method === 'build' || method === 'check')) throw new UsageError(`--call=${method} writes no JSON: ${text}`);
  return { method, json };
}

/** BuildKit's JSON of a declaration's place (a pb.Location: zero fields left out). */
const locationJson = (location: SourceLocation) => ({ ranges: location.ranges.map((r) => ({ start: { line: r.start.line }, end: { line: r.end.line } })) });

/** A target as BuildKit's subrequest writes it (empty fields left out, as its JSON tags say). */
const targetJson = (t: BuildTarget) => ({
  ...(t.name ? { name: t.name } : {}),
  ...(t.default ? { default: true } : {}),
  ...(t.description ? { description: t.description } : {}),
  ...(t.base ? { base: t.base } : {}),
  ...(t.platform ? { platform: t.platform } : {}),
  location: locationJson(t.location),
});

/** `--call=targets` as buildx prints it: a TARGET and DESCRIPTION table, the default marked. */
function targetsText(targets: readonly BuildTarget[]): string {
  const rows = targets.map((t) => `${sanitize(t.name === '' && t.default ? '(default)' : t.default ? `${t.name} (default)` : t.name)}\t${sanitize(t.description)}\n`);
  return tabwrite(`TARGET\tDESCRIPTION\n${rows.join('')}`, { minWidth: 0, padding: 1 });
}

/** An outline as BuildKit's subrequest writes it (empty fields left out, the Dockerfile as base64 `sources`). */
function outlineJson(o: BuildOutline): Record<string, unknown> {
  const mounts = (list: readonly MountOutline[]) => list.map((m) => ({ name: m.name, ...(m.required ? { required: true } : {}), location: locationJson(m.location) }));
  return {
    ...(o.name ? { name: o.name } : {}),
    ...(o.description ? { description: o.description } : {}),
    ...(o.args.length > 0 ? { args: o.args.map((a) => ({ name: a.name, ...(a.description ? { description: a.description } : {}), ...(a.value ? { value: a.value } : {}), location: locationJson(a.location) })) } : {}),
    ...(o.secrets.length > 0 ? { secrets: mounts(o.secrets) } : {}),
    ...(o.ssh.length > 0 ? { ssh: mounts(o.ssh) } : {}),
    sources: [Buffer.from(o.source).toString('base64')],
  };
}

/** `--call=outline` as buildx prints it: the target, then tables of build args, secrets and SSH agents, each followed by a blank line. */
function outlineText(o: BuildOutline): string {
  let out = '';
  if (o.name !== '' || o.description !== '') {
    out += tabwrite(`TARGET:\t${sanitize(o.name || '(default)')}\n${o.description ? `DESCRIPTION:\t${sanitize(o.description)}\n` : ''}`, { minWidth: 0, padding: 1 });
    out += '\n';
  }
  const table = (header: string, rows: string[]) => {
    if (rows.length > 0) out += `${tabwrite(`${header}\n${rows.join('')}`, { minWidth: 0, padding: 3 })}\n`;
  };
  table('BUILD ARG\tVALUE\tDESCRIPTION', o.args.map((a) => `${sanitize(a.name)}\t${sanitize(a.value)}\t${sanitize(a.description)}\n`));
  table('SECRET\tREQUIRED', o.secrets.map((m) => `${sanitize(m.name)}\t${m.required ? 'true' : ''}\n`));
  table('SSH\tREQUIRED', o.ssh.map((m) => `${sanitize(m.name)}\t${m.required ? 'true' : ''}\n`));
  return out;
}

/**
 * The build result as `docker buildx build --metadata-file` writes it, the keys CI tools read: the image's
 * digest and descriptor, its config's digest (a single platform's), its names comma-separated.
 */
function buildMetadata(images: Images, result: BuildResult, pushed: PushResult | undefined): Record<string, unknown> {
  const manifest = result.platforms ? undefined : (JSON.parse(images.content.readBytes(result.target.digest, 4 * 1024 * 1024).toString()) as { config: { digest: string } });
  // Pushed: what the registry holds (its layers compressed on the way), as buildx records what it pushed.
  const { mediaType, digest, size } = pushed ?? result.target;
  return {
    ...(manifest ? { 'containerimage.config.digest': manifest.config.digest } : {}),
    'containerimage.descriptor': { mediaType, digest, size },
    'containerimage.digest': digest,
    ...(result.names.length > 0 ? { 'image.name': result.names.join(',') } : {}),
  };
}

/** A check's finding as `docker build` lists them after a build: `Rule: detail (line N)`. */
const checkLine = (check: BuildCheck) => `${check.rule}: ${sanitize(check.detail)} (line ${check.line})`;

/** The build checks' findings, after a build (`docker build`'s summary of warnings), on stderr. */
function showChecks(checks: readonly BuildCheck[]): void {
  if (checks.length === 0) return;
  process.stderr.write(`${checks.length} warning${checks.length === 1 ? '' : 's'} found:\n${checks.map((c) => ` - ${checkLine(c)}\n`).join('')}`);
}

/**
 * `build --check` (`docker build --check`): each finding with its rule's documentation and the line, on
 * stdout; the exit status 1 when there is any.
 */
function printCheckRun(checks: readonly BuildCheck[], dockerfile: string): void {
  if (checks.length === 0) {
    print('Check complete, no warnings found.\n');
    return;
  }
  const lines = [`Check complete, ${checks.length} warning${checks.length === 1 ? ' has' : 's have'} been found!`];
  for (const check of checks) lines.push('', `WARNING: ${check.rule}${check.url ? ` - ${check.url}` : ''}`, check.description, `${dockerfile}:${check.line}: ${sanitize(check.detail)}`);
  print(`${lines.join('\n')}\n`);
  process.exitCode = 1;
}

function showEvents(mode: 'plain' | 'json', quiet: boolean): (event: BuildEvent) => void {
  return (event) => {
    // In JSON, warnings are objects of the stream as they come, as BuildKit's rawjson carries them too.
    if (mode === 'json' && (event.type === 'check' || event.type === 'warning')) {
      const warning = event.type === 'check' ? { rule: event.check.rule, detail: event.check.detail, line: event.check.line, url: event.check.url } : { message: event.message };
      print(`${JSON.stringify({ warning })}\n`);
    }
    if (event.type === 'check') return; // listed after the build
    if (event.type === 'warning') {
      process.stderr.write(`strata: warning: ${sanitize(event.message)}\n`);
      return;
    }
    if (mode === 'json') {
      if (event.type === 'done') {
        print(`${JSON.stringify({ step: event.step, stage: event.stage, instruction: event.instruction, cached: event.cached, seconds: Number(event.seconds.toFixed(3)), layer: event.layer })}\n`);
      } else if (event.type === 'output' && !quiet) process.stderr.write(event.data);
      return;
    }
    if (quiet) return;
    if (event.type === 'step') process.stderr.write(`[${event.step}/${event.total}] ${sanitize(event.instruction)}\n`);
    else if (event.type === 'output') process.stderr.write(event.data);
    else if (event.layer !== null || event.cached) process.stderr.write(`[${event.step}/${event.total}] ${event.cached ? 'CACHED' : `done in ${event.seconds.toFixed(2)}s`}\n`);
  };
}

export function registerBuildCommands(cli: Command): void {
  const buildCommand = cli
    .command('build')
    .description('build a Dockerfile into an image of the root (steps as layers, with a build cache)')
    .argument('<context>', 'the build context: a directory, a git repository (URL.git#ref:dir), an http(s) URL or - (stdin) of a tar archive of it or a Dockerfile alone, as docker build takes them')
    .option('-f, --file <Dockerfile>', 'the Dockerfile (default: <context>/Dockerfile; in a repository, a path in it; - reads it from stdin)')
    .option('-t, --tag <name>', 'name the image (repeatable; none: a dangling image)', collect)
    .option('--target <stage>', 'the stage to build (default: the last)')
    .option('--build-arg <name=value>', 'a build argument (repeatable)', collect)
    .option('--secret <id=ID,src=PATH|env=VAR>', 'a secret for RUN --mount=type=secret (repeatable)', collect)
    .option('--ssh <id[=socket|=keyfile,...]>', 'an SSH agent (or key files) for RUN --mount=type=ssh and git over ssh (default: $SSH_AUTH_SOCK; repeatable)', collect)
    .option('--allow <entitlement>', 'grant an entitlement: security.insecure, for RUN --security=insecure; network.host, which RUN has already (repeatable)', collect)
    .option('--build-context <name=value>', 'a named context: docker-image://REF, oci-layout://PATH[:TAG][@DIGEST], a git repository, an http(s) URL (its file, named context), or a directory (repeatable)', collect)
    .option('--label <key=value>', 'a label for the image, over the Dockerfile\'s (repeatable)', collect)
    .option('--annotation <[manifest:|index:]key=value>', 'an annotation on the image\'s manifest, or its index (repeatable)', collect)
    .option('--iidfile <file>', 'write the image ID (its manifest digest) to this file')
    .option('--metadata-file <file>', 'write the build result as JSON, with buildx\'s keys (containerimage.digest, image.name…)')
    .option('--pull', 'pull every image the build names, even those the root has')
    .option('--add-host <name:address>', 'a name for RUN steps\' /etc/hosts (repeatable)', collect)
    .addOption(new Option('--network <mode>', 'the network of RUN steps without --network').choices(['default', 'host', 'none']))
    .option('--ulimit <name=soft[:hard]>', 'a resource limit of RUN steps (nofile, nproc, core…; -1 unlimited; repeatable)', collect)
    .option('--shm-size <size>', 'the size of RUN steps\' /dev/shm (bytes, or with k, m, g; default 64m)')
    .option('--no-cache', 'run every step (the cache is still written)')
    .option('--no-cache-filter <stage>', 'run every step of this stage (repeatable)', (stage: string, previous: unknown) => [...(Array.isArray(previous) ? (previous as string[]) : []), stage])
    .option('--cache-from <REF|type=registry,ref=REF|type=local,src=DIR>', 'take steps from the build cache of this image, pulled if missing, or of a layout (repeatable)', collect)
    .option('--cache-to <type=inline|type=registry,ref=REF|type=local,dest=DIR>', 'record which step made each layer: in the image, or in a cache image pushed to REF or written at DIR (,mode=min|max)')
    .option('--squash', 'fold the layers above the base into one')
    .option('--platform <os/arch[/variant][,...]>', 'the platform of the base images and the result (default: this host); several: an index of one image each')
    .addOption(new Option('--progress <mode>', 'auto, plain, or json (one object per step, and one per warning)').choices(['auto', 'plain', 'json']).default('auto'))
    .option('-o, --output <type=oci|docker|local|tar,dest=PATH|-|type=image|registry[,name=REF]>', 'also export the image (oci, docker: an archive, oci with tar=false a layout; local, tar: its filesystem; registry: push it); a PATH alone is type=local, dest=- or - alone stdout')
    .option('--source-date-epoch <seconds>', 'fix layer, config and history times (default $SOURCE_DATE_EPOCH)')
    .option('--push', 'push the image to each of its -t names once built (docker buildx build --push)')
    .option('--plain-http', 'pull missing base images, and push, over plain http')
    .option('-q, --quiet', 'print only the image ID')
    .option('--check', 'run the build checks on every stage and build nothing (docker build --check): exit status 1 when they find anything')
    .option('--call <method>', 'build (the default), check (as --check), targets (list the stages) or outline (the build args, secrets and SSH agents the target reads), nothing built but for build; [,format=json] as docker buildx build --call')
    .action((context: string, o: BuildFlags, command: Command) =>
      withImages(command, async (images) => {
        const { build, buildOutline, buildTargets, checkBuild } = await import('@strata/build');
        const call = callSpec(o.call ?? (o.check ? 'check' : 'build'));
        if (o.check && call.method !== 'check') throw new UsageError(`--check is --call=check: not with --call=${call.method}`);
        const args = buildArgs(o.buildArg);
        // The environment's SOURCE_DATE_EPOCH stands for the build arg, as buildx passes it, unless one is given.
        const epochText = o.sourceDateEpoch ?? (Object.hasOwn(args, 'SOURCE_DATE_EPOCH') ? undefined : process.env.SOURCE_DATE_EPOCH);
        if (epochText !== undefined && !/^\d+$/.test(epochText)) throw new UsageError(`the source date epoch is whole seconds: ${epochText}`);
        const output = o.output === undefined ? undefined : outputSpec(o.output);
        // An archive on stdout, as buildx writes one: never into a terminal, and nothing else on stdout.
        const toStdout = output !== undefined && 'dest' in output && output.dest === '-';
        const stdoutArchive = toStdout ? archiveToStdout('-o', 'give dest=PATH') : undefined;
        if (output !== undefined && 'dest' in output && output.platformSplit === false && o.platform?.includes(',')) {
          throw new UsageError('-o platform-split=false: strata does not merge the filesystems of several platforms into one directory');
        }
        for (const entitlement of o.allow ?? []) if (entitlement !== 'security.insecure' && entitlement !== 'network.host') throw new UsageError(`--allow ${entitlement}: the entitlements are security.insecure and network.host`);
        // `-o type=image|registry` names the image (`name=`) and pushes it as --push does.
        const tags = [...(o.tag ?? []), ...(output?.format === 'image' ? output.names : [])];
        const push = o.push === true || (output?.format === 'image' && output.push);
        if (push && tags.length === 0) throw new UsageError('--push needs a name to push to (-t, or -o name=)');
        const { agents, keys } = sshAgents(o.ssh);
        const started: KeyAgent[] = [];
        // The image pushed (a cache image's too) over plain http when asked, as pulls go.
        // Plain layers go gzip-compressed, as BuildKit's image exporter pushes them, unless -o compression= says otherwise.
        const pushCompression = (output?.format === 'image' ? output.compression : undefined) ?? 'gzip';
        const pushTo = async (image: string, ref?: string) => {
          const { pushImage } = await import('@strata/registry');
          return pushImage(images, image, ref, { ...(o.plainHttp ? { plainHttp: true } : {}), ...(pushCompression !== 'none' ? { compression: pushCompression } : {}) });
        };
        const ssh = { ...agents };
        let result: Awaited<ReturnType<typeof build>>;
        // `-`: the context from stdin, a tar archive of it or a Dockerfile alone, as docker build reads one.
        let spooled: string | undefined;
        try {
          if (context === '-') {
            if (o.file === '-') throw new UsageError('the build context and the Dockerfile cannot both be read from stdin');
            spooled = images.content.temporaryPath();
            await spoolStdin('the build context (-)', spooled);
          }
          for (const [id, files] of Object.entries(keys)) {
            const agent = await agentWithKeys(files);
            started.push(agent);
            ssh[id] = agent.socket;
          }
          const options: BuildOptions = {
            context: spooled ?? context,
            // `-f -`: the Dockerfile from stdin, as docker build reads one (no ignore file of its own beside it).
            ...(o.file === '-' ? { dockerfileText: await readStdin('the Dockerfile (-f -)', 16 * 1024 * 1024) } : o.file !== undefined ? { dockerfile: o.file } : {}),
            ...(tags.length > 0 ? { tags } : {}),
            ...(o.target !== undefined ? { target: o.target } : {}),
            buildArgs: args,
            secrets: secrets(o.secret),
            ssh,
            ...(o.allow ? { allow: o.allow as Entitlement[] } : {}),
            ...(o.label ? { labels: labels(o.label) } : {}),
            ...(o.annotation ? { annotations: annotations(o.annotation) } : {}),
            ...(o.buildContext ? { contexts: namedContexts(o.buildContext) } : {}),
            ...(o.pull ? { pullAlways: true } : {}),
            ...(o.addHost ? { extraHosts: extraHosts(o.addHost) } : {}),
            ...(o.network !== undefined ? { network: o.network as 'default' | 'host' | 'none' } : {}),
            ...(o.ulimit ? { ulimits: ulimits(o.ulimit) } : {}),
            ...(o.shmSize !== undefined ? { shmSize: bytesOf('--shm-size', o.shmSize) } : {}),
            noCache: !o.cache,
            ...(Array.isArray(o.cacheFilter) ? { noCacheFilter: o.cacheFilter } : {}),
            ...(o.cacheFrom ? { cacheFrom: o.cacheFrom.map(cacheFromSpec) } : {}),
            ...(o.cacheTo !== undefined ? { cacheTo: cacheToSpec(o.cacheTo) } : {}),
            ...(o.squash ? { squash: true } : {}),
            // Several, comma-separated (buildx's form): an index of the images built for each.
            ...(o.platform === undefined ? {} : o.platform.includes(',') ? { platforms: o.platform.split(',').map((p) => p.trim()) } : { platform: o.platform }),
            ...(epochText !== undefined ? { sourceDateEpoch: Number(epochText) } : {}),
            push: async (image, ref) => void (await pushTo(image, ref)),
            pull: async (reference, platform) => {
              const { pullImage } = await import('@strata/registry');
              await pullImage(images, reference, { platform: { platform }, ...(o.plainHttp ? { plainHttp: true } : {}) });
            },
            onEvent: showEvents(o.progress === 'json' ? 'json' : 'plain', o.quiet ?? false),
          };
          if (call.method === 'check') {
            printCheckRun(await checkBuild(images, options), o.file === '-' ? '-' : (o.file ?? 'Dockerfile'));
            return;
          }
          if (call.method === 'targets') {
            const list = await buildTargets(images, options);
            print(call.json ? `${JSON.stringify({ targets: list.targets.map(targetJson), sources: [Buffer.from(list.source).toString('base64')] }, null, 2)}\n` : targetsText(list.targets));
            return;
          }
          if (call.method === 'outline') {
            const outline = await buildOutline(images, options);
            print(call.json ? `${JSON.stringify(outlineJson(outline), null, 2)}\n` : outlineText(outline));
            return;
          }
          result = await build(images, options);
        } finally {
          for (const agent of started) agent.close();
          if (spooled !== undefined) rmSync(spooled, { force: true });
        }
        if (output !== undefined && output.format !== 'image') {
          const dest = stdoutArchive ?? output.dest;
          // Several platforms: each in a directory of its own, as buildx splits them.
          const split = output.platformSplit ?? result.platforms !== undefined;
          if (output.format === 'local' || output.format === 'tar') await images.exportFilesystem(result.target.digest, dest, { tar: output.format === 'tar', split });
          else {
            // Named in the archive as buildx names it: by the exporter's name= if given, else by the tags.
            const { compressLayers, exportImages, normalizeReference } = await import('@strata/images');
            const names = output.names.length > 0 ? output.names.map((name) => normalizeReference(name)) : result.names;
            // An OCI image's plain layers go gzip-compressed, as BuildKit's OCI exporter writes them (compression= choosing).
            const compression = output.format === 'docker' ? 'none' : (output.compression ?? 'gzip');
            await images.leases.with(async (lease) => {
              const target = compression === 'none' ? result.target : await compressLayers(images.content, result.target, compression, lease.id);
              const named = names.length > 0 ? names.map((name) => ({ name, target })) : [{ name: undefined, target }];
              await exportImages(images.content, named, dest, { format: output.format as 'oci' | 'oci-archive' | 'docker' });
            });
          }
        }
        let pushed: PushResult | undefined;
        if (push) {
          for (const name of result.names) {
            pushed = await pushTo(name);
            if (!o.quiet) process.stderr.write(pushedLine(pushed));
          }
        }
        if (o.iidfile !== undefined) writeFileSync(o.iidfile, result.target.digest);
        if (o.metadataFile !== undefined) writeFileSync(o.metadataFile, `${JSON.stringify(buildMetadata(images, result, pushed), null, 2)}\n`);
        const stderr = (text: string) => process.stderr.write(text);
        if (o.quiet) (toStdout ? stderr : print)(`${result.target.digest}\n`);
        else {
          const to = o.progress === 'json' || toStdout ? stderr : print;
          to(`Built ${result.target.digest}${result.names.length ? ` as ${result.names.map(sanitize).join(', ')}` : ' (dangling)'}: ${result.ran} step(s) ran, ${result.cached} cached\n`);
          showChecks(result.checks);
        }
      }),
    );

  const cache = buildCommand.command('cache').description('the build cache');
  cache
    .command('ls')
    .description('list build cache records, most recently used first')
    .option('--json', 'one JSON object per line')
    .action((o: { json?: boolean }, command: Command) =>
      withImages(command, async (images) => {
        const { BuildCache } = await import('@strata/build');
        const cache = new BuildCache(images);
        const records = cache.list();
        const sizes = await cache.sizes(records);
        if (o.json) {
          for (const r of records) print(`${JSON.stringify({ key: r.key, step: r.step, snapshot: r.snapshot, layer: r.layer.digest, diffID: r.layer.diffID, size: sizes.get(r.key), layerSize: r.layer.size, created: new Date(r.created).toISOString(), used: new Date(r.used).toISOString() })}\n`);
          return;
        }
        const rows = [['KEY', 'SIZE', 'LAST USED', 'STEP']];
        for (const r of records) rows.push([r.key.slice(0, 12), humanBytes(sizes.get(r.key)!), new Date(r.used).toISOString(), sanitize(r.step.length > 60 ? `${r.step.slice(0, 57)}...` : r.step)]);
        print(table(rows));
      }),
    );
  cache
    .command('prune')
    .description('delete build cache records (all, those unused for a while, or the least recently used beyond a size) and collect what only they held')
    .option('--filter <filter>', 'until=<time>: only records and cache mounts unused since then (24h, Unix seconds, a date; repeatable)', collect)
    .option('--older-than <hours>', 'only records and cache mounts not used for this many hours')
    .option('--keep-storage, --max-used-space <size>', 'delete the least recently used records and cache mounts only until what is left takes this much (bytes, or with k, m, g)')
    .option('--reserved-space <size>', 'never prune the cache below this much')
    .option('--min-free-space <size>', 'prune until the file system of the root has this much free')
    .action((o: { filter?: string[]; olderThan?: string; maxUsedSpace?: string; reservedSpace?: string; minFreeSpace?: string }, command: Command) =>
      withImages(command, async (images) => {
        const { BuildCache } = await import('@strata/build');
        if (o.olderThan !== undefined && !/^\d+(\.\d+)?$/.test(o.olderThan)) throw new UsageError(`--older-than takes hours: ${o.olderThan}`);
        // Both given, the earlier time: a record must pass both.
        const times = [parseImageFilters(o.filter ?? [], ['until']).until, o.olderThan === undefined ? undefined : new Date(Date.now() - Number(o.olderThan) * 3600_000)].filter((t) => t !== undefined);
        const before = times.length > 0 ? new Date(Math.min(...times.map((t) => t.getTime()))) : undefined;
        const sizes = {
          ...(o.maxUsedSpace !== undefined ? { keepBytes: bytesOf('--keep-storage', o.maxUsedSpace) } : {}),
          ...(o.reservedSpace !== undefined ? { reservedSpace: bytesOf('--reserved-space', o.reservedSpace) } : {}),
          ...(o.minFreeSpace !== undefined ? { minFreeSpace: bytesOf('--min-free-space', o.minFreeSpace) } : {}),
        };
        const removed = await new BuildCache(images).prune({ ...(before ? { before } : {}), ...sizes });
        const gc = await images.gc();
        print(`Deleted ${removed.length} cache record(s); freed ${humanBytes(gc.bytes)} (${gc.blobs.length} blob(s), ${gc.snapshots.length} snapshot(s))\n`);
      }),
    );
}
