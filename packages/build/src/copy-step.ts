/**
 * COPY and ADD: a step's sources selected (from the context, a stage, an image or a named context; URLs
 * fetched and here-documents written as BuildKit's frontend makes them; a git repository resolved to its
 * commit), the identity that keys the step, and the writing of the selection into the step's snapshot
 * (owners, modes, and the archives ADD extracts).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { posix } from 'node:path';
import { applyLayer, FailedPreconditionError, UnsupportedError, type IdMap, type WritableLayer } from '@strata/core';
import type { Images } from '@strata/images';
import { parseDownloadDigest } from '@strata/registry';
import type { BuildOptions, StepPlan } from './builder.js';
import type { FileChecksums } from './checksums.js';
import { parseChmod, type ModeChange } from './chmod.js';
import { CopySelection, headOf, type CopyOptions, type PickedSource, type SelectOptions } from './copy.js';
import { chompHeredoc, flagText, lineError, type Heredoc, type Instruction } from './dockerfile.js';
import { externalFormat, inflate } from './external-decompress.js';
import { checkoutGit, gitScratch, isGitSource, parseGitRef, resolveGit, stripCredentials, type GitRef } from './git-source.js';
import { expandHeredoc, processWord, splitRaw } from './lex.js';
import type { StageState } from './metadata.js';
import { isRemoteSource, isUrlSource, redactUrls } from './remote.js';
import { ContextTree, type SourceNode, type SourceTree } from './sources.js';
import { atLine, withLine } from './step-errors.js';
import { StepFiles } from './step-files.js';
import type { UrlRecords } from './url-records.js';
import { resolveUser } from './users.js';

/** `--chmod`: the change it makes, and what keys the step (an octal mode by its number). */
interface StepChmod {
  readonly change: ModeChange;
  readonly key: number | string;
}

/** What COPY and ADD take from the build; `S` is the build's stage, whose state they read. */
export interface CopyBuild<S> {
  readonly images: Images;
  readonly options: BuildOptions;
  /** The build context, as `.dockerignore` leaves it. */
  readonly context: SourceTree;
  readonly limits: { readonly maxEntries: number; readonly maxBytes: number };
  /** The Dockerfile's escape character. */
  readonly escape: string;
  readonly checksums: FileChecksums;
  /** What URLs gave before (their validators), to ask their servers whether they changed. */
  readonly urlRecords: UrlRecords;
  /** Without root: the caller's ids are root's in the build (see the builder). */
  readonly idMap: IdMap | undefined;
  /** The tree `--from` names (a stage, an image, a named context), whether its owners are kept, and what keys it. */
  fromTree(from: string, step: Instruction, stage: S): Promise<{ tree: SourceTree; identity: string; keepOwners: boolean }>;
}

/** The heredoc a COPY or ADD source word names (`<<NAME`, `<<-NAME`, quotes already removed), or undefined. */
function heredocWord(word: string): string | undefined {
  return /^<<-?(.+)$/.exec(word)?.[1];
}

/** COPY's and ADD's steps of one build. */
export class CopySteps<S extends { readonly state: StageState }> {
  readonly #build: CopyBuild<S>;

  constructor(build: CopyBuild<S>) {
    this.#build = build;
  }

  /** The step's plan: its sources selected (URLs fetched, documents written), what keys it, how it is written. */
  async plan(stage: S, step: Instruction): Promise<StepPlan> {
    const vars = stage.state.variables();
    const escape = this.#build.escape;
    // Each word is expanded on its own, as BuildKit expands COPY's (split first, then expanded): `${EMPTY}` is
    // an empty source (the context's root), and a value with spaces one path, never several.
    const words = (step.json ?? splitRaw(step.args, escape)).map((w) => processWord(w, vars, escape));
    if (words.length < 2) throw lineError(step.line, `${step.keyword} needs a source and a destination`);
    const sources = words.slice(0, -1);
    let dest = words.at(-1)!;
    const workdir = stage.state.config.WorkingDir || '/';
    // An empty destination is the workdir, as `.` is: BuildKit takes both for a directory.
    const dirLike = dest === '' || dest.endsWith('/') || dest === '.' || dest.endsWith('/.');
    dest = posix.resolve(workdir, dest);
    if (dirLike && dest !== '/') dest += '/';
    const flags = step.flags;
    let chmod: StepChmod | undefined;
    if (flags.chmod !== undefined) {
      const text = processWord(flags.chmod, vars, escape);
      try {
        // An octal mode keys the step by its number, as before symbolic modes were read.
        chmod = { change: parseChmod(text), key: /^\d/.test(text) ? parseInt(text, 8) : text };
      } catch (error) {
        throw lineError(step.line, `${step.keyword} ${(error as Error).message}`);
      }
    }
    const chown = flags.chown === undefined ? undefined : processWord(flags.chown, vars, escape);
    // BuildKit links only without --chmod (its merged copy has no mode to give): with it, a plain copy.
    const link = flags.link === 'true' && chmod === undefined;
    const select: SelectOptions = { ...(step.excludes ? { exclude: step.excludes } : {}), ...(flags.parents === 'true' ? { parents: true } : {}) };
    // ADD extracts local archives unless --unpack=false, and downloads only with --unpack (BuildKit's defaults).
    const unpack = flags.unpack === undefined ? undefined : flags.unpack === 'true';
    let tree: SourceTree = this.#build.context;
    let keepOwners = false;
    let fromIdentity = 'context';
    if (flags.from !== undefined) {
      ({ tree, identity: fromIdentity, keepOwners } = await this.#build.fromTree(flags.from, step, stage));
    }
    // Here-documents among the sources (`COPY <<EOF <<EOF2 /dest/`): each `<<NAME` word stands for the next one.
    const documents = new Map<number, Heredoc>();
    if (step.heredocs) {
      const pending = [...step.heredocs];
      if (heredocWord(words.at(-1)!) !== undefined) throw lineError(step.line, `${step.keyword} cannot take a heredoc as its destination`);
      sources.forEach((source, i) => {
        if (pending.length > 0 && heredocWord(source) === pending[0]!.name) documents.set(i, pending.shift()!);
      });
      if (pending.length > 0) throw lineError(step.line, `the heredoc ${pending[0]!.name} is not among the ${step.keyword}'s sources`);
      for (const { name } of documents.values()) if (name === '.' || name === '..' || name.includes('/')) throw lineError(step.line, `${JSON.stringify(name)} cannot name a heredoc's file`);
    }
    const gitSource = step.keyword === 'ADD' ? sources.find(isGitSource) : undefined;
    const remote = sources.find((s) => isRemoteSource(s) && (step.keyword === 'COPY' || (!isUrlSource(s) && !isGitSource(s))));
    if (remote !== undefined) {
      if (step.keyword === 'COPY') throw lineError(step.line, `COPY ${redactUrls(remote)}: COPY takes no URLs or repositories (ADD fetches them)`);
      throw lineError(step.line, `ADD ${redactUrls(remote)}: strata fetches http and https URLs and git repositories (https, http, git://), not other remotes`);
    }
    if (gitSource !== undefined) {
      if (sources.length !== 1 || documents.size > 0) throw lineError(step.line, `ADD ${redactUrls(gitSource)}: a git repository is to be ADD's only source`);
      const checksum = flags.checksum === undefined ? undefined : processWord(flags.checksum, vars, escape);
      const keepGitDir = flags['keep-git-dir'] === undefined ? undefined : flags['keep-git-dir'] === 'true';
      return this.#planGit(step, { source: gitSource, dest, chown, chmod, link, select, checksum, keepGitDir });
    }
    let digest: string | undefined;
    if (flags.checksum !== undefined) {
      digest = processWord(flags.checksum, vars, escape);
      try {
        parseDownloadDigest(digest);
      } catch (error) {
        throw lineError(step.line, `ADD --checksum: ${(error as Error).message}`);
      }
      if (sources.length !== 1) throw lineError(step.line, 'ADD --checksum takes one source (the URL the digest is of)');
      if (!isUrlSource(sources[0]!)) throw lineError(step.line, 'ADD --checksum is for URL sources only (a context file is checked by the cache already)');
    }
    const files = documents.size > 0 || sources.some(isUrlSource) ? new StepFiles(this.#build.images.content.temporaryPath(), this.#build.urlRecords) : undefined;
    try {
      // URLs are fetched first, as BuildKit resolves them, and documents written: their content is part of the
      // step's key.
      const picked: (string | PickedSource)[] = [];
      const fetchedTimes: (number | null)[] = [];
      for (const [i, source] of sources.entries()) {
        const document = documents.get(i);
        if (document !== undefined) {
          const body = document.chomp ? chompHeredoc(document.content) : document.content;
          picked.push(files!.write(document.name, document.quoted ? body : expandHeredoc(body, vars)));
        } else if (isUrlSource(source)) {
          const options = { maxBytes: this.#build.limits.maxBytes, ...(digest ? { digest } : {}), ...(this.#build.options.signal ? { signal: this.#build.options.signal } : {}), ...(unpack ? { needBytes: true } : {}) };
          const fetched = await files!.fetch(source, options).catch((error: unknown) => {
            throw withLine(step, error);
          });
          picked.push(unpack ? { ...fetched, extractable: true } : fetched);
          fetchedTimes.push(fetched.lastModified);
        } else picked.push(source);
      }
      // A URL enters the key by what it gave (its name and content, in the sum, and its Last-Modified, which
      // the file's time is), not by its text, as in BuildKit: a moved download of the same file still hits.
      const keySources = sources.map((s, i) => (!documents.has(i) && isUrlSource(s) ? 'url' : s));
      const plan = await this.#planSelection(step, { tree, written: sources, keySources, picked, dest, keepOwners, fromIdentity, chown, chmod, link, fetchedTimes, select, unpack });
      return { ...plan, ...(files ? { dispose: () => files.dispose() } : {}), ...(files?.unfetched ? { materialize: () => files.materialize() } : {}) };
    } catch (error) {
      files?.dispose();
      throw error;
    }
  }

  /** COPY and ADD once their URLs are fetched and documents written: the selection, its key and how it is written. */
  async #planSelection(
    step: Instruction,
    { tree, written, keySources, picked, dest, keepOwners, fromIdentity, chown, chmod, link, fetchedTimes, select, unpack }: { tree: SourceTree; written: string[]; keySources: string[]; picked: (string | PickedSource)[]; dest: string; keepOwners: boolean; fromIdentity: string; chown: string | undefined; chmod: StepChmod | undefined; link: boolean; fetchedTimes: (number | null)[]; select: SelectOptions; unpack: boolean | undefined },
  ): Promise<StepPlan> {
    const selection = await atLine(step, () => CopySelection.select(tree, picked, dest, this.#build.limits, select));
    const archives = step.keyword === 'ADD' && unpack !== false ? await atLine(step, () => selection.archives()) : [];
    const copyOptions = { keepOwners, ...(chmod ? { chmod: chmod.change } : {}), ...(this.#build.idMap ? { idMap: this.#build.idMap } : {}) };
    const sum = await atLine(step, () => selection.checksum(copyOptions)); // a file that changed kind since the listing
    // What is added is only there when given, so the steps of roots built before these flags keep their keys.
    const flagged = [...(select.parents ? ['parents'] : []), ...(select.exclude ? [['exclude', ...select.exclude]] : []), ...(unpack !== undefined ? [['unpack', unpack]] : [])];
    const identity = JSON.stringify([step.keyword, fromIdentity, keySources, dest, chown ?? null, chmod?.key ?? null, sum, ...(fetchedTimes.length > 0 ? [fetchedTimes] : []), ...(link ? ['link'] : []), ...flagged]);
    const history = redactUrls(`${step.keyword} ${flagText(step)}${written.join(' ')} ${dest}`);
    const execute = (key: string, _number: number, usersFrom: string = key) => this.#writeSelection(step, selection, key, usersFrom, { chown, chmod, keepOwners, extract: archives.length > 0 });
    return { identity, history, execute, ...(link ? { link } : {}) };
  }

  /** Writes a COPY's or ADD's selection into active snapshot `key`, `--chown` names looked up in `usersFrom`. */
  async #writeSelection(step: Instruction, selection: CopySelection, key: string, usersFrom: string, { chown, chmod, keepOwners, extract }: { chown: string | undefined; chmod: StepChmod | undefined; keepOwners: boolean; extract: boolean }): Promise<void> {
    const layer = await this.#build.images.snapshotter.open(key);
    let owner: CopyOptions['owner'];
    if (chown !== undefined) {
      try {
        const user = await resolveUser(usersFrom === key ? layer : await this.#build.images.snapshotter.open(usersFrom), chown, { chown: true });
        owner = { uid: user.uid, gid: user.gid };
      } catch (error) {
        throw lineError(step.line, `${step.keyword} --chown=${chown}: ${(error as Error).message}`);
      }
    }
    const madeDirMode = typeof chmod?.key === 'number' ? chmod.key & 0o777 : undefined;
    const options: CopyOptions = { keepOwners, ...(owner ? { owner } : {}), ...(chmod ? { chmod: chmod.change } : {}), ...(madeDirMode !== undefined ? { madeDirMode } : {}), ...(this.#build.idMap ? { idMap: this.#build.idMap } : {}) };
    try {
      const unpack = (from: SourceTree, node: SourceNode, target: string) =>
        this.#extract(layer, from, node, target, options).catch((error: unknown) => {
          throw withLine(step, error); // a corrupt archive found half way: the step's error, with its line
        });
      await atLine(step, () => selection.write(layer, options, extract ? unpack : undefined));
    } catch (error) {
      if (error instanceof UnsupportedError && this.#build.idMap) throw new UnsupportedError(`Dockerfile line ${step.line}: ${step.keyword}: ${error.message}`, { cause: error });
      throw error;
    }
  }

  /**
   * ADD of a git repository (its only source): the ref resolved now, its commit keying the step; fetched,
   * checked out and copied (root's, or --chown's) only when the step runs.
   */
  async #planGit(
    step: Instruction,
    { source, dest, chown, chmod, link, select, checksum, keepGitDir }: { source: string; dest: string; chown: string | undefined; chmod: StepChmod | undefined; link: boolean; select: SelectOptions; checksum: string | undefined; keepGitDir: boolean | undefined },
  ): Promise<StepPlan> {
    let ref: GitRef;
    try {
      ref = parseGitRef(source);
    } catch (error) {
      throw withLine(step, error);
    }
    if (keepGitDir !== undefined) {
      if (/[?&]keep-git-dir(=|&|$)/.test(source) && ref.keepGitDir !== keepGitDir) throw lineError(step.line, `ADD --keep-git-dir=${keepGitDir}: inconsistent with the URL's keep-git-dir`);
      ref = { ...ref, keepGitDir };
    }
    if (checksum !== undefined) {
      if (ref.checksum !== undefined && ref.checksum !== checksum) throw lineError(step.line, `ADD --checksum=${checksum}: checksum mismatch with the URL's ${JSON.stringify(ref.checksum)}`);
      ref = { ...ref, checksum };
    }
    // An ssh remote goes through the build's default SSH agent, as BuildKit's git source through the forwarded one.
    const sshAgent = ref.ssh ? this.#build.options.ssh?.default : undefined;
    if (ref.ssh && sshAgent === undefined) throw new FailedPreconditionError(`Dockerfile line ${step.line}: ADD ${redactUrls(source)}: an ssh remote needs the build's SSH agent (strata build --ssh default)`);
    const scratch = this.#build.images.content.temporaryPath();
    const { tree, run } = gitScratch(scratch, { sshAgent, signal: this.#build.options.signal });
    const dispose = () => rmSync(scratch, { recursive: true, force: true });
    try {
      const resolved = await resolveGit(ref, run).catch((error: unknown) => {
        throw withLine(step, error);
      });
      const flagged = [...(select.exclude ? [['exclude', ...select.exclude]] : []), ...(link ? ['link'] : [])];
      const identity = JSON.stringify(['ADD', 'git', stripCredentials(ref.remote), resolved.commit, ref.subdir, ref.keepGitDir, ref.submodules, ref.mtime, dest, chown ?? null, chmod?.key ?? null, ...flagged]);
      const history = redactUrls(`ADD ${flagText(step)}${source} ${dest}`);
      const execute = async (key: string, _number: number, usersFrom: string = key) => {
        await checkoutGit(ref, resolved, tree, run).catch((error: unknown) => {
          throw withLine(step, error);
        });
        const checkout = new ContextTree(tree, () => false, false, this.#build.checksums, 'the repository');
        const top = await atLine(step, () => checkout.resolve(ref.subdir));
        if (top?.type !== 'directory') throw lineError(step.line, `ADD ${redactUrls(source)}: ${JSON.stringify(ref.subdir)} is not a directory of the repository`);
        const selection = await atLine(step, () => CopySelection.select(checkout, [ref.subdir || '.'], dest, this.#build.limits, select));
        await this.#writeSelection(step, selection, key, usersFrom, { chown, chmod, keepOwners: false, extract: false });
      };
      return { identity, history, execute, dispose, ...(link ? { link } : {}) };
    } catch (error) {
      dispose();
      throw error;
    }
  }

  /** ADD of a tar archive (local, or a download under --unpack): extracted (its owners kept unless --chown) into the destination directory. */
  async #extract(layer: WritableLayer, tree: SourceTree, node: SourceNode, target: string, options: CopyOptions): Promise<void> {
    // In the root's file system, beside the layers it goes into (collection removes one a dead build left).
    const temp = this.#build.images.content.temporaryPath();
    mkdirSync(temp, { mode: 0o700 });
    try {
      // bzip2 and xz through the system's tools (core reads plain, gzip and zstd layers itself).
      const format = externalFormat(await headOf(tree, node, 16));
      // The build's limits hold for what an archive inflates to, as for what COPY selects (a bomb stops there).
      const applied = await applyLayer(format ? inflate(format, tree.read(node)) : tree.read(node), temp, {
        layout: 'plain',
        // Without root its device nodes are left out, as BuildKit's unpack leaves them out in a user namespace,
        // and its owners other than root are kept in owner records, which the copy below reads.
        devices: this.#build.idMap ? 'skip' : 'create',
        owners: this.#build.idMap ? 'xattr' : 'apply',
        maxEntries: this.#build.limits.maxEntries,
        maxTotalBytes: this.#build.limits.maxBytes,
        listImpliedDirectories: true,
      });
      // Without root a symlink's owner other than root is nowhere kept (it takes no owner record): unless
      // --chown replaces it, it is refused, never given to root.
      const foreign = options.owner === undefined ? applied.owners.find((o) => o.type === 'symlink') : undefined;
      if (foreign !== undefined) {
        throw new UnsupportedError(`${JSON.stringify(foreign.path)} in ${JSON.stringify(node.path)} belongs to ${foreign.uid}:${foreign.gid}, which a build without root cannot give to a symlink (give the files an owner with --chown)`);
      }
      const extracted = new ContextTree(temp, () => false, false, this.#build.checksums);
      const selection = await CopySelection.select(extracted, ['.'], `${target.replace(/\/+$/, '')}/`, this.#build.limits);
      // The archive's modes are kept: --chmod is for what ADD copies, not what it unpacks (as BuildKit's unpack).
      const { chmod: _chmod, ...kept } = options;
      await selection.write(layer, { ...kept, keepOwners: true, impliedDirectories: new Set(applied.impliedDirectories) });
    } finally {
      rmSync(temp, { recursive: true, force: true });
    }
  }
}
