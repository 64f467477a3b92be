/**
 * A build whose context is a git repository (`docker build https://host/repo.git#ref:dir`), as BuildKit's
 * frontend reads one: the repository fetched at the commit its ref names, once for every platform of the
 * build; its subdirectory (resolved inside the checkout) is the context, with no `.dockerignore` applied; the
 * Dockerfile is read from it (`dockerfile` naming a path in the context, `Dockerfile` by default), never
 * through a symlink leading out. The build arg `BUILDKIT_CONTEXT_KEEP_GIT_DIR` keeps the `.git` directory.
 * The checkout goes with the build, whatever its end.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '@strata/core';
import type { Images } from '@strata/images';
import type { BuildOptions } from './builder.js';
import { FileChecksums } from './checksums.js';
import { dockerfileNames, withPrefix } from './dockerfile.js';
import { checkoutGit, gitScratch, parseGitRef, resolveGit, type GitRef } from './git-source.js';
import { redactUrls } from './remote.js';
import { ContextTree, readFirstTreeFile, SourceError } from './sources.js';

/** What a git context gives the build: the checkout's directory, and the Dockerfile read from it. */
export interface GitContext {
  readonly dir: string;
  readonly dockerfileText: string;
}

/** Fetches the repository `options.context` names, hands `build` its checkout, then removes the checkout. */
export async function withGitContext<T>(images: Images, options: BuildOptions, build: (context: GitContext) => Promise<T>): Promise<T> {
  const prefix = `the build context ${redactUrls(options.context)}: `;
  let ref;
  try {
    ref = parseGitRef(options.context);
  } catch (error) {
    throw withPrefix(prefix, error);
  }
  const keep = options.buildArgs?.BUILDKIT_CONTEXT_KEEP_GIT_DIR;
  if (keep !== undefined && /^(1|t|true)$/i.test(keep)) ref = { ...ref, keepGitDir: true };
  const sshAgent = ref.ssh ? options.ssh?.default : undefined;
  if (ref.ssh && sshAgent === undefined) throw new FailedPreconditionError(`${prefix}an ssh remote needs the build's SSH agent (strata build --ssh default)`);
  const checksums = new FileChecksums(images.root.metadata);
  const named = (error: unknown) => (error instanceof SourceError ? new InvalidArgumentError(`${prefix}${error.message}`) : withPrefix(prefix, error));
  const { dir, scratch } = await checkoutContext(images, ref, { sshAgent, signal: options.signal }, checksums, 'the repository').catch((error: unknown) => {
    throw named(error);
  });
  try {
    const dockerfile = options.dockerfile ?? 'Dockerfile';
    const text = options.dockerfileText ?? (await readFirstTreeFile(new ContextTree(dir, () => false, false, checksums), dockerfileNames(dockerfile)).catch((error: unknown) => {
      throw named(error);
    }));
    if (text === undefined) throw named(new InvalidArgumentError(`no Dockerfile ${JSON.stringify(dockerfile)} in the repository's context`));
    return await build({ dir, dockerfileText: text });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * The repository `ref` names, checked out at the commit its ref names (through `sshAgent` for an ssh remote)
 * into a scratch directory of the root's ingest area, and the directory its subdirectory resolves to inside
 * the checkout (a symlink leading out is a SourceError, labelled `label`). A failure leaves nothing behind;
 * after success the caller removes `scratch`.
 */
export async function checkoutContext(images: Images, ref: GitRef, options: { readonly sshAgent: string | undefined; readonly signal: AbortSignal | undefined }, checksums: FileChecksums, label: string): Promise<{ dir: string; scratch: string }> {
  const scratch = images.content.temporaryPath();
  const { tree, run } = gitScratch(scratch, options);
  try {
    await checkoutGit(ref, await resolveGit(ref, run), tree, run);
    const top = await new ContextTree(tree, () => false, false, checksums, label).resolve(ref.subdir);
    if (top?.type !== 'directory') throw new InvalidArgumentError(`${JSON.stringify(ref.subdir)} is not a directory of the repository`);
    return { dir: join(tree, top.path), scratch };
  } catch (error) {
    rmSync(scratch, { recursive: true, force: true });
    throw error;
  }
}
