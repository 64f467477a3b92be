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
import { withPrefix } from './dockerfile.js';
import { checkoutGit, gitScratch, parseGitRef, resolveGit } from './git-source.js';
import { redactUrls } from './remote.js';
import { ContextTree, readTreeFile, SourceError } from './sources.js';

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
  const scratch = images.content.temporaryPath();
  const { tree, run } = gitScratch(scratch, { sshAgent, signal: options.signal });
  try {
    const checksums = new FileChecksums(images.root.metadata);
    let context: GitContext;
    try {
      await checkoutGit(ref, await resolveGit(ref, run), tree, run);
      const checkout = new ContextTree(tree, () => false, false, checksums, 'the repository');
      const top = await checkout.resolve(ref.subdir);
      if (top?.type !== 'directory') throw new InvalidArgumentError(`${JSON.stringify(ref.subdir)} is not a directory of the repository`);
      const dir = join(tree, top.path);
      const dockerfile = options.dockerfile ?? 'Dockerfile';
      const text = options.dockerfileText ?? (await readTreeFile(new ContextTree(dir, () => false, false, checksums), dockerfile));
      if (text === undefined) throw new InvalidArgumentError(`no Dockerfile ${JSON.stringify(dockerfile)} in the repository's context`);
      context = { dir, dockerfileText: text };
    } catch (error) {
      throw error instanceof SourceError ? new InvalidArgumentError(`${prefix}${error.message}`) : withPrefix(prefix, error);
    }
    return await build(context);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
