/**
 * Named contexts (`docker buildx build --build-context NAME=VALUE`), the kinds buildx takes: what each name
 * stands for, and the files or image behind it, fetched or imported on first use and removed when the build
 * ends. A directory and a git repository are trees (their files root's, as buildx sends every local
 * directory); so is an http(s) URL that is no repository, as BuildKit's frontend makes one: the one file it
 * downloads, named `context` (mode 0600, at its `Last-Modified` or the epoch, never extracted).
 * `docker-image://REF` and `oci-layout://PATH[:TAG][@DIGEST]` are images.
 */
import { chmodSync, mkdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, quote } from '@strata/core';
import { formatPlatform, type Images, type Platform } from '@strata/images';
import { download } from '@strata/registry';
import type { FileChecksums } from './checksums.js';
import { withPrefix } from './dockerfile.js';
import { isGitSource, parseGitRef, type GitRef } from './git-source.js';
import { checkoutContext } from './git-context.js';
import { redactUrls } from './remote.js';
import { contextTree, ContextTree, SourceError } from './sources.js';

/** An `oci-layout://` context: a layout directory, and the image in it by digest or tag. */
interface LayoutContext {
  readonly dir: string;
  readonly digest?: string;
  readonly tag?: string;
}

type NamedContext = { readonly image: string } | { readonly scratch: true } | { readonly tree: ContextTree } | { readonly git: GitRef } | { readonly url: string } | { readonly layout: LayoutContext };

/**
 * What fetching a context takes from the build: its SSH agents (`default` for ssh remotes), the most bytes
 * a download may bring (the build's byte limit), its abort.
 */
export interface NamedContextOptions {
  readonly ssh?: Readonly<Record<string, string>>;
  readonly maxBytes: number;
  readonly signal?: AbortSignal;
}

export class NamedContexts {
  readonly #named = new Map<string, NamedContext>();
  /** Git contexts' checkouts and URL contexts' downloads, by name: made on first use, removed by `dispose`. */
  readonly #fetched = new Map<string, Promise<{ tree: ContextTree; scratch: string }>>();
  /** Layout contexts' images, imported on first use (by name and platform): their digests. */
  readonly #layoutImages = new Map<string, Promise<string>>();
  readonly #images: Images;
  readonly #checksums: FileChecksums;
  readonly #options: NamedContextOptions;

  /** Reads `contexts` (name → value). Throws INVALID_ARGUMENT for a value of no kind strata takes. */
  constructor(contexts: Readonly<Record<string, string>>, images: Images, checksums: FileChecksums, options: NamedContextOptions) {
    this.#images = images;
    this.#checksums = checksums;
    this.#options = options;
    for (const [name, value] of Object.entries(contexts)) {
      const image = /^docker-image:\/\/(.+)$/.exec(value)?.[1];
      const layout = /^oci-layout:\/\/(.+)$/.exec(value)?.[1];
      // `docker-image://scratch` is the empty image, as in FROM; nothing to pull (BuildKit's named contexts).
      if (image === 'scratch') this.#named.set(name, { scratch: true });
      else if (image !== undefined) this.#named.set(name, { image });
      else if (layout !== undefined) this.#named.set(name, { layout: parseLayoutContext(name, layout) });
      else if (isGitSource(value)) {
        try {
          this.#named.set(name, { git: parseGitRef(value) });
        } catch (error) {
          throw withPrefix(`the named context ${JSON.stringify(name)}: `, error);
        }
      } else if (/^https?:\/\//i.test(value)) {
        this.#named.set(name, { url: value });
      } else if (statSync(value, { throwIfNoEntry: false })?.isDirectory()) {
        this.#named.set(name, { tree: contextTree(value, [join(value, '.dockerignore')], checksums, `context ${JSON.stringify(name)}`) });
      } else {
        throw new InvalidArgumentError(`the named context ${JSON.stringify(name)} is neither docker-image://REF, oci-layout://PATH, a git repository, an http(s) URL nor a directory: ${redactUrls(value)}`);
      }
    }
  }

  has(name: string): boolean {
    return this.#named.has(name);
  }

  /** Whether `name` is a context of files (a directory, a git repository or a URL's file), not an image. */
  isTree(name: string): boolean {
    const named = this.#named.get(name);
    return named !== undefined && ('tree' in named || 'git' in named || 'url' in named);
  }

  /** Whether `name` is `docker-image://scratch`: a stage on it starts empty. */
  isScratch(name: string): boolean {
    const named = this.#named.get(name);
    return named !== undefined && 'scratch' in named;
  }

  /** The reference a `docker-image://` context names; undefined for other kinds and other names. */
  imageReference(name: string): string | undefined {
    const named = this.#named.get(name);
    return named !== undefined && 'image' in named ? named.image : undefined;
  }

  /** A context's files (`isTree`), a git repository's or a URL's fetched on first use; undefined for other names. */
  async tree(name: string, line: number): Promise<ContextTree | undefined> {
    const named = this.#named.get(name);
    if (named === undefined) return undefined;
    if ('tree' in named) return named.tree;
    if ('git' in named) return (await this.#gitCheckout(name, named.git, line)).tree;
    if ('url' in named) return (await this.#urlDownload(name, named.url, line)).tree;
    return undefined;
  }

  /**
   * The digest of an `oci-layout://` context's image for `platform`, imported from the layout on first
   * use without a name, as BuildKit keeps a layout's content in its own store; undefined for other names.
   */
  async layoutImage(name: string, platform: Platform, line: number): Promise<string | undefined> {
    const named = this.#named.get(name);
    if (named === undefined || !('layout' in named)) return undefined;
    const once = `${name}\0${formatPlatform(platform)}`;
    let imported = this.#layoutImages.get(once);
    if (imported === undefined) {
      const { dir, ...pick } = named.layout;
      imported = this.#images.import(dir, { pick, platform: { platform }, ...(this.#options.signal ? { signal: this.#options.signal } : {}) }).then(
        (result) => result.images[0]!.target.digest,
        (error: unknown) => {
          throw withPrefix(`Dockerfile line ${line}: the named context ${JSON.stringify(name)}: `, error);
        },
      );
      this.#layoutImages.set(once, imported);
    }
    return imported;
  }

  /** Removes the git checkouts and the downloads. */
  async dispose(): Promise<void> {
    for (const fetched of this.#fetched.values()) await fetched.then(({ scratch }) => rmSync(scratch, { recursive: true, force: true }), () => {});
  }

  /**
   * A git context's checkout: the repository fetched at the commit its ref names (through the build's
   * default SSH agent for an ssh remote, as ADD fetches one), its subdirectory if the ref names one; once a
   * build, whatever steps read it. A failed fetch leaves nothing behind.
   */
  #gitCheckout(name: string, ref: GitRef, line: number): Promise<{ tree: ContextTree; scratch: string }> {
    let checkout = this.#fetched.get(name);
    if (checkout === undefined) {
      checkout = (async () => {
        const sshAgent = ref.ssh ? this.#options.ssh?.default : undefined;
        if (ref.ssh && sshAgent === undefined) throw new FailedPreconditionError(`Dockerfile line ${line}: the named context ${JSON.stringify(name)} is an ssh remote, which needs the build's SSH agent (strata build --ssh default)`);
        const label = `context ${JSON.stringify(name)}`;
        try {
          // Rooted at what the subdirectory resolved to inside the checkout.
          const { dir, scratch } = await checkoutContext(this.#images, ref, { sshAgent, signal: this.#options.signal }, this.#checksums, label);
          return { tree: new ContextTree(dir, () => false, false, this.#checksums, label), scratch };
        } catch (error) {
          const prefix = `Dockerfile line ${line}: the named context ${JSON.stringify(name)}: `;
          throw error instanceof SourceError ? new InvalidArgumentError(`${prefix}${error.message}`) : withPrefix(prefix, error);
        }
      })();
      this.#fetched.set(name, checkout);
    }
    return checkout;
  }

  /**
   * A URL context's download, once a build: a directory of the root's file system holding the one file,
   * `context`, as BuildKit's http source names it (its redirects, retries and byte limit ADD's downloads
   * meet). A failed download leaves nothing behind.
   */
  #urlDownload(name: string, url: string, line: number): Promise<{ tree: ContextTree; scratch: string }> {
    let fetched = this.#fetched.get(name);
    if (fetched === undefined) {
      fetched = (async () => {
        const scratch = this.#images.content.temporaryPath();
        mkdirSync(scratch, { mode: 0o700 });
        try {
          const file = join(scratch, 'context');
          const got = await download(url, file, { maxBytes: this.#options.maxBytes, ...(this.#options.signal ? { signal: this.#options.signal } : {}) });
          const modified = 'notModified' in got || got.lastModified === undefined ? 0 : Math.floor(got.lastModified.getTime() / 1000);
          chmodSync(file, 0o600);
          utimesSync(file, modified, modified);
          return { tree: new ContextTree(scratch, () => false, false, this.#checksums, `context ${JSON.stringify(name)}`), scratch };
        } catch (error) {
          rmSync(scratch, { recursive: true, force: true });
          throw withPrefix(`Dockerfile line ${line}: the named context ${JSON.stringify(name)}: `, error);
        }
      })();
      this.#fetched.set(name, fetched);
    }
    return fetched;
  }
}

/** `PATH[:TAG][@DIGEST]` of `oci-layout://PATH[:TAG][@DIGEST]`, as buildx reads it (a tag after the last `/`). */
function parseLayoutContext(name: string, text: string): LayoutContext {
  const at = text.lastIndexOf('@');
  const digest = at < 0 ? undefined : text.slice(at + 1);
  const rest = at < 0 ? text : text.slice(0, at);
  const colon = rest.lastIndexOf(':');
  const tagged = colon > rest.lastIndexOf('/');
  const dir = tagged ? rest.slice(0, colon) : rest;
  const tag = tagged ? rest.slice(colon + 1) : undefined;
  if (dir === '' || tag === '' || digest === '') throw new InvalidArgumentError(`the named context ${JSON.stringify(name)}: oci-layout://${text} is not PATH[:TAG][@DIGEST]`);
  if (!statSync(resolve(dir), { throwIfNoEntry: false })?.isDirectory()) throw new InvalidArgumentError(`the named context ${JSON.stringify(name)}: ${quote(dir)} is not a layout directory`);
  return { dir: resolve(dir), ...(digest !== undefined ? { digest } : {}), ...(tag !== undefined ? { tag } : {}) };
}
