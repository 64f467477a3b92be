/**
 * ADD of a git repository, as BuildKit's Dockerfile frontend and git source read and fetch one:
 * `https://host/repo.git#ref:subdir`, `git://host/repo#ref`, `ssh://` and `git@host:org/repo.git` (through
 * the build's SSH agent `default`), or the query form
 * (`?ref=`, `?tag=`, `?branch=`, `?commit=` or `?checksum=`, `?subdir=`, `?keep-git-dir`, `?submodules=false`,
 * `?mtime=commit`). The ref is resolved to a commit with `git ls-remote` when the step is planned (that commit,
 * not the files, keys the step, so a cached step fetches nothing), and fetched (depth 1) and checked out only
 * when the step runs: without `.git` unless it is kept (then a repository with the commit checked out, its
 * remote's credentials left out), submodules included unless turned off, files at the time of the checkout
 * unless `mtime=commit`.
 *
 * git runs with the system's and the user's configuration ignored, no prompts, no hooks, a umask of 022 (the
 * modes BuildKit's checkouts have), and local-file and ssh transports refused (a submodule can neither read
 * the builder's files nor wait on a host key).
 */
import { spawn } from 'node:child_process';
import { lstatSync, lutimesSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DigestMismatchError, InvalidArgumentError, NotFoundError, UnavailableError, UnsupportedError } from '@strata/core';
import { redactUrls } from './remote.js';

/** A git source as the Dockerfile names it. */
export interface GitRef {
  /** The repository's URL, credentials included, fragment and query left out. */
  readonly remote: string;
  /** A branch, tag, `refs/…` name or full commit hash; `''` for the remote's default branch. */
  readonly ref: string;
  /** A directory of the repository whose contents are added; `''` for all of it. */
  readonly subdir: string;
  /** The commit (or a prefix of it) the ref must resolve to. */
  readonly checksum?: string;
  readonly keepGitDir: boolean;
  readonly submodules: boolean;
  /** `commit`: every file at the commit's time, where the default leaves the time of the checkout. */
  readonly mtime: 'checkout' | 'commit';
  /** Whether the remote is reached over ssh (`ssh://`, `user@host:path`): through the build's SSH agent. */
  readonly ssh: boolean;
}

/** Where and how git runs for one source. */
export interface GitRun {
  /** A scratch directory: git's home. */
  readonly home: string;
  /** An SSH agent's socket, for an ssh remote. */
  readonly sshAgent?: string;
  readonly signal?: AbortSignal;
}

/** What the ref resolved to. */
export interface ResolvedGit {
  readonly commit: string;
  /** The ref fetched: `refs/heads/…`, `refs/tags/…`, or the commit itself. */
  readonly fetchRef: string;
}

const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * Whether an ADD source names a git repository, by BuildKit's rule: an http or https URL whose path ends
 * in `.git`, any `git://` or `ssh://` URL, or an scp-style `user@host:path`.
 */
export function isGitSource(source: string): boolean {
  const scheme = /^([a-z0-9]+):\/\//i.exec(source)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') return /\.git$/i.test(source.replace(/[?#].*$/s, ''));
  if (scheme === 'git' || scheme === 'ssh') return true;
  return scheme === undefined && /^[a-z0-9_-]+@[a-z0-9.-]+:/i.test(source);
}

function flag(name: string, value: string | null): boolean {
  if (value === null || value === '' || /^(1|t|true)$/i.test(value)) return true;
  if (/^(0|f|false)$/i.test(value)) return false;
  throw new InvalidArgumentError(`invalid ${name} value: ${JSON.stringify(value)}`);
}

/** Reads a git source (see the module's comment). Throws INVALID_ARGUMENT for conflicting or unknown parts. */
export function parseGitRef(source: string): GitRef {
  const hash = source.indexOf('#');
  const fragment = hash < 0 ? '' : source.slice(hash + 1);
  const beforeFragment = hash < 0 ? source : source.slice(0, hash);
  // An scp-style remote (`git@host:org/repo.git`) is no URL: its query, if any, is split off by hand.
  const scp = /^[a-z0-9_-]+@[a-z0-9.-]+:/i.test(beforeFragment) && !/^[a-z0-9]+:\/\//i.test(beforeFragment);
  const questionMark = beforeFragment.indexOf('?');
  const query = new URLSearchParams(scp ? (questionMark < 0 ? '' : beforeFragment.slice(questionMark)) : new URL(beforeFragment).search);
  let remote: string;
  if (scp) remote = questionMark < 0 ? beforeFragment : beforeFragment.slice(0, questionMark);
  else {
    const url = new URL(beforeFragment);
    url.search = '';
    remote = url.href;
  }
  const ssh = scp || /^ssh:\/\//i.test(source);
  let [ref = '', subdir = ''] = fragment === '' ? [] : [fragment.slice(0, fragment.includes(':') ? fragment.indexOf(':') : undefined), fragment.includes(':') ? fragment.slice(fragment.indexOf(':') + 1) : ''];
  let checksum: string | undefined;
  let keepGitDir = false;
  let submodules = true;
  let mtime: GitRef['mtime'] = 'checkout';
  let tag: string | undefined;
  let branch: string | undefined;
  for (const key of new Set(query.keys())) {
    const values = query.getAll(key);
    if (values.length > 1) throw new InvalidArgumentError(`query ${JSON.stringify(key)} has multiple values`);
    const value = values[0]!;
    const valueless = ['keep-git-dir', 'submodules'];
    if (value === '' && !valueless.includes(key)) throw new InvalidArgumentError(`query ${JSON.stringify(key)} has no value`);
    switch (key) {
      case 'ref':
        if (ref !== '' && ref !== value) throw new InvalidArgumentError(`ref conflicts: ${JSON.stringify(ref)} vs ${JSON.stringify(value)}`);
        ref = value;
        break;
      case 'tag':
        tag = value;
        break;
      case 'branch':
        branch = value;
        break;
      case 'subdir':
        if (subdir !== '' && subdir !== value) throw new InvalidArgumentError(`subdir conflicts: ${JSON.stringify(subdir)} vs ${JSON.stringify(value)}`);
        subdir = value;
        break;
      case 'checksum':
      case 'commit':
        checksum = value;
        break;
      case 'keep-git-dir':
        keepGitDir = flag(key, value);
        break;
      case 'submodules':
        submodules = flag(key, value);
        break;
      case 'mtime':
        if (value !== 'checkout' && value !== 'commit') throw new InvalidArgumentError(`invalid mtime value: ${JSON.stringify(value)} (must be "checkout" or "commit")`);
        mtime = value;
        break;
      default:
        throw new InvalidArgumentError(`unexpected query ${JSON.stringify(key)}`);
    }
  }
  if (tag !== undefined && branch !== undefined) throw new InvalidArgumentError('branch conflicts with tag');
  for (const [named, prefix] of [[tag, 'refs/tags/'], [branch, 'refs/heads/']] as const) {
    if (named === undefined) continue;
    const full = named.startsWith(prefix) ? named : prefix + named;
    if (ref !== '' && ref !== full) throw new InvalidArgumentError(`ref conflicts: ${JSON.stringify(ref)} vs ${JSON.stringify(full)}`);
    ref = full;
  }
  if (ref.startsWith('-')) throw new InvalidArgumentError(`invalid ref ${JSON.stringify(ref)}`);
  const cleaned = subdir.split('/').filter((p) => p !== '' && p !== '.');
  if (cleaned.includes('..')) throw new InvalidArgumentError(`subdir ${JSON.stringify(subdir)} leaves the repository`);
  return { remote, ref, subdir: cleaned.join('/'), ...(checksum !== undefined ? { checksum } : {}), keepGitDir, submodules, mtime, ssh };
}

/**
 * The environment git runs in: the caller's PATH and proxies, nothing of its configuration; for an ssh
 * remote, the agent's socket and an ssh that reads no configuration, never prompts, and takes the host's key
 * as it comes (as BuildKit's git source does without known hosts).
 */
function gitEnv(run: GitRun): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: run.home, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false', LC_ALL: 'C' };
  for (const name of ['http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY', 'all_proxy']) if (process.env[name] !== undefined) env[name] = process.env[name];
  if (run.sshAgent !== undefined) {
    env.SSH_AUTH_SOCK = run.sshAgent;
    env.GIT_SSH_COMMAND = 'ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR';
  }
  return env;
}

/**
 * Runs git (umask 022; file transports refused); its output, or UNAVAILABLE with its message, credentials
 * hidden. A shallow fetch the remote cannot serve (a dumb http server) is made again whole, as BuildKit does.
 */
async function git(args: readonly string[], run: GitRun): Promise<string> {
  try {
    return await runGit(args, run);
  } catch (error) {
    if (!args.includes('--depth=1') || !(error instanceof UnavailableError) || !/--depth|shallow/.test(error.message)) throw error;
    return runGit(args.filter((a) => a !== '--depth=1'), run);
  }
}

function runGit(args: readonly string[], run: GitRun): Promise<string> {
  // ssh only with an agent to answer for it (else it could only fail, or wait).
  const ssh = run.sshAgent === undefined ? 'never' : 'always';
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `umask 022 && exec git -c protocol.file.allow=never -c protocol.ssh.allow=${ssh} -c core.hooksPath=/dev/null "$@"`, 'git', ...args], { env: gitEnv(run), stdio: ['ignore', 'pipe', 'pipe'], ...(run.signal ? { signal: run.signal } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (error) => reject((error as NodeJS.ErrnoException).code === 'ENOENT' ? new UnsupportedError('ADD of a git repository needs git (apt-get install git)') : error));
    child.on('close', (code) => {
      if (code === 0) return resolve(Buffer.concat(out).toString());
      // Named by its command (the first bare word: options, paths and URLs are not).
      const command = args.find((a) => /^[a-z][a-z-]+$/.test(a)) ?? '';
      const message = `git ${command} failed: ${redactUrls(Buffer.concat(err).toString().trim())}`;
      reject(/repository '.*' not found/.test(message) ? new NotFoundError(message) : new UnavailableError(message));
    });
  });
}

/**
 * The commit `ref` names on the remote, as BuildKit resolves it: a full commit hash is taken as it is;
 * otherwise a branch wins over a tag of the same name, an annotated tag's commit is what `checksum` may
 * match. Throws NOT_FOUND for a ref the remote lacks, DIGEST_MISMATCH for a commit that is not `checksum`'s,
 * INVALID_ARGUMENT for a checksum that is no hex, UNAVAILABLE when the remote cannot be reached.
 */
export async function resolveGit(ref: GitRef, run: GitRun): Promise<ResolvedGit> {
  if (ref.checksum !== undefined && !/^[0-9a-f]+$/i.test(ref.checksum)) throw new InvalidArgumentError(`invalid checksum ${ref.checksum} for Git URL, expected hex commit hash`);
  const checksum = ref.checksum?.toLowerCase();
  if (COMMIT.test(ref.ref)) {
    if (checksum !== undefined && !ref.ref.startsWith(checksum)) throw new DigestMismatchError(`expected checksum to match ${checksum}, got ${ref.ref}`);
    return { commit: ref.ref, fetchRef: ref.ref };
  }
  let name = ref.ref;
  if (name === '') {
    const head = await git(['ls-remote', '--symref', '--', ref.remote, 'HEAD'], run);
    name = /^ref: (\S+)\tHEAD$/m.exec(head)?.[1] ?? '';
    if (name === '') throw new NotFoundError(`${redactUrls(ref.remote)} names no default branch`);
  }
  const listed = await git(['ls-remote', '--', ref.remote, name, `${name}^{}`], run);
  const bare = name.replace(/^refs\/(heads\/|tags\/)?/, '');
  const partial = `refs/${name.replace(/^refs\//, '')}`;
  const wanted = { partial, head: `refs/heads/${bare}`, tag: `refs/tags/${bare}` };
  let sha = '';
  let used = '';
  let headSha = '';
  let tagSha = '';
  let peeled = '';
  for (const line of listed.split('\n')) {
    const [lineSha = '', lineRef = ''] = line.split('\t');
    if (lineRef === wanted.head) headSha = lineSha;
    if (lineRef === wanted.tag) tagSha = lineSha;
    if (lineRef === `${wanted.tag}^{}`) peeled = lineSha;
    if (lineRef === partial) [sha, used] = [lineSha, lineRef];
  }
  if (sha === '' && headSha !== '') [sha, used] = [headSha, wanted.head];
  if (sha !== '' && used !== wanted.tag) peeled = '';
  if (sha === '' && tagSha !== '') [sha, used] = [tagSha, wanted.tag];
  if (sha === '') throw new NotFoundError(`repository does not contain ref ${name}`);
  if (!COMMIT.test(sha)) throw new UnavailableError(`invalid commit sha ${JSON.stringify(sha)} from ${redactUrls(ref.remote)}`);
  if (checksum !== undefined && !sha.startsWith(checksum) && !peeled.startsWith(checksum)) throw new DigestMismatchError(`expected checksum to match ${checksum}, got ${sha}${peeled ? ` or ${peeled}` : ''}`);
  // An annotated tag's own object is what the ref names; the commit it points at is what is checked out.
  return { commit: peeled || sha, fetchRef: used };
}

/**
 * Fetches `resolved` and checks it out into `tree` (an empty directory) under `home` (a scratch directory
 * for git's home and, unless `.git` is kept, its repository). The subdirectory, if any, is the caller's to
 * pick from `tree`.
 */
export async function checkoutGit(ref: GitRef, resolved: ResolvedGit, tree: string, run: GitRun): Promise<void> {
  const gitDir = ref.keepGitDir ? join(tree, '.git') : join(run.home, 'repository');
  const inRepo = ['--git-dir', gitDir, '--work-tree', tree];
  await git(['-c', 'init.defaultBranch=master', 'init', '--quiet', ...(ref.keepGitDir ? [tree] : ['--bare', gitDir])], run);
  // The ref is fetched under its own name, so a kept repository has the branch or tag as the remote does.
  const target = resolved.fetchRef === resolved.commit ? resolved.commit : `${resolved.fetchRef}:${resolved.fetchRef}`;
  await git([...inRepo, 'fetch', '--quiet', '--update-head-ok', '--depth=1', '--no-tags', '--', ref.remote, target], run);
  const fetched = (await git([...inRepo, 'rev-parse', 'FETCH_HEAD^{commit}'], run)).trim();
  if (fetched !== resolved.commit) throw new DigestMismatchError(`${redactUrls(ref.remote)} gave ${fetched} for ${resolved.fetchRef}, where it had listed ${resolved.commit} (it changed while the build ran: build again)`);
  if (ref.keepGitDir) {
    await git([...inRepo, 'checkout', '--quiet', resolved.commit], run);
    await git([...inRepo, 'remote', 'add', 'origin', stripCredentials(ref.remote)], run);
    await git([...inRepo, 'reflog', 'expire', '--all', '--expire=now'], run);
    await git([...inRepo, 'update-ref', '-d', 'FETCH_HEAD'], run).catch(() => '');
  } else {
    await git([...inRepo, 'checkout', '--quiet', '--no-overlay', resolved.commit, '--', '.'], run);
  }
  if (ref.submodules) await git([...inRepo, '-C', tree, 'submodule', 'update', '--quiet', '--init', '--recursive', '--depth=1'], run);
  if (ref.mtime === 'commit') {
    const seconds = Number((await git([...inRepo, 'log', '-1', '--format=%ct', resolved.commit], run)).trim());
    setTimes(tree, seconds);
  }
}

/** The URL without its user and password (what a kept repository records as its remote); an scp-style remote has none. */
export function stripCredentials(remote: string): string {
  if (!/^[a-z0-9]+:\/\//i.test(remote)) return remote;
  const url = new URL(remote);
  url.username = '';
  url.password = '';
  return url.href;
}

/** Every entry under `dir`, and `dir`, at `seconds` (symlinks themselves; directories after what they hold). */
function setTimes(dir: string, seconds: number): void {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (lstatSync(path).isDirectory()) setTimes(path, seconds);
    else lutimesSync(path, seconds, seconds);
  }
  lutimesSync(dir, seconds, seconds);
}

/**
 * A scratch directory for one git source, made empty, mode 0700: the tree to check out into, and how git
 * runs there (its home beside the tree, `sshAgent` for an ssh remote, `signal` to stop it).
 */
export function gitScratch(path: string, options: { readonly sshAgent?: string | undefined; readonly signal?: AbortSignal | undefined } = {}): { tree: string; run: GitRun } {
  mkdirSync(path, { mode: 0o700 });
  const home = join(path, 'home');
  const tree = join(path, 'tree');
  mkdirSync(home);
  mkdirSync(tree);
  return { tree, run: { home, ...(options.sshAgent !== undefined ? { sshAgent: options.sshAgent } : {}), ...(options.signal ? { signal: options.signal } : {}) } };
}
