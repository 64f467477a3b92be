/**
 * The step loop: each stage from its base (an image in the store, `scratch`, or an earlier stage), each
 * step that changes files in a container (an active snapshot on the previous step's) whose change becomes a
 * layer through the `diffUpper` fast path and a committed snapshot named by chainID, each config step a
 * history entry with `empty_layer`. Then the image: config, manifest, names.
 *
 * The cache: a step that changes files has a key made of the previous such step's key (or the base's
 * identity), the step as expanded (sources and destination, flags, the command with the environment, user,
 * working directory and shell it runs with, which is where the build args it sees come in), and for COPY
 * and ADD the checksum of exactly the files selected (content, mode, type, link target, and the owners when
 * kept; never times). Config-only steps do not enter keys on their own: only what a later step sees of them
 * does. A key found in the cache reuses its snapshot and layer and runs nothing.
 *
 * Everything runs under one lease, so a collection meanwhile keeps what the build made; cache records hold
 * their own leases. A failing step removes its container; nothing is named unless the whole build worked.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import {
  chainID,
  DigestMismatchError,
  flatten,
  InvalidArgumentError,
  isAlreadyExists,
  isNotFound,
  isStrataError,
  NotFoundError,
  processIdMap,
  quote,
  type Compression,
  type IdMap,
  type LayerDescriptor,
} from '@strata/core';
import {
  createdAt,
  foldHistory,
  formatPlatform,
  hostPlatform,
  layerDescriptor,
  layerLabels,
  mediaTypes,
  normalizeReference,
  parsePlatform,
  UNCOMPRESSED_LABEL,
  UNCOMPRESSED_SIZE_LABEL,
  stageImageDocuments,
  type Descriptor,
  type History,
  type ImageConfig,
  type Images,
  type Lease,
  type Platform,
  type PlatformImage,
} from '@strata/images';
import { BuildCache, type CacheRecord } from './cache.js';
import { cacheMountsDir } from './cache-mounts.js';
import { FileChecksums } from './checksums.js';
import { checkDockerfile, checkFailure, checkOptionsOf, reporter, type BuildCheck, type CheckOptions, type CheckReport } from './checks.js';
import { checkVariables } from './check-variables.js';
import { withArchiveContext, withUrlContext, type ArchiveContext } from './archive-context.js';
import { withGitContext } from './git-context.js';
import { isGitSource } from './git-source.js';
import { chownThrough } from './copy.js';
import { dockerfileNames, flagText, globalArgs, lineError, neededStages, parseDockerfile, parseTriggers, platformArgs, stageBelow, stageNamed, targetStage, type Dockerfile, type Instruction, type Stage } from './dockerfile.js';
import { StageState, type RunConfig } from './metadata.js';
import { RunSteps, withDefaultPath } from './run-step.js';
import { listTargets, outlineTarget, type BuildOutline, type TargetList } from './subrequests.js';
import { emulationFor } from './emulation.js';
import { CopySteps } from './copy-step.js';
import { atLine, withLine } from './step-errors.js';
import { isUrlSource, redactUrls } from './remote.js';
import { UrlRecords } from './url-records.js';
import { type CacheExport, type CacheSource, CacheSources, chainOf, exportCacheImage, CACHE_FIELD, inlineCacheField, type StepLayer } from './image-cache.js';
import { NamedContexts } from './named-contexts.js';
import { contextTree, ContextTree, readIgnorePatterns, SnapshotTree, type SourceTree } from './sources.js';
import { resolveUser } from './users.js';

/** What a build may be allowed beyond a sandboxed step (BuildKit's entitlements). */
export type Entitlement = 'security.insecure' | 'network.host';

/** Options of `build`. */
export interface BuildOptions {
  /**
   * The build context: a directory; a git repository (`https://host/repo.git#ref:dir`, `git@host:repo`, the
   * forms ADD takes), fetched for the build as `docker build` takes one (git-context.ts); a file, a tar
   * archive of the context or a Dockerfile alone, what `docker build -` reads; or an http(s) URL of either,
   * downloaded (archive-context.ts).
   */
  readonly context: string;
  /** The Dockerfile's path (default `<context>/Dockerfile`; for a repository, a path in its context), or its text in `dockerfileText`. */
  readonly dockerfile?: string;
  readonly dockerfileText?: string;
  /** Names for the image; none leaves it dangling (listed by its ID). */
  readonly tags?: readonly string[];
  /** The stage to build (name or index; default the last). */
  readonly target?: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
  /**
   * Named contexts (`docker buildx build --build-context NAME=VALUE`): `docker-image://REF` is the image
   * used wherever NAME is (`FROM NAME`, `COPY --from=NAME`, a bind mount's `from=NAME`); a directory's path
   * is a tree COPY and mounts read `--from=NAME` and a stage can start from (`FROM NAME`), its own
   * `.dockerignore` applied, its files root's; a git repository (as ADD takes one) is read the same way,
   * and an http(s) URL as BuildKit's frontend reads one: a tree of the one file it downloads, `context`;
   * `oci-layout://PATH[:TAG][@DIGEST]` is an image of a layout, imported nameless on first use. A stage of
   * that name is replaced (and not built), as buildx documents.
   */
  readonly contexts?: Readonly<Record<string, string>>;
  /**
   * Annotations (`docker buildx build --annotation [manifest:|index:]KEY=VALUE`): on the image's manifest (an
   * OCI one), and with several `platforms` on each platform's manifest and, `index`, on the index.
   */
  readonly annotations?: { readonly manifest?: Readonly<Record<string, string>>; readonly index?: Readonly<Record<string, string>> };
  /** Labels for the image, over the Dockerfile's (`docker build --label`); not part of any step's key. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Run every step, using no cache record (new records are still written). */
  readonly noCache?: boolean;
  /** Run every step of these stages (names, or indexes as FROM counts them), as `--no-cache-filter` does. */
  readonly noCacheFilter?: readonly string[];
  /**
   * Images whose build cache (see `cacheTo`: an image built with the inline cache, or a cache image) this
   * build may take steps from (`docker buildx build --cache-from`): a step the root's cache lacks is taken
   * from the first of them that recorded its key on the layers the stage stands on, the image pulled through
   * `pull` when the root lacks it, the layer applied onto the stage's tree. What one cannot give (missing,
   * no record) is a warning, and the steps run. Trusted as the root's own cache is: the layer an image says
   * a step made is taken as that step's. `{ src }` (`--cache-from type=local,src=DIR`): the cache image of
   * an OCI layout a `cacheTo` of `{ dest }` wrote, imported when first read.
   */
  readonly cacheFrom?: readonly CacheSource[];
  /**
   * `inline` (`--cache-to type=inline`): the image's config records which step made each of its layers
   * (their cache keys), for another root's `cacheFrom`; not with `squash`. `{ ref, mode }` (`--cache-to
   * type=registry,ref=REF[,mode=max]`): a cache image of the steps' layers, the final image's (`min`, the
   * default) or every stage's (`max`), pushed to `ref` through `push` and not kept in the root. `{ dest,
   * mode }` (`--cache-to type=local,dest=DIR`): that image written as an OCI layout at `dest` (which is to be
   * missing, empty, or such a layout, which it replaces).
   */
  readonly cacheTo?: 'inline' | CacheExport;
  /** Pushes an image of the root (a name or digest) to `ref`: how a cache image reaches its registry. */
  readonly push?: (image: string, ref: string) => Promise<void>;
  /** Fold the layers above the target stage's base into one. */
  readonly squash?: boolean;
  /**
   * `os/arch[/variant]` the build is for: the base images' platform in their indexes, and the result's.
   * Without it, the host's, and a stage on a base image of another platform that this host runs is that
   * platform's, as BuildKit detects it. RUN of another platform than the host's goes through the emulator
   * the host registered (binfmt_misc), and is UNSUPPORTED, saying why, where there is none.
   */
  readonly platform?: string;
  /**
   * Several platforms (`docker buildx build --platform a,b`): the build once for each, in order, and an
   * index of their images named by `tags`, as BuildKit makes one. A stage `FROM --platform=$BUILDPLATFORM`
   * runs on this host for every target and is cached across them; a cache image (`cacheTo`) holds every
   * platform's steps. Not with `platform`.
   */
  readonly platforms?: readonly string[];
  /**
   * Fixes layer times (a ceiling), config `created` and history times: with it, builds are reproducible.
   * Without it, the build arg `SOURCE_DATE_EPOCH`, or the default a global `ARG SOURCE_DATE_EPOCH` gives.
   */
  readonly sourceDateEpoch?: number;
  /** Compression of the layers written (default none, as Docker's and buildah's stores keep them). */
  readonly compression?: Compression;
  /** The OCI runtime for RUN (default `$STRATA_RUNTIME`, else runc, else crun). */
  readonly runtime?: string;
  /** Secrets by id, for `RUN --mount=type=secret`: files in the steps that mount them, never in a layer or a key. */
  readonly secrets?: Readonly<Record<string, Uint8Array>>;
  /**
   * SSH agents by id (the path of an agent's socket, `$SSH_AUTH_SOCK` for the usual `default`), for `RUN
   * --mount=type=ssh`: each step that mounts one gets a socket of its own forwarding to it, never the agent's.
   */
  readonly ssh?: Readonly<Record<string, string>>;
  /**
   * Entitlements the build grants, as `docker buildx build --allow`: `security.insecure` lets `RUN
   * --security=insecure` run privileged (every capability, the host's devices, no masked paths).
   * `network.host` is taken and changes nothing: RUN steps are on the host's network already.
   */
  readonly allow?: readonly Entitlement[];
  /** Called for a FROM image the store lacks (a pull); without it, such a FROM is NOT_FOUND. */
  readonly pull?: (reference: string, platform: Platform) => Promise<void>;
  /** Call `pull` for every image the build names, once, even one the store has (`docker build --pull`). */
  readonly pullAlways?: boolean;
  /** Names for RUN steps' `/etc/hosts`, name → address, after localhost's (`docker build --add-host`). */
  readonly extraHosts?: Readonly<Record<string, string>>;
  /** The network of a RUN without `--network` (`docker build --network`); default the host's. */
  readonly network?: 'default' | 'host' | 'none';
  /**
   * Resource limits of RUN's processes, by name (`docker build --ulimit nofile=1024:2048`): `nofile`,
   * `nproc`, `core`, `memlock`, `stack`… (Docker's names), soft and hard, -1 for unlimited. Without them a
   * step has the limits of the process that starts the runtime, as in BuildKit. Part of each RUN's key.
   */
  readonly ulimits?: Readonly<Record<string, { readonly soft: number; readonly hard: number }>>;
  /** Bytes of RUN's `/dev/shm` (`docker build --shm-size`); default 64 MiB. Part of each RUN's key when given. */
  readonly shmSize?: number;
  /** Limits on what COPY and ADD select from the context or a stage. */
  readonly limits?: { readonly maxEntries?: number; readonly maxBytes?: number };
  readonly onEvent?: (event: BuildEvent) => void;
  readonly signal?: AbortSignal;
}

/** Progress of a build, step by step. Steps are numbered over all the stages built, FROM lines included. */
export type BuildEvent =
  | { readonly type: 'step'; readonly step: number; readonly total: number; readonly stage: string; readonly instruction: string }
  | { readonly type: 'output'; readonly step: number; readonly data: Buffer }
  /** Something the build went on without (a `cacheFrom` image it could not use). */
  | { readonly type: 'warning'; readonly message: string }
  /** What a build check found in the Dockerfile (reported before the first step). */
  | { readonly type: 'check'; readonly check: BuildCheck }
  | {
      readonly type: 'done';
      readonly step: number;
      readonly total: number;
      readonly stage: string;
      readonly instruction: string;
      readonly cached: boolean;
      readonly seconds: number;
      /** The diffID of the layer the step made or reused, or null for a step that made none. */
      readonly layer: string | null;
    };

/** What a build made. */
export interface BuildResult {
  /** The image's manifest (its index, for several `platforms`). */
  readonly target: Descriptor;
  /** The names given (normalized); empty when the image is dangling. */
  readonly names: string[];
  /** The image's config (the first platform's, for several). */
  readonly config: ImageConfig;
  /** With several `platforms`: each one's manifest and config, in order. */
  readonly platforms?: readonly { readonly platform: string; readonly target: Descriptor; readonly config: ImageConfig }[];
  /** Steps that ran, and steps answered from the cache. */
  readonly ran: number;
  readonly cached: number;
  /** What the build checks found in the Dockerfile (`docker build`'s warnings). */
  readonly checks: readonly BuildCheck[];
}

/** A build's image, before its checks are added to the result. */
type BuiltImage = Omit<BuildResult, 'checks'>;

const DEFAULT_LIMITS = { maxEntries: 2_000_000, maxBytes: 256 * 1024 ** 3 };

/** `--chmod`: the change, and what stands for it in the step's key. */
/** A step that changes files, planned: its key's part, its history line, how it runs on a cache miss. */
export interface StepPlan {
  readonly identity: string;
  readonly history: string;
  /** Carries out the step in active snapshot `key`; names of users are looked up in `usersFrom` (default `key`). */
  readonly execute: (key: string, number: number, usersFrom?: string) => Promise<void>;
  /**
   * `--link`: the step's layer is made on an empty tree, so it does not depend on the steps before it (its
   * key leaves them out) and a layer made before goes onto another base as it is, as BuildKit rebases one.
   */
  readonly link?: boolean;
  /** Lets go of what planning fetched (an ADD's downloads), once the step is done or failed. */
  readonly dispose?: () => void;
  /** Fetches what planning only revalidated (a URL its server said had not changed), before the step runs. */
  readonly materialize?: () => Promise<void>;
}

/** A stage's tree and image so far. */
interface StageResult {
  readonly name: string;
  /** The committed snapshot of its tree (undefined: empty). */
  snapshot: string | undefined;
  /** The cache key of its tree. */
  key: string;
  readonly diffIDs: string[];
  readonly layers: Descriptor[];
  /** Layers this stage made itself (above its base): what squash folds. */
  readonly own: LayerDescriptor[];
  /** The cache key of the step that made each layer of `diffIDs` (null for an image's): the inline cache. */
  readonly stepKeys: (string | null)[];
  readonly baseLayers: number;
  readonly history: History[];
  readonly docker: boolean;
  readonly platform: Platform;
  readonly baseConfig: ImageConfig | undefined;
  state: StageState;
}

function sha256(...parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${part.length}:${part}`);
  return hash.digest('hex');
}

/** Builds a Dockerfile into an image in `images`' root. */
export async function build(images: Images, options: BuildOptions): Promise<BuildResult> {
  // A name that cannot be one is refused before anything is built, as docker build refuses its -t and
  // BuildKit a cache reference.
  const cacheTo = typeof options.cacheTo === 'object' && 'ref' in options.cacheTo ? [options.cacheTo.ref] : [];
  const cacheFrom = (options.cacheFrom ?? []).filter((source) => typeof source === 'string');
  for (const name of [...(options.tags ?? []), ...cacheTo, ...cacheFrom]) normalizeReference(name);
  return withBuildInput(images, options, (options, context, text, dockerignore) => buildIn(images, options, context, text, dockerignore));
}

/**
 * What BuildKit's build checks find in the Dockerfile of a build (`docker build --check`), every stage
 * checked, nothing built: see checks.ts for the rules. The Dockerfile is read as `build` reads it (a git,
 * URL or archive context fetched for it). Throws for a Dockerfile that does not parse, as a build would.
 */
export async function checkBuild(images: Images, options: BuildOptions): Promise<BuildCheck[]> {
  return withBuildInput(images, options, async (options, context, text, dockerignore) => {
    const { found, checks, dockerfile } = buildChecks(options, text, context, dockerignore, true);
    const platform = options.platform ?? options.platforms?.[0];
    const wanted = (stage: Stage) => parsePlatform(stage.platform ?? platform ?? formatPlatform(hostPlatform()));
    const stored = new Map(dockerfile.stages.map((stage) => [stage.index, storedBaseImage(images, options, dockerfile, stage, wanted(stage))]));
    const baseEnv = (stage: Stage) => {
      const image = stored.get(stage.index);
      return image === undefined ? undefined : imageEnv(image);
    };
    const variables = checkVariables(text, dockerfile, dockerfile.stages, baseEnv, { checks, buildArgs: options.buildArgs ?? {} });
    const { report, found: platforms } = reporter(text, checks);
    for (const stage of dockerfile.stages) {
      const image = stored.get(stage.index);
      const finding = image && judgeBasePlatform(stage, wanted(stage), image, platform === undefined && stage.platform === undefined).finding;
      if (finding !== undefined) report('InvalidBaseImagePlatform', stage.from.line, finding, stage.from.line);
    }
    return [...found, ...variables, ...platforms].sort((a, b) => a.line - b.line);
  });
}

/**
 * `docker buildx build --call=targets`: the stages of the Dockerfile `options` name (read as `build` reads it:
 * the context, `dockerfile`, `dockerfileText`), nothing built.
 */
export async function buildTargets(images: Images, options: BuildOptions): Promise<TargetList> {
  return withBuildInput(images, options, async (_options, _context, text) => listTargets(text));
}

/**
 * `docker buildx build --call=outline`: what building `options.target` reads (build args with their values,
 * secrets, SSH agents), nothing built.
 */
export async function buildOutline(images: Images, options: BuildOptions): Promise<BuildOutline> {
  return withBuildInput(images, options, async (options, _context, text) =>
    outlineTarget(text, { ...(options.target !== undefined ? { target: options.target } : {}), ...(options.buildArgs ? { buildArgs: options.buildArgs } : {}), ...(options.platform !== undefined ? { platform: options.platform } : {}) }),
  );
}

/**
 * The image `stage` starts from, for a check run: the store's copy, or undefined where the store has none (a
 * check run pulls nothing), a named context stands for it, or it starts from scratch or an earlier stage.
 */
function storedBaseImage(images: Images, options: BuildOptions, dockerfile: Dockerfile, stage: Stage, platform: Platform): PlatformImage | undefined {
  if (options.contexts !== undefined && Object.hasOwn(options.contexts, stage.image)) return undefined;
  if (stage.image.toLowerCase() === 'scratch' || stageBelow(dockerfile, stage) !== undefined) return undefined;
  try {
    return storedImage(images, stage.image, platform).platformImage;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/**
 * Runs `run` on the build's context directory and Dockerfile text: a git repository cloned, a URL or archive
 * unpacked, or a directory as it is. `dockerignore`: the context's ignore files apply (not a repository's).
 */
async function withBuildInput<T>(images: Images, options: BuildOptions, run: (options: BuildOptions, context: string, text: string, dockerignore: boolean) => Promise<T>): Promise<T> {
  if (isGitSource(options.context)) {
    return withGitContext(images, options, ({ dir, dockerfileText }) => run({ ...options, context: dir, dockerfileText }, dir, dockerfileText, false));
  }
  const limits = { ...DEFAULT_LIMITS, ...(options.limits ?? {}) };
  const fromArchive = ({ dir, dockerfileText, archive }: ArchiveContext) => run({ ...options, context: dir, dockerfileText }, dir, dockerfileText, archive);
  if (isUrlSource(options.context)) return withUrlContext(images, options, limits, fromArchive);
  const context = resolve(options.context);
  const kind = statSync(context, { throwIfNoEntry: false });
  if (kind?.isFile()) return withArchiveContext(images, options, context, limits, fromArchive);
  if (!kind?.isDirectory()) throw new InvalidArgumentError(`the build context ${quote(context)} is neither a directory, an archive nor a Dockerfile`);
  const text = options.dockerfileText ?? readDockerfile(options.dockerfile ?? join(context, 'Dockerfile'));
  return run(options, context, text, true);
}

/**
 * The ignore files of a build's context, the first that exists applying: the Dockerfile's own
 * (`<name>.dockerignore` beside it) before the context's, as BuildKit reads them (one context can serve
 * several Dockerfiles); none where ignore files do not apply (a git repository).
 */
function ignoreFilesOf(options: BuildOptions, context: string, dockerignore: boolean): string[] {
  if (!dockerignore) return [];
  return [...(options.dockerfileText === undefined ? [`${options.dockerfile ?? join(context, 'Dockerfile')}.dockerignore`] : []), join(context, '.dockerignore')];
}

/**
 * The build's SOURCE_DATE_EPOCH, as BuildKit takes it: the option, else the build arg, else the default of a
 * global `ARG SOURCE_DATE_EPOCH=…` in the Dockerfile; one that is not whole seconds is refused.
 */
function withSourceDateEpoch(options: BuildOptions, dockerfile: Dockerfile): BuildOptions {
  if (options.sourceDateEpoch !== undefined) return options;
  const text = options.buildArgs?.SOURCE_DATE_EPOCH ?? globalArgs(dockerfile, options.buildArgs ?? {}).get('SOURCE_DATE_EPOCH');
  if (text === undefined || text === '') return options;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new InvalidArgumentError(`invalid SOURCE_DATE_EPOCH: ${text} (whole seconds since 1970 are expected)`);
  return { ...options, sourceDateEpoch: Number(text) };
}

/** A Dockerfile on the host, by any of its names (`dockerfileNames`); the first name's error when none is there. */
function readDockerfile(path: string): string {
  const [first, ...others] = dockerfileNames(path);
  try {
    return readFileSync(first!, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    for (const other of others) if (existsSync(other)) return readFileSync(other, 'utf8');
    throw error;
  }
}

/**
 * The build checks of `text` for `options` (its build arguments, target and first platform) in `context`:
 * the rules about steps run on the stages the build needs, or on all of them (`allStages`, a check run), as
 * in BuildKit.
 */
function buildChecks(options: BuildOptions, text: string, context: string, dockerignore: boolean, allStages: boolean): { found: BuildCheck[]; checks: CheckOptions; dockerfile: Dockerfile } {
  const buildArgs = options.buildArgs ?? {};
  const checks = checkOptionsOf(text, buildArgs);
  const platform = options.platform ?? options.platforms?.[0];
  const dockerfile = parseDockerfile(text, buildArgs, platformArgs(platform ? parsePlatform(platform) : hostPlatform(), hostPlatform(), options.target));
  const stages = allStages ? undefined : neededStages(dockerfile, targetStage(dockerfile, options.target), new Set(Object.keys(options.contexts ?? {})));
  const ignored = readIgnorePatterns(ignoreFilesOf(options, context, dockerignore));
  return { found: checkDockerfile(text, dockerfile, { checks, buildArgs, ignored, ...(stages ? { stages } : {}) }), checks, dockerfile };
}

/** The build of the Dockerfile `text` in the directory `context`; `dockerignore`: the context's ignore files apply. */
async function buildIn(images: Images, given: BuildOptions, context: string, text: string, dockerignore: boolean): Promise<BuildResult> {
  const platforms = given.platforms ?? [];
  if (platforms.length > 0 && given.platform !== undefined) throw new InvalidArgumentError('a build takes platform or platforms, not both');
  // The checks come first, as BuildKit's: warnings before the first step, and with error=true no step at all.
  const { found, checks, dockerfile } = buildChecks(given, text, context, dockerignore, false);
  const options = withSourceDateEpoch(given, dockerfile);
  for (const check of found) options.onEvent?.({ type: 'check', check });
  if (checks.error && found.length > 0) throw checkFailure(found);
  // UndefinedVar needs the base images' variables, InvalidBaseImagePlatform their platforms: each platform's
  // builder runs them once it has their configs, before its first step. A finding is listed once, whichever
  // platforms' builds found it.
  const late: BuildCheck[] = [];
  const seen = new Set<string>();
  const take = (fresh: readonly BuildCheck[]): void => {
    const unseen = fresh.filter((check) => {
      const key = `${check.rule}\0${check.line}\0${check.detail}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    for (const check of unseen) options.onEvent?.({ type: 'check', check });
    late.push(...unseen);
    if (checks.error && unseen.length > 0) throw checkFailure(unseen);
  };
  const judgeVariables: VariablesCheck | undefined =
    checks.skipAll || checks.skip.has('UndefinedVar')
      ? undefined
      : (dockerfile, stages, baseEnv) => take(checkVariables(text, dockerfile, stages, baseEnv, { checks, buildArgs: options.buildArgs ?? {} }));
  // Made on the first finding: it parses the Dockerfile's text again, which most builds never need.
  let reporting: ReturnType<typeof reporter> | undefined;
  const reportCheck: CheckReport = (name, line, detail) => {
    reporting ??= reporter(text, checks);
    reporting.report(name, line, detail, line);
    take(reporting.found.splice(0));
  };
  const built = await buildPlatforms(images, options, context, text, dockerignore, { reportCheck, ...(judgeVariables ? { judgeVariables } : {}) });
  return { ...built, checks: [...found, ...late].sort((a, b) => a.line - b.line) };
}

/**
 * The platform a stage has, given the one it asked for (`wanted`) and the image it starts from, as BuildKit
 * has it, with InvalidBaseImagePlatform's finding where they differ in OS or architecture. A lone manifest
 * serves any platform (an index offers only the platforms it lists): BuildKit builds on it. Where no
 * platform was asked for (`implicit`), the stage is the image's platform when this host runs that
 * platform's programs (itself or through a registered emulator), as BuildKit detects a platform its worker
 * supports; otherwise the image is taken as the wanted platform's, and found.
 */
function judgeBasePlatform(stage: Stage, wanted: Platform, image: PlatformImage, implicit: boolean): { platform: Platform; finding?: string } {
  const actual = configPlatform(image.config);
  if (actual.os === wanted.os && actual.architecture === wanted.architecture) return { platform: wanted };
  const host = hostPlatform();
  if (implicit && ((actual.os === host.os && actual.architecture === host.architecture) || emulationFor(actual).ok)) return { platform: actual };
  return { platform: wanted, finding: `Base image ${stage.image} was pulled with platform ${JSON.stringify(checkPlatform(actual))}, expected ${JSON.stringify(checkPlatform(wanted))} for current build` };
}

/**
 * The config a stage from scratch starts with, as BuildKit's empty image: the root as its workdir and
 * Docker's default PATH, which Windows is left to set itself.
 */
const scratchConfig = (platform: Platform): RunConfig => (platform.os === 'windows' ? { WorkingDir: '/' } : { WorkingDir: '/', Env: withDefaultPath([]) });

/** An image config's platform. */
const configPlatform = (config: ImageConfig): Platform => ({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) });

/** A platform as BuildKit's findings write it: normalised, arm64's default variant left out. */
const checkPlatform = (p: Platform): string => formatPlatform(p.architecture === 'arm64' && p.variant === 'v8' ? { os: p.os, architecture: p.architecture } : p);

/** The store's image `reference` for `platform`, by its name (or digest, for a nameless one); NOT_FOUND when the store has none. */
function storedImage(images: Images, reference: string, platform: Platform): { ref: string; platformImage: PlatformImage } {
  const image = images.image(reference);
  const ref = image.name ?? image.target.digest;
  return { ref, platformImage: images.platformImage(ref, { platform }) };
}

/** The ENV of an image's config. */
const imageEnv = (image: PlatformImage): readonly string[] => ((image.config.config ?? {}) as RunConfig).Env ?? [];

/** Runs UndefinedVar on a builder's stages, given the ENV of the images they start from. */
type VariablesCheck = (dockerfile: Dockerfile, stages: readonly Stage[], baseEnv: (stage: Stage) => readonly string[] | undefined) => void;

/** The build of `text` for its platform, or for each of several into an index. */
async function buildPlatforms(images: Images, options: BuildOptions, context: string, text: string, dockerignore: boolean, checking: Pick<BuilderSharing, 'judgeVariables' | 'reportCheck'>): Promise<BuiltImage> {
  const platforms = options.platforms ?? [];
  if (platforms.length <= 1) {
    if (Object.keys(options.annotations?.index ?? {}).length > 0) throw new InvalidArgumentError('index annotations are for a build of several platforms, whose result is an index');
    const one = platforms.length === 1 ? { ...options, platform: platforms[0]! } : options;
    const { builder, target } = planBuild(images, one, text, context, { dockerignore, ...checking });
    return images.leases.with((lease) => builder.run(lease, target), { 'strata.io/work': 'build' });
  }
  const parsed = platforms.map((p) => parsePlatform(p));
  const seen = new Set(parsed.map((p) => formatPlatform(p)));
  if (seen.size !== parsed.length) throw new InvalidArgumentError(`platforms ${platforms.join(', ')} name one platform twice`);
  return images.leases.with(async (lease) => {
    const built: { platform: Platform; result: BuiltImage }[] = [];
    const steps = new Map<string, StepLayer>();
    // Named contexts are fetched once for every platform, as BuildKit solves one source for all: a git
    // context is the same commit in each platform's image.
    const checksums = new FileChecksums(images.root.metadata);
    const named = namedContexts(images, options, checksums);
    try {
      for (const platform of parsed) {
        const { builder, target } = planBuild(images, { ...options, platform: formatPlatform(platform), tags: [] }, text, context, { nameless: true, dockerignore, named, ...checking });
        built.push({ platform, result: await builder.run(lease, target) });
        if (typeof options.cacheTo === 'object') for (const step of builder.cacheSteps(options.cacheTo.mode ?? 'min')) if (!steps.has(step.key)) steps.set(step.key, step);
      }
    } finally {
      await named.dispose();
      checksums.flush();
    }
    const result = await publishIndex(images, lease.id, built, options.tags ?? [], options.annotations?.index ?? {});
    // One cache image for every platform's steps: their keys differ where the platforms' work does.
    if (typeof options.cacheTo === 'object') await exportBuildCache(images, lease.id, [...steps.values()], parsed[0]!, options.cacheTo, options);
    return result;
  }, { 'strata.io/work': 'build' });
}

/** A cache image of `steps` written to `to` (image-cache.ts); with none, a warning. */
async function exportBuildCache(images: Images, lease: string, steps: readonly StepLayer[], platform: Platform, to: CacheExport, options: BuildOptions): Promise<void> {
  if (steps.length === 0) {
    options.onEvent?.({ type: 'warning', message: `--cache-to ${'ref' in to ? to.ref : to.dest}: no step made a layer; no cache image` });
    return;
  }
  await exportCacheImage(images, lease, steps, { platform, created: createdAt(options.sourceDateEpoch), to, ...(options.push ? { push: options.push } : {}) });
}

/** How a builder stands to the build around it. */
interface BuilderSharing {
  /** The image gets no record of its own (a platform's of an index that will hold it). */
  readonly nameless?: boolean;
  /** The context's ignore files apply (not to a git repository's, as in BuildKit). */
  readonly dockerignore?: boolean;
  /** Named contexts shared with the other platforms' builders (and disposed by the caller). */
  readonly named?: NamedContexts;
  /** Runs UndefinedVar once the images the stages start from are known, before the first step. */
  readonly judgeVariables?: VariablesCheck;
  /** Reports what a rule found that only the builder can see (a base image's platform). */
  readonly reportCheck?: CheckReport;
}

/** The build's named contexts (`options.contexts`), their directories' checksums kept in `checksums`. */
function namedContexts(images: Images, options: BuildOptions, checksums: FileChecksums): NamedContexts {
  const maxBytes = options.limits?.maxBytes ?? DEFAULT_LIMITS.maxBytes;
  return new NamedContexts(options.contexts ?? {}, images, checksums, { maxBytes, ...(options.ssh ? { ssh: options.ssh } : {}), ...(options.signal ? { signal: options.signal } : {}) });
}

/** The Dockerfile read for `options.platform` (its automatic platform ARGs), and the builder of its target stage. */
function planBuild(images: Images, options: BuildOptions, text: string, context: string, shared: BuilderSharing = {}): { builder: Builder; target: Stage } {
  const buildArgs = options.buildArgs ?? {};
  const dockerfile = parseDockerfile(text, buildArgs, platformArgs(options.platform ? parsePlatform(options.platform) : hostPlatform(), hostPlatform(), options.target));
  const target = targetStage(dockerfile, options.target);
  const stages = neededStages(dockerfile, target, new Set(Object.keys(options.contexts ?? {})));
  return { builder: new Builder(images, options, dockerfile, context, stages, shared), target };
}

/**
 * The index of a build for several platforms: each platform's manifest with its platform, a Docker manifest
 * list when they all are Docker's, else an OCI index; published under `lease` and named `tags` (a dangling
 * image without), its platforms' images held by it and no record of their own.
 */
async function publishIndex(images: Images, lease: string, built: readonly { platform: Platform; result: BuiltImage }[], tags: readonly string[], annotations: Readonly<Record<string, string>>): Promise<BuiltImage> {
  const docker = built.every(({ result }) => result.target.mediaType === mediaTypes.DOCKER_MANIFEST);
  const annotated = Object.keys(annotations).length > 0;
  if (annotated && docker) throw new InvalidArgumentError('index annotations need an OCI index, and every image here is of the Docker family: a Docker manifest list has no annotations');
  const index = {
    schemaVersion: 2,
    mediaType: docker ? mediaTypes.DOCKER_MANIFEST_LIST : mediaTypes.OCI_INDEX,
    manifests: built.map(({ platform, result }) => ({ ...result.target, platform: { os: platform.os, architecture: platform.architecture, ...(platform.variant ? { variant: platform.variant } : {}) } })),
    ...(annotated ? { annotations: { ...annotations } } : {}),
  };
  const staged = await images.content.stageDocuments([Buffer.from(JSON.stringify(index))]);
  const target: Descriptor = { mediaType: index.mediaType, ...staged.blobs[0]! };
  const names: string[] = [];
  try {
    images.root.metadata.transaction(() => {
      staged.publish(lease);
      for (const tag of tags) names.push(images.images.put(tag, target));
      if (names.length === 0) images.images.putDangling(target);
    });
  } finally {
    staged.discard();
  }
  return {
    target,
    names,
    config: built[0]!.result.config,
    ran: built.reduce((n, b) => n + b.result.ran, 0),
    cached: built.reduce((n, b) => n + b.result.cached, 0),
    platforms: built.map(({ platform, result }) => ({ platform: formatPlatform(platform), target: result.target, config: result.config })),
  };
}

class Builder {
  readonly #images: Images;
  readonly #options: BuildOptions;
  readonly #nameless: boolean;
  /** The target stage, once built. */
  #final: StageResult | undefined;
  readonly #dockerfile: Dockerfile;
  #stages: Stage[];
  readonly #cache: BuildCache;
  readonly #checksums: FileChecksums;
  readonly #urlRecords: UrlRecords;
  /** RUN's planning and running, with the cache mounts and bind trees it holds. */
  readonly #runs: RunSteps<StageResult>;
  /** COPY's and ADD's planning and writing. */
  readonly #copies: CopySteps<StageResult>;
  readonly #context: ContextTree;
  readonly #results = new Map<number, StageResult>();
  readonly #platform: Platform;
  readonly #epoch: number | undefined;
  readonly #limits: { maxEntries: number; maxBytes: number };
  /** The stages `noCacheFilter` names, by their label (name, or index for one without). */
  readonly #noCacheStages: ReadonlySet<string>;
  /**
   * Without root: the caller's own user and group are root's in the build's containers (rootless Podman's
   * model, without the subordinate ids that root alone can grant). COPY and ADD write as the caller and the
   * layers say root; any other owner is UNSUPPORTED.
   */
  readonly #idMap: IdMap | undefined = processIdMap();
  #step = 0;
  /** Steps counted so far: the Dockerfile's, and the ONBUILD triggers of bases as they are found. */
  #total: number;
  /** The images pulled this build (pullAlways pulls each once). */
  readonly #pulled = new Set<string>();
  /** Named contexts (`contexts`): images, directories and repositories by name. */
  readonly #named: NamedContexts;
  /** Whether this build fetched its named contexts itself (else a build of several platforms shares them). */
  readonly #ownsNamed: boolean;
  /** `cacheFrom`'s images, when there are any. */
  readonly #cacheSources: CacheSources | undefined;
  /** Every step that gave a layer this build, by its cache key: the layer and the chain it went on (a cache image's content). */
  readonly #stepLayers = new Map<string, { readonly layer: LayerDescriptor; readonly below: string }>();
  #ran = 0;
  #cached = 0;
  #lease!: Lease;
  readonly #judgeVariables: VariablesCheck | undefined;
  readonly #reportCheck: CheckReport | undefined;
  /** The images stages start from, by stage index, resolved ahead of the first step. */
  readonly #baseImages = new Map<number, { ref: string; platformImage: PlatformImage }>();
  /** The platform of each stage that took its base image's (BuildKit's detection), by stage index. */
  readonly #detectedPlatforms = new Map<number, Platform>();

  constructor(images: Images, options: BuildOptions, dockerfile: Dockerfile, context: string, stages: Stage[], { nameless = false, dockerignore = true, named, judgeVariables, reportCheck }: BuilderSharing = {}) {
    this.#nameless = nameless;
    this.#judgeVariables = judgeVariables;
    this.#reportCheck = reportCheck;
    this.#images = images;
    this.#options = options;
    this.#dockerfile = dockerfile;
    this.#stages = stages;
    this.#cache = new BuildCache(images);
    this.#checksums = new FileChecksums(images.root.metadata);
    this.#urlRecords = new UrlRecords(images.root.metadata);
    this.#context = contextTree(context, ignoreFilesOf(options, context, dockerignore), this.#checksums);
    this.#ownsNamed = named === undefined;
    this.#named = named ?? namedContexts(images, options, this.#checksums);
    this.#total = stages.reduce((n, s) => n + 1 + s.instructions.length, 0);
    this.#platform = options.platform ? parsePlatform(options.platform) : hostPlatform();
    this.#epoch = options.sourceDateEpoch;
    this.#limits = { ...DEFAULT_LIMITS, ...(options.limits ?? {}) };
    this.#runs = new RunSteps<StageResult>(
      {
        images,
        options,
        context: this.#context,
        limits: this.#limits,
        escape: dockerfile.escape,
        fromTree: (from, step, stage) => this.#fromTree(from, step, stage),
        emit: (event) => this.#emit(event),
      },
      cacheMountsDir(images),
    );
    this.#copies = new CopySteps<StageResult>({
      images,
      options,
      context: this.#context,
      limits: this.#limits,
      escape: dockerfile.escape,
      checksums: this.#checksums,
      urlRecords: this.#urlRecords,
      idMap: this.#idMap,
      fromTree: (from, step, stage) => this.#fromTree(from, step, stage),
    });
    this.#noCacheStages = new Set(
      (options.noCacheFilter ?? []).map((name) => {
        const stage = dockerfile.stages.find((s) => s.name === name.toLowerCase()) ?? (/^\d+$/.test(name) ? dockerfile.stages[Number(name)] : undefined);
        if (stage === undefined) throw new InvalidArgumentError(`--no-cache-filter ${JSON.stringify(name)}: the Dockerfile has no such stage`);
        return stage.name ?? String(stage.index);
      }),
    );
    this.#cacheSources = options.cacheFrom?.length
      ? new CacheSources(options.cacheFrom, (source) => this.#cacheSource(source), (message) => this.#emit({ type: 'warning', message }))
      : undefined;
    if (typeof options.cacheTo === 'object' && 'ref' in options.cacheTo && !options.push) throw new InvalidArgumentError('a cache image (cacheTo with a ref) is pushed through BuildOptions.push, which was not given');
  }

  async run(lease: Lease, target: Stage): Promise<BuiltImage> {
    this.#lease = lease;
    try {
      await this.#resolveBaseImages();
      // A base image's ONBUILD triggers may name stages of this Dockerfile (COPY --from, a mount's from) that
      // nothing else needs: those are built too, as BuildKit resolves the triggers before it plans the build.
      for (;;) {
        const stages = neededStages(this.#dockerfile, target, new Set(Object.keys(this.#options.contexts ?? {})), (stage) => this.#imageTriggers(stage));
        if (stages.length === this.#stages.length) break;
        this.#total += stages.filter((s) => !this.#stages.includes(s)).reduce((n, s) => n + 1 + s.instructions.length, 0);
        this.#stages = stages;
        await this.#resolveBaseImages();
      }
      if (this.#judgeVariables) {
        this.#judgeVariables(this.#dockerfile, this.#stages, (stage) => {
          if (this.#named.isTree(stage.image)) return [];
          const image = this.#baseImages.get(stage.index);
          return image === undefined ? undefined : imageEnv(image.platformImage);
        });
      }
      for (const stage of this.#stages) await this.#buildStage(stage);
    } finally {
      this.#checksums.flush();
      this.#urlRecords.flush();
      this.#cache.flush();
      if (this.#ownsNamed) await this.#named.dispose();
      this.#runs.dispose();
    }
    const result = this.#results.get(target.index)!;
    this.#final = result;
    return this.#finish(result);
  }

  /** The steps a cache image of this build holds, once it ran: the final image's own (`min`) or every stage's (`max`). */
  cacheSteps(mode: 'min' | 'max'): StepLayer[] {
    const keys = mode === 'max' ? [...this.#stepLayers.keys()] : this.#final!.stepKeys.filter((key): key is string => key !== null);
    return keys.map((key) => ({ key, ...this.#stepLayers.get(key)! }));
  }

  #emit(event: BuildEvent): void {
    this.#options.onEvent?.(event);
  }

  // ---- stages ---------------------------------------------------------------------------------------

  async #buildStage(stage: Stage): Promise<void> {
    const label = stage.name ?? String(stage.index);
    const started = performance.now();
    const step = ++this.#step;
    const fromText = `FROM ${flagText(stage.from)}${stage.image}${stage.name !== undefined ? ` AS ${stage.name}` : ''}`;
    this.#emit({ type: 'step', step, total: this.#total, stage: label, instruction: fromText });
    const result = await this.#base(stage, label);
    this.#results.set(stage.index, result);
    this.#emit({ type: 'done', step, total: this.#total, stage: label, instruction: fromText, cached: false, seconds: (performance.now() - started) / 1000, layer: null });

    // Triggers the base image left (ONBUILD) run first, as Docker runs them, then the stage's own steps.
    const triggers = result.state.config.OnBuild ?? [];
    delete result.state.config.OnBuild;
    const steps: Instruction[] = [];
    // FROM a named context's directory: the stage's root is its files (as root's, times and modes kept), as
    // BuildKit starts a stage from a local source; here a layer written as `COPY --from=NAME . /` writes it.
    if (this.#named.isTree(stage.image)) {
      steps.push({ keyword: 'COPY', line: stage.from.line, flags: { from: stage.image }, args: '. /' });
      this.#total += 1;
    }
    if (triggers.length > 0) {
      steps.push(...parseTriggers(triggers, stage.from.line));
      this.#total += steps.length;
    }
    steps.push(...stage.instructions);
    for (const instruction of steps) {
      this.#options.signal?.throwIfAborted();
      await this.#runStep(result, instruction);
    }
  }

  /**
   * The image each stage that starts from one needs, resolved (pulled when missing) before the first step, as
   * BuildKit resolves them before it builds: their variables are what UndefinedVar judges steps against, and
   * their platforms are judged here (`judgeBasePlatform`).
   */
  async #resolveBaseImages(): Promise<void> {
    for (const stage of this.#stages) {
      if (this.#startsEmpty(stage) || this.#stageBelow(stage) !== undefined || this.#baseImages.has(stage.index)) continue;
      const wanted = this.#platformOf(stage);
      const image = await this.#imageFor(stage.image, wanted, stage.from.line);
      this.#baseImages.set(stage.index, image);
      // A stage on a named context's image is that image's platform, as BuildKit takes it, with no finding.
      const judged = this.#named.has(stage.image) ? { platform: configPlatform(image.platformImage.config) } : judgeBasePlatform(stage, wanted, image.platformImage, this.#platformImplicit(stage));
      if (judged.finding !== undefined) this.#reportCheck?.('InvalidBaseImagePlatform', stage.from.line, judged.finding);
      if (judged.platform.os !== wanted.os || judged.platform.architecture !== wanted.architecture) this.#detectedPlatforms.set(stage.index, judged.platform);
    }
  }

  /** The ONBUILD triggers of the image `stage` starts from (resolved by then), as the steps they run. */
  #imageTriggers(stage: Stage): Instruction[] {
    const image = this.#baseImages.get(stage.index);
    const triggers = (image?.platformImage.config.config as RunConfig | undefined)?.OnBuild ?? [];
    return parseTriggers(triggers, stage.from.line);
  }

  /** Whether neither the build nor the stage's FROM asked for a platform: the base image may choose it. */
  #platformImplicit(stage: Stage): boolean {
    return this.#options.platform === undefined && stage.platform === undefined;
  }

  /**
   * True for a stage from scratch (or a named context that is `docker-image://scratch`) or from a named
   * context's directory (whose files come in its first step).
   */
  #startsEmpty(stage: Stage): boolean {
    return stage.image.toLowerCase() === 'scratch' || this.#named.isScratch(stage.image) || this.#named.isTree(stage.image);
  }

  /** The earlier stage `stage` is built on, unless a named context stands for the name its FROM gives. */
  #stageBelow(stage: Stage): Stage | undefined {
    return stageBelow(this.#dockerfile, stage, (name) => this.#named.has(name));
  }

  #platformOf(stage: Stage): Platform {
    return stage.platform ? parsePlatform(stage.platform) : this.#platform;
  }

  async #base(stage: Stage, label: string): Promise<StageResult> {
    const platform = this.#detectedPlatforms.get(stage.index) ?? this.#platformOf(stage);
    const globals = globalArgs(this.#dockerfile, this.#options.buildArgs ?? {});
    const buildArgs = this.#options.buildArgs ?? {};
    const fresh = (config: RunConfig, fields: Omit<StageResult, 'state' | 'name' | 'platform'>): StageResult => ({
      ...fields,
      name: label,
      platform,
      state: new StageState(this.#dockerfile, config, buildArgs, globals),
    });
    // A named context's directory starts from scratch; its files come in the stage's first step (#buildStage).
    if (this.#startsEmpty(stage)) {
      return fresh(scratchConfig(platform), { snapshot: undefined, key: sha256('scratch', formatPlatform(platform)), diffIDs: [], layers: [], own: [], stepKeys: [], baseLayers: 0, history: [], docker: false, baseConfig: undefined });
    }
    const earlier = this.#stageBelow(stage);
    if (earlier) {
      const base = this.#results.get(earlier.index)!;
      const state = new StageState(this.#dockerfile, structuredClone(base.state.config), buildArgs, globals);
      // The ARGs the base stage declared are this stage's too, with their values: BuildKit's scoping (its
      // child stages inherit them), where the image config carries only the ENV.
      for (const [name, value] of base.state.args) state.args.set(name, value);
      return {
        name: label,
        platform: base.platform,
        snapshot: base.snapshot,
        key: base.key,
        diffIDs: [...base.diffIDs],
        layers: [...base.layers],
        own: [],
        stepKeys: [...base.stepKeys],
        baseLayers: base.diffIDs.length,
        history: [...base.history],
        docker: base.docker,
        baseConfig: base.baseConfig,
        state,
      };
    }
    const image = this.#baseImages.get(stage.index)!;
    const unpacked = await this.#images.unpack(image.ref, { platform: { platform }, ...(this.#options.signal ? { signal: this.#options.signal } : {}) });
    const p = image.platformImage;
    if (unpacked.chainID) this.#images.leases.add(this.#lease.id, { type: 'snapshot', id: unpacked.chainID });
    // A base without PATH gets Docker's default, as BuildKit and buildah give it (scratch's too).
    const baseRun = structuredClone((p.config.config ?? {}) as RunConfig);
    baseRun.Env = withDefaultPath(baseRun.Env ?? []);
    return fresh(baseRun, {
      snapshot: unpacked.chainID,
      key: sha256('image', p.manifestDescriptor.digest),
      diffIDs: [...p.config.rootfs.diff_ids],
      layers: [...p.manifest.layers],
      own: [],
      stepKeys: p.config.rootfs.diff_ids.map(() => null),
      baseLayers: p.config.rootfs.diff_ids.length,
      history: [...(p.config.history ?? [])],
      docker: p.manifestDescriptor.mediaType === mediaTypes.DOCKER_MANIFEST,
      baseConfig: p.config,
    });
  }

  /** The image `reference` names: a named context's (an image of the store or one a layout holds), or the store's. */
  async #imageFor(reference: string, platform: Platform, line: number): Promise<{ ref: string; platformImage: PlatformImage }> {
    const digest = await this.#named.layoutImage(reference, platform, line);
    if (digest !== undefined) return { ref: digest, platformImage: this.#images.platformImage(digest, { platform }) };
    return this.#image(this.#named.imageReference(reference) ?? reference, platform, line);
  }

  /**
   * An image from the store (pulled first when missing and a puller was given, or always with pullAlways,
   * once a build); `line` 0 for one no line names (a `cacheFrom` image).
   */
  async #image(reference: string, platform: Platform, line: number) {
    const find = () => storedImage(this.#images, reference, platform);
    const once = `${reference}\0${formatPlatform(platform)}`;
    if (this.#options.pullAlways && this.#options.pull && !this.#pulled.has(once)) {
      this.#pulled.add(once);
      await this.#options.pull(reference, platform);
    }
    try {
      return find();
    } catch (error) {
      if (!isNotFound(error)) throw error;
      if (!this.#options.pull) throw new NotFoundError(`${line > 0 ? `Dockerfile line ${line}: ` : ''}image ${quote(reference)} is not in the store (strata pull ${reference}, or strata image import)`, { path: reference });
    }
    await this.#options.pull(reference, platform);
    return find();
  }

  // ---- steps ----------------------------------------------------------------------------------------

  async #runStep(stage: StageResult, step: Instruction): Promise<void> {
    const number = ++this.#step;
    const text = redactUrls(`${step.keyword} ${flagText(step)}${step.args}`);
    this.#emit({ type: 'step', step: number, total: this.#total, stage: stage.name, instruction: text });
    const started = performance.now();
    const done = (cached: boolean, layer: string | null) =>
      this.#emit({ type: 'done', step: number, total: this.#total, stage: stage.name, instruction: text, cached, seconds: (performance.now() - started) / 1000, layer });
    let plan: StepPlan;
    if (stage.state.apply(step)) {
      const made = step.keyword === 'WORKDIR' ? await this.#planWorkdir(stage, step) : undefined;
      if (made === undefined) {
        // Without an epoch, a step that makes no layer takes its time from the layers around it (#finish).
        stage.history.push({ ...(this.#epoch !== undefined ? { created: createdAt(this.#epoch) } : {}), created_by: historyText(step), empty_layer: true });
        done(false, null);
        return;
      }
      plan = made;
    } else plan = await atLine(step, () => (step.keyword === 'RUN' ? this.#runs.plan(stage, step) : this.#copies.plan(stage, step)));
    try {
      const settings = [this.#options.compression ?? 'none', String(this.#epoch ?? '')];
      const key = plan.link ? sha256('link', plan.identity, ...settings) : sha256(stage.key, plan.identity, ...settings);
      // The steps after a linked one see the base and the link together: their keys chain through both.
      const chained = plan.link ? sha256(stage.key, key) : key;
      const cached = this.#options.noCache || this.#noCacheStages.has(stage.name) ? undefined : ((await this.#cache.get(key)) ?? (await this.#fromCacheImages(stage, step, key, text)));
      if (cached && chainID([...stage.diffIDs, cached.layer.diffID]) === cached.snapshot) {
        this.#images.leases.add(this.#lease.id, { type: 'snapshot', id: cached.snapshot }, { type: 'content', id: cached.layer.digest });
        this.#addLayer(stage, cached.layer, cached.snapshot, chained, key, plan.history, cached.created);
        this.#cached++;
        done(true, cached.layer.diffID);
        return;
      }
      if (cached && plan.link) {
        // Made before on another base: the same layer goes onto this one (its blob is the cache's).
        this.#images.leases.add(this.#lease.id, { type: 'content', id: cached.layer.digest });
        const snapshot = await this.#applyOnto(stage, step, cached.layer);
        this.#cache.put(key, { snapshot, layer: cached.layer, step: text }, cached.created);
        this.#addLayer(stage, cached.layer, snapshot, chained, key, plan.history, cached.created);
        this.#cached++;
        done(true, cached.layer.diffID);
        return;
      }
      if (plan.materialize) {
        await plan.materialize().catch((error: unknown) => {
          throw withLine(step, error);
        });
      }
      const { layer, snapshot } = plan.link ? await this.#executeLinked(stage, step, number, plan.execute) : await this.#execute(stage, step, number, plan.execute);
      const made = Date.now();
      this.#cache.put(key, { snapshot, layer, step: text }, made);
      this.#addLayer(stage, layer, snapshot, chained, key, plan.history, made);
      this.#ran++;
      done(false, layer.diffID);
    } finally {
      plan.dispose?.();
    }
  }

  /**
   * `chained`: the stage's key after the step; `stepKey`: the step's own, by which the cache found or keeps
   * it; `made`: when the layer was made (ms), a cached step's first run, which its history keeps (clamped to
   * the epoch where there is one), as BuildKit takes a layer's time from its cache record.
   */
  #addLayer(stage: StageResult, layer: LayerDescriptor, snapshot: string, chained: string, stepKey: string, createdBy: string, made: number): void {
    this.#stepLayers.set(stepKey, { layer, below: chainOf(stage.diffIDs) });
    stage.diffIDs.push(layer.diffID);
    stage.stepKeys.push(stepKey);
    stage.layers.push(layerDescriptor(layer, stage.docker));
    stage.own.push(layer);
    stage.history.push({ created: this.#epoch !== undefined ? createdAt(this.#epoch) : timeOf(made), created_by: createdBy });
    stage.snapshot = snapshot;
    stage.key = chained;
  }

  /** A `cacheFrom` source's image: from the store (pulled if missing), or imported nameless from a layout. */
  async #cacheSource(source: CacheSource): Promise<{ ref: string; platformImage: PlatformImage }> {
    if (typeof source === 'string') return this.#image(source, this.#platform, 0);
    const imported = await this.#images.import(source.src, { platform: { platform: this.#platform }, ...(this.#options.signal ? { signal: this.#options.signal } : {}) });
    const digest = imported.images[0]!.target.digest;
    return { ref: digest, platformImage: this.#images.platformImage(digest, { platform: this.#platform }) };
  }

  /**
   * The step of cache key `key` as a `cacheFrom` image recorded it, made a record of the root's cache: the
   * first recorded layer that goes on the layers the stage stands on (the key says so, the chain checks
   * it), applied onto the stage's tree. A layer that cannot be had or applied is a warning, and the step runs.
   */
  async #fromCacheImages(stage: StageResult, step: Instruction, key: string, text: string): Promise<CacheRecord | undefined> {
    const below = chainOf(stage.diffIDs);
    for (const hit of (await this.#cacheSources?.find(key)) ?? []) {
      if (hit.below !== below) continue;
      const { digest, size, mediaType } = hit.layer;
      try {
        const labels = this.#images.content.info(digest).labels; // NOT_FOUND: the image's blob is not in the store
        const layer: LayerDescriptor = { diffID: hit.diffID, digest, size, uncompressedSize: Number(labels[UNCOMPRESSED_SIZE_LABEL] ?? 0), compression: mediaTypes.layerCompressionOf(mediaType) ?? 'none', mediaType };
        const snapshot = await this.#applyOnto(stage, step, layer);
        this.#cache.put(key, { snapshot, layer, step: text }, hit.created);
        return await this.#cache.get(key);
      } catch (error) {
        if (!isStrataError(error)) throw error;
        this.#emit({ type: 'warning', message: `--cache-from ${hit.ref}: ${error.message}; the step runs` });
      }
    }
    return undefined;
  }

  /** Runs `execute` in a new container on the stage's tree; its change becomes a layer and a committed snapshot. */
  #execute(stage: StageResult, step: Instruction, number: number, execute: StepPlan['execute']): Promise<{ layer: LayerDescriptor; snapshot: string }> {
    return this.#commitOnto(stage, step, async (active) => {
      await execute(active, number);
      return this.#layerOf(active);
    });
  }

  /** A new active snapshot for a step, on `parent` (or on nothing), held by the build's lease. */
  async #prepare(step: Instruction, parent: string | undefined): Promise<string> {
    const active = `build-${process.pid}-${randomBytes(6).toString('hex')}`;
    this.#images.leases.add(this.#lease.id, { type: 'snapshot', id: active });
    await this.#images.snapshotter.prepare(active, parent, { labels: { 'strata.io/build-step': `line ${step.line}` } });
    return active;
  }

  /**
   * An active snapshot on the stage's tree, made by `fill` into the change of the layer it returns, then
   * committed as the stage's next snapshot (named by chainID); removed unless it was committed.
   */
  async #commitOnto(stage: StageResult, step: Instruction, fill: (active: string) => Promise<LayerDescriptor>): Promise<{ layer: LayerDescriptor; snapshot: string }> {
    const { snapshotter, leases } = this.#images;
    const active = await this.#prepare(step, stage.snapshot);
    let committed = false;
    try {
      const layer = await fill(active);
      const snapshot = chainID([...stage.diffIDs, layer.diffID]);
      leases.add(this.#lease.id, { type: 'snapshot', id: snapshot });
      try {
        await snapshotter.commit(snapshot, active, { labels: { [UNCOMPRESSED_LABEL]: layer.diffID } });
        committed = true;
      } catch (error) {
        if (!isAlreadyExists(error)) throw error; // the same tree was committed before (an unpack, another build): that one serves
      }
      return { layer, snapshot };
    } finally {
      if (!committed) await snapshotter.remove(active).catch(() => {});
    }
  }

  /** The change of active snapshot `active` as a layer in the content store (held by the build's lease). */
  async #layerOf(active: string): Promise<LayerDescriptor> {
    const { snapshotter, content } = this.#images;
    const temp = content.temporaryPath();
    try {
      const layer = await snapshotter.diff(active, {
        path: temp,
        compression: this.#options.compression ?? 'none',
        durable: true,
        ...(this.#epoch !== undefined ? { sourceDateEpoch: this.#epoch } : {}),
        ...(this.#idMap ? { idMap: this.#idMap } : {}),
      });
      await content.adopt(temp, layer.digest, { lease: this.#lease.id, labels: layerLabels(layer) });
      return layer;
    } finally {
      rmSync(temp, { force: true });
    }
  }

  /**
   * A `--link` step: carried out on an empty tree (users looked up in the stage's; a stage from scratch has
   * none, so the empty tree's), its layer then laid on the stage's tree.
   */
  async #executeLinked(stage: StageResult, step: Instruction, number: number, execute: StepPlan['execute']): Promise<{ layer: LayerDescriptor; snapshot: string }> {
    const { snapshotter } = this.#images;
    const scratch = await this.#prepare(step, undefined);
    let layer: LayerDescriptor;
    try {
      await execute(scratch, number, stage.snapshot);
      layer = await this.#layerOf(scratch);
    } finally {
      await snapshotter.remove(scratch).catch(() => {});
    }
    return { layer, snapshot: await this.#applyOnto(stage, step, layer) };
  }

  /** The snapshot of the stage's tree with `layer` (from the content store) over it, made unless it is there. */
  async #applyOnto(stage: StageResult, step: Instruction, layer: LayerDescriptor): Promise<string> {
    const { snapshotter, content, leases } = this.#images;
    const snapshot = chainID([...stage.diffIDs, layer.diffID]);
    leases.add(this.#lease.id, { type: 'snapshot', id: snapshot });
    try {
      if ((await snapshotter.stat(snapshot)).kind === 'committed') return snapshot;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const made = await this.#commitOnto(stage, step, async (active) => {
      const applied = await snapshotter.applyLayer(active, content.path(layer.digest));
      if (applied.diffID !== layer.diffID) throw new DigestMismatchError(`Dockerfile line ${step.line}: the layer ${layer.digest} unpacks to ${applied.diffID}, not ${layer.diffID} (the store is damaged; run fsck --content)`);
      return layer;
    });
    return made.snapshot;
  }

  // ---- WORKDIR ----------------------------------------------------------------------------------------

  /**
   * WORKDIR makes its directory when the stage's tree lacks it, even if no step uses it (the Dockerfile
   * reference's rule), as BuildKit's frontend does: `mkdir -p`, mode 0755, the directories made owned by
   * the stage's USER (a name the image does not know gives root, as in BuildKit). Undefined when there is
   * nothing to make: then WORKDIR only changes the config.
   */
  async #planWorkdir(stage: StageResult, step: Instruction): Promise<StepPlan | undefined> {
    const dir = stage.state.config.WorkingDir;
    if (!dir || dir === '/') return undefined;
    if (stage.snapshot !== undefined) {
      const tree = await this.#images.snapshotter.open(stage.snapshot);
      const found = await tree.stat(dir).catch(() => undefined);
      if (found?.isDirectory()) return undefined;
    }
    const user = stage.state.config.User ?? '';
    const execute = async (key: string, _number: number, usersFrom: string = key) => {
      const layer = await this.#images.snapshotter.open(key);
      let owner = { uid: 0, gid: 0 };
      if (user !== '') {
        const resolved = await resolveUser(usersFrom === key ? layer : await this.#images.snapshotter.open(usersFrom), user, { chown: true }).catch(() => undefined);
        if (resolved) owner = { uid: resolved.uid, gid: resolved.gid };
      }
      let made: string | undefined;
      try {
        made = await layer.mkdir(dir, { recursive: true, mode: 0o755 });
      } catch (error) {
        throw lineError(step.line, `WORKDIR ${dir}: ${(error as Error).message}`);
      }
      const chown = chownThrough(layer, this.#idMap);
      if (made !== undefined && (owner.uid !== 0 || owner.gid !== 0)) for (let p = dir; p.length >= made.length; p = posix.dirname(p)) await chown(p, owner);
    };
    return { identity: JSON.stringify(['WORKDIR', dir, user]), history: `WORKDIR ${dir}`, execute };
  }

  /**
   * `--from`: an earlier stage, an image (unpacked), or a named context's directory or repository. A stage's
   * and an image's owners are kept; a directory's files are root's, as BuildKit's client sends every local
   * directory.
   */
  async #fromTree(from: string, step: Instruction, stage: StageResult): Promise<{ tree: SourceTree; identity: string; keepOwners: boolean }> {
    // As neededStages resolved it: a name given twice is its last stage.
    const index = this.#named.has(from) ? undefined : stageNamed(this.#dockerfile, from);
    let snapshot: string | undefined;
    let label: string;
    if (index && this.#results.has(index.index)) {
      const source = this.#results.get(index.index)!;
      snapshot = source.snapshot;
      label = `stage ${JSON.stringify(from)}`;
    } else {
      const tree = await this.#named.tree(from, step.line);
      if (tree !== undefined) return { tree, identity: 'tree', keepOwners: false };
      if (this.#named.isScratch(from)) throw lineError(step.line, `COPY --from=${from}: the named context is scratch, which is empty`);
      const image = await this.#imageFor(from, stage.platform, step.line);
      const unpacked = await this.#images.unpack(image.ref, { platform: { platform: stage.platform } });
      snapshot = unpacked.chainID;
      label = `image ${quote(this.#named.imageReference(from) ?? from)}`;
    }
    if (snapshot === undefined) throw lineError(step.line, `COPY --from=${from}: ${label} is empty`);
    const view = await this.#images.snapshotter.open(snapshot);
    // The source's content, not its name, enters the key: a stage rebuilt to the same bytes still hits.
    return { tree: new SnapshotTree(label, view, (path, compute) => this.#cache.fileSum(snapshot!, path, compute)), identity: 'tree', keepOwners: true };
  }

  // ---- the image ------------------------------------------------------------------------------------

  async #finish(stage: StageResult): Promise<BuiltImage> {
    const { content, images } = this.#images;
    let diffIDs = stage.diffIDs;
    let layers = stage.layers;
    // Without an epoch, the times the layers were made: a rebuild whose steps are all cached is the same image.
    let history = this.#epoch === undefined ? fillHistoryTimes(stage.history) : stage.history;
    if (this.#options.squash && stage.own.length > 0) {
      const temp = content.temporaryPath();
      let layer: LayerDescriptor;
      try {
        layer = await flatten(stage.own.map((l) => content.path(l.digest)), temp, { compression: this.#options.compression ?? 'none', durable: true, ...(this.#epoch !== undefined ? { sourceDateEpoch: this.#epoch } : {}) });
        await content.adopt(temp, layer.digest, { lease: this.#lease.id, labels: layerLabels(layer) });
      } finally {
        rmSync(temp, { force: true });
      }
      diffIDs = [...diffIDs.slice(0, stage.baseLayers), layer.diffID];
      layers = [...layers.slice(0, stage.baseLayers), layerDescriptor(layer, stage.docker)];
      const lastMade = history.findLast((h) => !h.empty_layer)?.created;
      history = foldHistory(history, stage.baseLayers, { ...(this.#epoch !== undefined ? { created: createdAt(this.#epoch) } : lastMade !== undefined ? { created: lastMade } : {}), created_by: 'strata build --squash', comment: `${stage.own.length} layer(s) folded into one` });
    }
    const base = stage.baseConfig;
    const own = base ? configPlatform(base) : stage.platform;
    // A build that asked for a platform makes an image of it, whatever the final stage stood on (its base
    // image's, FROM --platform's), as BuildKit writes it: the base's variant kept where the build's names
    // none and the base is of the same OS and CPU.
    const asked = this.#options.platform === undefined ? undefined : this.#platform;
    const sameCpu = asked !== undefined && asked.os === own.os && asked.architecture === own.architecture;
    const variant = asked === undefined ? own.variant : (asked.variant ?? (sameCpu ? own.variant : undefined));
    const platform: Platform = { ...(asked ?? own), ...(variant ? { variant } : {}) };
    // What Docker's classic builder recorded of the container that made the base is not this image's.
    const { container: _container, container_config: _containerConfig, ...kept } = (base ?? {}) as ImageConfig & { container?: unknown; container_config?: unknown };
    const config: ImageConfig = {
      ...kept,
      ...platform,
      // The epoch, else the last step's time (BuildKit's exporter); none where no step has one.
      ...(this.#epoch !== undefined ? { created: createdAt(this.#epoch) } : lastCreated(history)),
      ...(stage.state.author !== undefined ? { author: stage.state.author } : {}),
      config: withLabels(stage.state.config, this.#options.labels) as Record<string, unknown>,
      rootfs: { type: 'layers', diff_ids: diffIDs },
      history,
      // A squashed layer is no step's: nothing to record.
      ...(this.#options.cacheTo === 'inline' && !(this.#options.squash && stage.own.length > 0) ? { [CACHE_FIELD]: inlineCacheField(stage.stepKeys) } : {}),
    };
    const staged = await stageImageDocuments(content, { config, layers, docker: stage.docker, ...(this.#options.annotations?.manifest ? { annotations: this.#options.annotations.manifest } : {}) });
    const { target } = staged;
    const names: string[] = [];
    try {
      this.#images.root.metadata.transaction(() => {
        staged.publish(this.#lease.id);
        for (const tag of this.#options.tags ?? []) names.push(images.put(tag, target));
        if (names.length === 0 && !this.#nameless) images.putDangling(target);
      });
    } finally {
      staged.discard();
    }
    // A platform's of several: the build exports one cache image for all of them.
    if (typeof this.#options.cacheTo === 'object' && !this.#nameless) await exportBuildCache(this.#images, this.#lease.id, this.cacheSteps(this.#options.cacheTo.mode ?? 'min'), this.#platform, this.#options.cacheTo, this.#options);
    return { target, names, config, ran: this.#ran, cached: this.#cached };
  }

}

/** A time (ms) as image configs write it. */
const timeOf = (ms: number): string => new Date(ms).toISOString().replace(/\.000Z$/, 'Z');

/**
 * History times where a step gave none (a step that made no layer, or a base image's entry without one),
 * as BuildKit's exporter fills them: before the first step with a time after such a gap, that step's time;
 * after it, the time of the step before. So a config step takes the time of the layers around it, never the
 * time of the build.
 */
function fillHistoryTimes(history: readonly History[]): History[] {
  let created: string | undefined;
  let gap = false;
  for (const h of history) {
    if (h.created !== undefined) {
      created = h.created;
      if (gap) break;
    } else gap = true;
  }
  gap = false;
  return history.map((h) => {
    if (h.created !== undefined) {
      if (gap) created = h.created;
      return h;
    }
    gap = true;
    return created === undefined ? h : { ...h, created };
  });
}

/** The config's `created` where no epoch sets it: the last history time, as BuildKit's exporter takes it. */
function lastCreated(history: readonly History[]): { created?: string } {
  const created = history.findLast((h) => h.created !== undefined)?.created;
  return created === undefined ? {} : { created };
}

/** The config with the build's own labels over the Dockerfile's (none: the config as it is). */
function withLabels(config: RunConfig, labels: Readonly<Record<string, string>> | undefined): RunConfig {
  if (labels === undefined || Object.keys(labels).length === 0) return config;
  return { ...config, Labels: { ...(config.Labels ?? {}), ...labels } };
}

/** A config step as history records it (`ENV A=b`, `WORKDIR /app`). */
function historyText(step: Instruction): string {
  return `${step.keyword} ${step.args}`;
}
