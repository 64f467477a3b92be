/**
 * Where credentials come from: strata's own login file (`strata login`), then the user's Docker config
 * (`~/.docker/config.json`: `auths`, `credHelpers`, `credsStore`, the `docker-credential-*` helper
 * protocol). Secrets are never printed, logged or put into an error message; the login file is written
 * with mode 0600, whole or not at all.
 */
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, UnauthenticatedError, quote } from '@strata/core';

/** What a registry is told. */
export interface Credentials {
  readonly username?: string;
  readonly password?: string;
  /** An OAuth2 refresh token (Docker's `identitytoken`), used instead of a password for bearer tokens. */
  readonly identityToken?: string;
}

/** A credentials lookup by registry host (`registry.example.com:5000`, `docker.io`). */
export type CredentialSource = (host: string) => Promise<Credentials | undefined>;

interface AuthEntry {
  auth?: string | null;
  username?: string | null;
  password?: string | null;
  identitytoken?: string | null;
}

/** What strata reads of a config file (null, as in Go, stands for absent). */
interface ConfigFile {
  auths?: Record<string, AuthEntry | null> | null;
  credHelpers?: Record<string, string> | null;
  credsStore?: string | null;
}

/** The hosts Docker files Docker Hub's credentials under. */
function aliases(host: string): string[] {
  if (host === 'docker.io' || host === 'registry-1.docker.io' || host === 'index.docker.io') {
    return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];
  }
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`];
}

function fromEntry(entry: AuthEntry | null | undefined): Credentials | undefined {
  if (entry === undefined || entry === null) return undefined;
  if (entry.identitytoken) return { identityToken: entry.identitytoken, ...(entry.username ? { username: entry.username } : {}) };
  if (typeof entry.username === 'string' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return undefined;
}

/**
 * A config file, or undefined when there is none or it is broken: not JSON, or a field strata reads of the
 * wrong type (Docker's CLI, whose typed decoding fails on either, warns and goes on without the file). Its
 * contents are not repeated anywhere.
 */
function readConfig(path: string): ConfigFile | undefined {
  if (!existsSync(path)) return undefined;
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  return isConfigFile(config) ? config : undefined;
}

/** strata's login file, to change it: none is empty, a broken one is refused rather than replaced (it may hold other logins). */
function readLoginFile(path: string): ConfigFile {
  const config = readConfig(path);
  if (config === undefined && existsSync(path)) throw new FailedPreconditionError(`the login file ${quote(path)} is not one strata can read (not JSON, or a field of the wrong type): mend or remove it`);
  return config ?? {};
}

function isConfigFile(value: unknown): value is ConfigFile {
  if (!isRecord(value)) return false;
  const { auths, credHelpers, credsStore } = value;
  const entryOk = (entry: unknown) => entry === null || (isRecord(entry) && ['auth', 'username', 'password', 'identitytoken'].every((k) => entry[k] === undefined || entry[k] === null || typeof entry[k] === 'string'));
  return (
    (auths === undefined || auths === null || (isRecord(auths) && Object.values(auths).every(entryOk))) &&
    (credHelpers === undefined || credHelpers === null || (isRecord(credHelpers) && Object.values(credHelpers).every((h) => typeof h === 'string'))) &&
    (credsStore === undefined || credsStore === null || typeof credsStore === 'string')
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Asks a `docker-credential-<helper>` for `host`'s credentials (the helper protocol's `get`). */
async function fromHelper(helper: string, host: string): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(helper)) return undefined;
  const output = await new Promise<string | undefined>((resolve) => {
    const child = execFile(`docker-credential-${helper}`, ['get'], { timeout: 30_000, maxBuffer: 64 * 1024 }, (error, stdout) => resolve(error ? undefined : stdout));
    child.stdin?.end(host);
  }); // undefined: not found, or the helper has nothing for this host
  if (output === undefined) return undefined;
  try {
    const { Username, Secret } = (JSON.parse(output) ?? {}) as { Username?: unknown; Secret?: unknown };
    if (typeof Secret !== 'string' || Secret === '') return undefined;
    return Username === '<token>' ? { identityToken: Secret } : { username: typeof Username === 'string' ? Username : '', password: Secret };
  } catch {
    return undefined;
  }
}

/** strata's login file: `$XDG_CONFIG_HOME/strata/auth.json`. */
export function defaultAuthFile(): string {
  return join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'strata', 'auth.json');
}

/** Docker's config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function defaultDockerConfig(): string {
  return join(process.env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json');
}

/** Credentials from strata's login file, then Docker's config and its helpers. */
export function credentialsFrom(files: { authFile?: string; dockerConfig?: string } = {}): CredentialSource {
  const authFile = files.authFile ?? defaultAuthFile();
  const dockerConfig = files.dockerConfig ?? defaultDockerConfig();
  return async (host) => {
    const own = readConfig(authFile);
    for (const key of aliases(host)) {
      const found = fromEntry(own?.auths?.[key]);
      if (found) return found;
    }
    const docker = readConfig(dockerConfig);
    if (docker === undefined) return undefined;
    const helper = aliases(host).map((key) => docker.credHelpers?.[key]).find((h) => h !== undefined);
    if (helper !== undefined) return fromHelper(helper, host);
    for (const key of aliases(host)) {
      const found = fromEntry(docker.auths?.[key]);
      if (found) return found;
    }
    return docker.credsStore ? fromHelper(docker.credsStore, host) : undefined;
  };
}

/** Records `host`'s credentials in strata's login file (mode 0600, replaced whole). */
export function saveLogin(host: string, credentials: { username: string; password: string }, authFile = defaultAuthFile()): void {
  if (credentials.username === '' || credentials.username.includes(':')) throw new InvalidArgumentError('a username is non-empty and holds no colon');
  if (credentials.password === '') throw new UnauthenticatedError(`no password given for ${quote(host)}`);
  const config = readLoginFile(authFile);
  const auths = { ...(config.auths ?? {}), [host]: { auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64') } };
  writePrivate(authFile, JSON.stringify({ ...config, auths }, null, 2));
}

/** Forgets `host`'s credentials; false when there were none. */
export function removeLogin(host: string, authFile = defaultAuthFile()): boolean {
  const config = readLoginFile(authFile);
  if (config.auths?.[host] === undefined) return false;
  const { [host]: _gone, ...auths } = config.auths;
  writePrivate(authFile, JSON.stringify({ ...config, auths }, null, 2));
  return true;
}

/**
 * Replaces the file at `path` whole (a new file renamed over it). A symlink there (a dotfiles manager's)
 * is followed, its target replaced and the link kept, as Docker's CLI saves its config; so is a dangling one.
 */
function writePrivate(path: string, text: string): void {
  let file = path;
  for (let hops = 0; hops < 40 && lstatSync(file, { throwIfNoEntry: false })?.isSymbolicLink(); hops++) file = resolve(dirname(file), readlinkSync(file));
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${text}\n`, { mode: 0o600 });
  renameSync(temp, file);
}
