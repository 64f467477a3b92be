/**
 * `RUN --mount`: what a step mounts besides its root, as BuildKit's Dockerfile frontend reads the flag
 * (comma-separated `key=value` fields, `type` first by convention, `bind` when absent). strata carries out
 * `cache` (a directory kept under the root across builds, by `id` and its `from`, never part of a layer),
 * `tmpfs` and `bind` (a path of the build context, `.dockerignore` applied, or of a stage or image: a
 * copy, shared read-only by the build's steps or the step's own where it can write, so writes with `rw`
 * are discarded; see bind-trees.ts), `secret` (a file, or a variable, of what the build was
 * given) and `ssh` (a socket forwarding to an SSH agent the build was given).
 */
import { posix } from 'node:path';
import { didYouMean, suggestName } from './suggest.js';

/**
 * A cache mount: the directory for `id`, created `mode`/`uid`/`gid`, shared as `sharing` says; with `from`
 * (a stage, image or named context), first filled with what its `source` directory holds, and kept apart
 * from the same id on another base, as BuildKit keys it. Without `from`, `source` is the directory of the
 * cache to mount, as BuildKit mounts a subpath of it.
 */
export interface CacheMount {
  readonly type: 'cache';
  /** Absolute in the container. */
  readonly target: string;
  readonly id: string;
  readonly from?: string;
  /** A directory of `from` (`.` for its root), or without `from` of the cache itself. */
  readonly source?: string;
  readonly sharing: 'shared' | 'private' | 'locked';
  readonly readonly: boolean;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/** A tmpfs over `target` for the step, `size` bytes at most (the kernel's default when undefined). */
export interface TmpfsMount {
  readonly type: 'tmpfs';
  readonly target: string;
  readonly size?: number;
}

/** A bind mount of `source` (relative, `.` for the root) of the context, or of stage or image `from`. */
export interface BindMount {
  readonly type: 'bind';
  readonly target: string;
  readonly source: string;
  readonly from?: string;
  readonly readwrite: boolean;
}

/** Something the build was given, by `id`, at `target` for the step with a mode and owner; optional unless `required`. */
interface GivenMount {
  readonly target: string | undefined;
  readonly id: string;
  readonly required: boolean;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/**
 * A secret the build was given (`secrets[id]`), as a read-only file at `target` (default
 * `/run/secrets/<id>`, none when only `env` is given), and as environment variable `env` (Dockerfile 1.10);
 * never in a layer, a key or the history. Absent: the step runs without it unless `required`.
 */
export interface SecretMount extends GivenMount {
  readonly type: 'secret';
  readonly env?: string;
}

/** An SSH mount's socket is always somewhere. */
type Placed<T> = Omit<T, 'target'> & { readonly target: string };

/**
 * An SSH agent the build was given (`ssh[id]`, default id `default`), as a socket at `target` (default
 * `/run/buildkit/ssh_agent.<n>`, n counting the step's ssh mounts) whose connections go to that agent.
 * Absent: the step runs without it unless `required`.
 */
export interface SshMount extends Placed<GivenMount> {
  readonly type: 'ssh';
}

export type RunMount = CacheMount | TmpfsMount | BindMount | SecretMount | SshMount;

const TYPES = new Set(['bind', 'cache', 'tmpfs', 'secret', 'ssh']);
const FIELDS: Readonly<Record<'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh', ReadonlySet<string>>> = {
  secret: new Set(['type', 'target', 'dst', 'destination', 'id', 'source', 'src', 'env', 'required', 'mode', 'uid', 'gid']),
  ssh: new Set(['type', 'target', 'dst', 'destination', 'id', 'required', 'mode', 'uid', 'gid']),
  bind: new Set(['type', 'target', 'dst', 'destination', 'source', 'src', 'from', 'ro', 'readonly', 'rw', 'readwrite']),
  cache: new Set(['type', 'target', 'dst', 'destination', 'id', 'sharing', 'ro', 'readonly', 'rw', 'readwrite', 'mode', 'uid', 'gid', 'from', 'source', 'src']),
  tmpfs: new Set(['type', 'target', 'dst', 'destination', 'size', 'tmpfs-size']),
};

/** Thrown for a mount that is malformed (the builder adds the line). */
export class MountError extends Error {}

/** `true`/`false` for a boolean field (`ro` alone is true). */
function boolean(key: string, value: string | undefined): boolean {
  if (value === undefined || value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new MountError(`--mount ${key}=${JSON.stringify(value)} is not a boolean`);
}

function id(key: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) throw new MountError(`--mount ${key}=${JSON.stringify(value)} is not a numeric id`);
  return Number(value);
}

/** An octal mode field, or `fallback` when absent. */
function octal(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[0-7]{1,4}$/.test(value)) throw new MountError(`--mount mode=${JSON.stringify(value)} is not an octal mode`);
  return parseInt(value, 8);
}

/** A numeric id field (`uid`, `gid`), 0 when absent. */
const numeric = (fields: ReadonlyMap<string, string | undefined>, key: string): number => (fields.has(key) ? id(key, fields.get(key) ?? '') : 0);

/** A size with an optional binary suffix (`64m`, `1g`), as Docker reads `tmpfs-size`. */
function size(value: string): number {
  const match = /^(\d+)([kmg]?)b?$/i.exec(value);
  if (!match) throw new MountError(`--mount size=${JSON.stringify(value)} is not a size`);
  return Number(match[1]) * 1024 ** ' kmg'.indexOf((match[2] || ' ').toLowerCase());
}

/**
 * The `from` fields of a `--mount` value as written (one, unless it is given twice): the stage or image a
 * bind or cache mount reads, which takes no variables (`checkMountFrom`), while the other fields may use the
 * stage's.
 */
export function mountFroms(spec: string): string[] {
  const out: string[] = [];
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq >= 0 && part.slice(0, eq).trim().toLowerCase() === 'from') out.push(part.slice(eq + 1));
  }
  return out;
}

/**
 * One `--mount` value, its variables already expanded, for a step whose working directory is `cwd` (a
 * relative target is below it, as BuildKit resolves it); `sshBefore` counts the step's ssh mounts before
 * this one (their default targets are numbered). Throws MountError for what is malformed.
 */
export function parseRunMount(spec: string, cwd: string, sshBefore = 0): RunMount {
  const fields = new Map<string, string | undefined>();
  for (const part of spec.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (fields.has(key)) throw new MountError(`--mount ${key} given twice`);
    fields.set(key, eq < 0 ? undefined : part.slice(eq + 1));
  }
  const named = fields.get('type') ?? 'bind';
  if (!TYPES.has(named)) throw new MountError(`--mount type=${JSON.stringify(named)} is not a mount type (bind, cache, tmpfs, secret, ssh)${didYouMean(suggestName(named, TYPES))}`);
  const type = named as keyof typeof FIELDS;
  for (const key of fields.keys()) if (!FIELDS[type].has(key)) throw new MountError(`--mount type=${type} takes no ${key}${didYouMean(suggestName(key, FIELDS[type]))}`);
  const targets = ['target', 'dst', 'destination'].filter((k) => fields.has(k));
  if (type === 'ssh') {
    if (targets.length > 1) throw new MountError('--mount type=ssh takes one target');
    const given = targets.length === 1 ? fields.get(targets[0]!) : undefined;
    const target = given ? posix.resolve(cwd, given) : `/run/buildkit/ssh_agent.${sshBefore}`;
    if (target === '/') throw new MountError('--mount type=ssh cannot be mounted over /');
    const required = fields.has('required') ? boolean('required', fields.get('required')) : false;
    return { type, target, id: fields.get('id') || 'default', required, mode: octal(fields.get('mode'), 0o600), uid: numeric(fields, 'uid'), gid: numeric(fields, 'gid') };
  }
  if (type === 'secret') {
    if (targets.length > 1) throw new MountError('--mount type=secret takes one target');
    const given = targets.length === 1 ? fields.get(targets[0]!) : undefined;
    // `source` names the secret as `id` does (BuildKit takes either, not both).
    const source = fields.get('source') ?? fields.get('src');
    if (fields.has('source') && fields.has('src')) throw new MountError('--mount source given twice');
    if (source && fields.get('id')) throw new MountError('--mount type=secret takes an id or a source, not both');
    const secretId = source || fields.get('id') || (given ? posix.basename(given) : '');
    if (secretId === '' || secretId.includes('/')) throw new MountError('--mount type=secret needs an id (or a target to take it from)');
    const env = fields.get('env');
    if (fields.has('env') && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env ?? '')) throw new MountError(`--mount env=${JSON.stringify(env ?? '')} is not a variable's name`);
    // With env alone, no file: the secret is the variable's value only.
    const target = given ? posix.resolve(cwd, given) : env === undefined ? `/run/secrets/${secretId}` : undefined;
    if (target === '/') throw new MountError('--mount type=secret cannot be mounted over /');
    const mode = octal(fields.get('mode'), 0o400);
    return { type, target, id: secretId, ...(env !== undefined ? { env } : {}), required: fields.has('required') ? boolean('required', fields.get('required')) : false, mode, uid: numeric(fields, 'uid'), gid: numeric(fields, 'gid') };
  }
  if (targets.length !== 1 || !fields.get(targets[0]!)) throw new MountError(`--mount type=${type} needs one target`);
  const target = posix.resolve(cwd, fields.get(targets[0]!)!);
  if (target === '/') throw new MountError(`--mount type=${type} cannot be mounted over /`);
  if (type === 'tmpfs') {
    const limit = fields.get('size') ?? fields.get('tmpfs-size');
    return { type, target, ...(limit === undefined ? {} : { size: size(limit) }) };
  }
  const writable = (fallback: boolean): boolean =>
    fields.has('ro') ? !boolean('ro', fields.get('ro')) : fields.has('readonly') ? !boolean('readonly', fields.get('readonly')) : fields.has('rw') ? boolean('rw', fields.get('rw')) : fields.has('readwrite') ? boolean('readwrite', fields.get('readwrite')) : fallback;
  if (type === 'bind') {
    const source = fields.get('source') ?? fields.get('src') ?? '.';
    if (fields.has('source') && fields.has('src')) throw new MountError('--mount source given twice');
    const from = fields.get('from');
    if (fields.has('from') && !from) throw new MountError('--mount from needs a stage or an image');
    return { type, target, source: source || '.', ...(from === undefined ? {} : { from }), readwrite: writable(false) };
  }
  if (fields.has('source') && fields.has('src')) throw new MountError('--mount source given twice');
  const from = fields.get('from');
  const source = fields.get('source') ?? fields.get('src');
  if (fields.has('from') && !from) throw new MountError('--mount from needs a stage or an image');
  const sharing = fields.get('sharing') ?? 'shared';
  if (sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked') throw new MountError(`--mount sharing=${JSON.stringify(sharing)} is not shared, private or locked`);
  const base = from === undefined ? (source ? { source } : {}) : { from, source: source || '.' };
  return { type, target, id: fields.get('id') || target, ...base, sharing, readonly: !writable(true), mode: octal(fields.get('mode'), 0o755), uid: numeric(fields, 'uid'), gid: numeric(fields, 'gid') };
}
