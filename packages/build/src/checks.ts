/**
 * Build checks: the warnings `docker build` prints about a Dockerfile (BuildKit's linter, Dockerfile 1.8 and
 * later), with its rule names, messages and lines, so that tools reading them (and users who learnt them)
 * find the same. Configured as BuildKit configures them: a `# check=skip=<rules>|all;error=true` parser
 * directive, or the `BUILDKIT_DOCKERFILE_CHECK` build argument in its place, and a `# check=skip=…` comment
 * just above an instruction for that instruction alone.
 *
 * Checked from the Dockerfile and the context's `.dockerignore`; UndefinedVar, which needs the base images'
 * variables, is check-variables.ts's, and InvalidBaseImagePlatform, which needs their platforms, the
 * builder's (`reporter` serves both). A base image's own SHELL is taken as unset (JSONArgsRecommended), as it
 * is in all but Windows images. Rules about what a stage does (its ENV, LABEL, WORKDIR, CMD, ENTRYPOINT, HEALTHCHECK,
 * EXPOSE, ARG, COPY and ADD) are run for the stages the build needs, or for all in a check run, as BuildKit
 * runs them.
 */
import { posix } from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { InvalidArgumentError } from '@strata/core';
import { parsePlatform, parseReference } from '@strata/images';
import { globalArgs, lineError, stageBelow, stageNamed, type Dockerfile, type Instruction, type Stage } from './dockerfile.js';
import { hasExceptions, patternFilter } from './ignore.js';
import { keyValues, processWord, processWords, splitRaw, type Env } from './lex.js';
import { portParts } from './metadata.js';
import { suggestName } from './suggest.js';

/** One finding: BuildKit's rule, its description and documentation, what was found, and the line. */
export interface BuildCheck {
  readonly rule: string;
  readonly description: string;
  readonly url: string;
  readonly detail: string;
  /** 1-based. */
  readonly line: number;
}

const rule = (slug: string, description: string) => ({ description, url: `https://docs.docker.com/go/dockerfile/rule/${slug}/` });

/** The rules strata runs, by BuildKit's names. */
export const CHECK_RULES = {
  StageNameCasing: rule('stage-name-casing', 'Stage names should be lowercase'),
  FromAsCasing: rule('from-as-casing', "The 'as' keyword should match the case of the 'from' keyword"),
  NoEmptyContinuation: rule('no-empty-continuation', 'Empty continuation lines will become errors in a future release'),
  ConsistentInstructionCasing: rule('consistent-instruction-casing', 'All commands within the Dockerfile should use the same casing (either upper or lower)'),
  DuplicateStageName: rule('duplicate-stage-name', 'Stage names should be unique'),
  ReservedStageName: rule('reserved-stage-name', 'Reserved words should not be used as stage names'),
  JSONArgsRecommended: rule('json-args-recommended', 'JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals'),
  MaintainerDeprecated: rule('maintainer-deprecated', 'The MAINTAINER instruction is deprecated, use a label instead to define an image author'),
  UndefinedArgInFrom: rule('undefined-arg-in-from', 'FROM command must use declared ARGs'),
  WorkdirRelativePath: rule(
    'workdir-relative-path',
    'Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes',
  ),
  MultipleInstructionsDisallowed: rule('multiple-instructions-disallowed', 'Multiple instructions of the same type should not be used in the same stage'),
  LegacyKeyValueFormat: rule('legacy-key-value-format', 'Legacy key/value format with whitespace separator should not be used'),
  RedundantTargetPlatform: rule('redundant-target-platform', 'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior'),
  SecretsUsedInArgOrEnv: rule('secrets-used-in-arg-or-env', 'Sensitive data should not be used in the ARG or ENV commands'),
  InvalidDefaultArgInFrom: rule('invalid-default-arg-in-from', 'Default value for global ARG results in an empty or invalid base image name'),
  FromPlatformFlagConstDisallowed: rule('from-platform-flag-const-disallowed', 'FROM --platform flag should not use a constant value'),
  ExposeProtoCasing: rule('expose-proto-casing', 'Protocol in EXPOSE instruction should be lowercase'),
  ExposeInvalidFormat: rule(
    'expose-invalid-format',
    'IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release',
  ),
  CopyIgnoredFile: rule('copy-ignored-file', 'Attempting to Copy file that is excluded by .dockerignore'),
  UndefinedVar: rule('undefined-var', 'Variables should be defined before their use'),
  // BuildKit documents no page for it.
  InvalidBaseImagePlatform: { description: 'Base image platform does not match expected target platform', url: '' },
} as const;

export type CheckRule = keyof typeof CHECK_RULES;

/** What to check: every rule but those skipped; `error` fails the build when any rule finds something. */
export interface CheckOptions {
  readonly skipAll: boolean;
  readonly skip: ReadonlySet<string>;
  readonly error: boolean;
}

const ALL_RULES: CheckOptions = { skipAll: false, skip: new Set(), error: false };

/**
 * A `check` value: `;`-separated `skip=<rule,…>|all`, `error=<bool>` and `experimental=<rule,…>|all` (no
 * rule of strata's is experimental: taken and ignored). INVALID_ARGUMENT for anything else.
 */
export function parseCheckOptions(value: string): CheckOptions {
  let skipAll = false;
  const skip = new Set<string>();
  let error = false;
  const text = value.trim();
  if (text === '') return ALL_RULES;
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new InvalidArgumentError(`check option ${JSON.stringify(part)} is not key=value (skip=…, error=…, experimental=…)`);
    const key = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (key === 'skip') {
      if (v === 'all') skipAll = true;
      else for (const name of v.split(',')) skip.add(name.trim());
    } else if (key === 'error') {
      const flag = BOOLEANS[v.toLowerCase()];
      if (flag === undefined) throw new InvalidArgumentError(`check option error=${v}: true or false is expected`);
      error = flag;
    } else if (key !== 'experimental') {
      throw new InvalidArgumentError(`check option ${JSON.stringify(key)} is not skip, error or experimental`);
    }
  }
  return { skipAll, skip, error };
}

/** Go's strconv.ParseBool, which BuildKit reads `error=` with. */
const BOOLEANS: Record<string, boolean> = { '1': true, t: true, true: true, '0': false, f: false, false: false };

/**
 * The checks a build runs: the `BUILDKIT_DOCKERFILE_CHECK` build argument when given, which replaces the
 * Dockerfile's own, else its `# check=` parser directive (among the comments that open it).
 */
export function checkOptionsOf(text: string, buildArgs: Readonly<Record<string, string>> = {}): CheckOptions {
  if (Object.hasOwn(buildArgs, 'BUILDKIT_DOCKERFILE_CHECK')) return parseCheckOptions(buildArgs.BUILDKIT_DOCKERFILE_CHECK!);
  const directive = directives(text).values.get('check');
  return directive === undefined ? ALL_RULES : parseCheckOptions(firstWord(directive));
}

/** The value up to its first space (what BuildKit reads of a check directive or comment: the rest is a remark). */
const firstWord = (value: string) => value.trim().split(' ', 1)[0]!;

const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const DIRECTIVE_NAMES = new Set(['syntax', 'escape', 'check']);

/**
 * The parser directives that open a Dockerfile (`# name=value` lines, before anything else, after a `#!`
 * line): their values by lower-cased name, and their lines (0-based).
 */
function directives(text: string): { values: Map<string, string>; lines: Set<number> } {
  const values = new Map<string, string>();
  const at = new Set<number>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = lines[0]?.startsWith('#!') ? 1 : 0; i < lines.length; i++) {
    const match = DIRECTIVE.exec(lines[i]!.replace(/\r$/, ''));
    const name = match?.[1]!.toLowerCase();
    if (match === null || name === undefined || !DIRECTIVE_NAMES.has(name) || values.has(name)) break;
    values.set(name, match[2]!);
    at.add(i);
  }
  return { values, lines: at };
}

/** Where and how an instruction was written: what the parsed Dockerfile does not keep. */
export interface Written {
  /** The keyword as written (`From`, `copy`…). */
  readonly keyword: string;
  /** Its first line (1-based). */
  readonly line: number;
  /** The comments just above it, as BuildKit attaches them (its doc comment is among them). */
  readonly comments: readonly string[];
  /** The `check=` values of those comments. */
  readonly checks: readonly string[];
}

/** Each instruction as written, by its first line, from the text's own parse. */
export function writtenInstructions(text: string): Map<number, Written> {
  const ast = DockerfileParser.parse(text);
  const lines = text.split('\n');
  const heads = directives(text).lines;
  const written = new Map<number, Written>();
  let after = 0; // the line after the previous instruction (0-based)
  for (const node of ast.getInstructions()) {
    const range = node.getRange();
    const start = range.start.line;
    // The comments since the previous instruction, an empty `#` dropping those above it, directives left out.
    let comments: string[] = [];
    for (let i = after; i < start; i++) {
      const line = lines[i]!.trim();
      if (!line.startsWith('#') || heads.has(i)) continue;
      const comment = line.slice(1).trim();
      if (comment === '') comments = [];
      else comments.push(comment);
    }
    const checks = comments.flatMap((c) => {
      const match = /^check\s*=\s*(.+?)\s*$/i.exec(c);
      return match ? [firstWord(match[1]!)] : [];
    });
    written.set(start + 1, { keyword: node.getInstruction(), line: start + 1, comments, checks });
    after = range.end.line + 1;
  }
  return written;
}

/** An Env that records the names looked up in it, and which of them it did not hold. */
export class WatchedEnv implements Env {
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();
  constructor(readonly inner: Env) {}
  get(name: string): string | undefined {
    const value = this.inner.get(name);
    (value === undefined ? this.unmatched : this.matched).add(name);
    return value;
  }
  has(name: string): boolean {
    return this.inner.has(name);
  }
  get size(): number {
    return this.inner.size;
  }
  forEach(fn: (value: string, key: string, map: Env) => void): void {
    this.inner.forEach((value, key) => fn(value, key, this));
  }
  entries(): MapIterator<[string, string]> {
    return this.inner.entries();
  }
  keys(): MapIterator<string> {
    return this.inner.keys();
  }
  values(): MapIterator<string> {
    return this.inner.values();
  }
  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.inner[Symbol.iterator]();
  }
}

const SECRET = /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const NOT_SECRET = /(?:_|^)(?:public|file|version)(?:_|$)/i;
const RESERVED_STAGE_NAMES = new Set(['context', 'scratch']);

/** Options of `checkDockerfile`. */
export interface CheckDockerfileOptions {
  readonly checks?: CheckOptions;
  /** The build's arguments (the FROM lines' variables); default none. */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** The stages whose steps are checked (those a build needs); default all (a check run). */
  readonly stages?: readonly Stage[];
  /** The context's `.dockerignore` patterns (what COPY and ADD from the context cannot find); default none. */
  readonly ignored?: readonly string[];
}

/**
 * The findings of BuildKit's rules (those listed in `CHECK_RULES`) on a parsed Dockerfile and its text, in
 * line order, skipped rules left out.
 */
export function checkDockerfile(text: string, dockerfile: Dockerfile, options: CheckDockerfileOptions = {}): BuildCheck[] {
  const { report, found, written } = reporter(text, options.checks ?? ALL_RULES);
  const keywordOf = (instruction: Instruction) => written.get(instruction.line)?.keyword ?? instruction.keyword;

  noEmptyContinuations(text, dockerfile.escape, written, report);

  // The FROM lines, and what the parse sees of each instruction.
  const stageNames = new Set<string>();
  let lower = 0;
  let upper = 0;
  const count = (keyword: string) => {
    if (keyword === keyword.toLowerCase()) lower++;
    else if (keyword === keyword.toUpperCase()) upper++;
  };
  for (const stage of dockerfile.stages) {
    const from = stage.from;
    const keyword = keywordOf(from);
    count(keyword);
    const words = from.args.split(/\s+/).filter((w) => w !== '');
    if (words.length === 3) {
      const [, as, name] = words as [string, string, string];
      if (name !== name.toLowerCase()) report('StageNameCasing', from.line, `Stage name '${name}' should be lowercase`, from.line);
      const fromLower = keyword === keyword.toLowerCase();
      const fromUpper = keyword === keyword.toUpperCase();
      if ((fromLower && as !== as.toLowerCase()) || (fromUpper && !fromLower && as !== as.toUpperCase())) {
        report('FromAsCasing', from.line, `'${as}' and '${keyword}' keywords' casing do not match`, from.line);
      }
    }
    for (const instruction of stage.instructions) {
      count(keywordOf(instruction));
      if (instruction.keyword === 'MAINTAINER') report('MaintainerDeprecated', instruction.line, 'Maintainer instruction is deprecated in favor of using label', instruction.line);
    }
    if (stage.name !== undefined) {
      if (RESERVED_STAGE_NAMES.has(stage.name)) report('ReservedStageName', from.line, `Stage name should not use the same name as reserved stage "${stage.name}"`);
      if (stageNames.has(stage.name)) report('DuplicateStageName', from.line, `Duplicate stage name "${stage.name}", stage names should be unique`);
      stageNames.add(stage.name);
    }
  }
  const majority = lower > upper ? 'lowercase' : 'uppercase';
  for (const stage of dockerfile.stages) {
    for (const instruction of [stage.from, ...stage.instructions]) {
      const keyword = keywordOf(instruction);
      if (keyword !== (majority === 'lowercase' ? keyword.toLowerCase() : keyword.toUpperCase())) {
        report('ConsistentInstructionCasing', instruction.line, `Command '${keyword}' should match the case of the command majority (${majority})`);
      }
    }
  }

  // The global scope once: with the build's arguments (what FROM lines read), and with none (their defaults).
  const defaults = globalScope(dockerfile, {});
  checkFromLines(dockerfile, globalScope(dockerfile, options.buildArgs ?? {}), defaults, report);
  const checked = options.stages ?? dockerfile.stages;
  const ignored = ignoredSources(options.ignored ?? []);
  for (const stage of dockerfile.stages) if (checked.includes(stage)) checkSteps(dockerfile, stage, keywordOf, defaults ?? new Map(), ignored, report);
  return found.sort((a, b) => a.line - b.line); // stable: a line's findings in the order the rules ran
}

/** Reports rule `name` at `line`, unless skipped for the whole file or by the comments above instruction `at`. */
export type Report = (name: CheckRule, line: number, detail: string, at?: number) => void;

/** Reports rule `name` at the instruction of `line`, skipped as `Report` skips it; a builder's, for what only a build sees. */
export type CheckReport = (name: CheckRule, line: number, detail: string) => void;

/** A `Report` under `config` and the comments of `text`, and the findings it keeps. */
export function reporter(text: string, config: CheckOptions = ALL_RULES): { report: Report; found: BuildCheck[]; written: ReadonlyMap<number, Written> } {
  const written = writtenInstructions(text);
  const found: BuildCheck[] = [];
  const report: Report = (name, line, detail, at) => {
    if (config.skipAll || config.skip.has(name)) return;
    for (const value of at === undefined ? [] : (written.get(at)?.checks ?? [])) {
      let local: CheckOptions;
      try {
        local = parseCheckOptions(value);
      } catch {
        continue; // a comment that only looks like a check
      }
      if (local.skipAll || local.skip.has(name)) return;
    }
    found.push({ rule: name, ...CHECK_RULES[name], detail, line });
  };
  return { report, found, written };
}

/**
 * NoEmptyContinuation: an instruction continued over a line of nothing but spaces (which the parser skips),
 * reported at the instruction's last line as BuildKit's parser reports it. Comment lines in a continuation
 * are skipped, and a heredoc's body is not a continuation.
 */
function noEmptyContinuations(text: string, escape: string, written: ReadonlyMap<number, Written>, report: Report): void {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const continuation = new RegExp(`${escape === '\\' ? '\\\\' : '`'}[ \\t]*$`);
  const continues = (line: string) => continuation.test(line);
  for (const { line } of written.values()) {
    let i = line - 1;
    if (!continues(lines[i]!)) continue;
    let empty = false;
    for (i++; i < lines.length; i++) {
      const current = lines[i]!;
      if (current.trimStart().startsWith('#')) continue;
      if (current.trim() === '') {
        empty = true;
        continue;
      }
      if (!continues(current)) break;
    }
    if (empty) report('NoEmptyContinuation', Math.min(i, lines.length - 1) + 1, 'Empty continuation line');
  }
}

/**
 * The rules of FROM lines, for every stage: variables a FROM uses that no global ARG declares (with the
 * nearest declared name), `--platform=$TARGETPLATFORM`, a constant `--platform` (unless the stage's name
 * says which), and a base name the global ARGs' defaults make invalid.
 */
function checkFromLines(dockerfile: Dockerfile, env: Env | undefined, defaults: Env | undefined, report: Report): void {
  const declared = new Set<string>(dockerfile.automaticArgs.keys());
  for (const arg of dockerfile.globalArgs) for (const [name] of safeKeyValues(arg.args, dockerfile.escape, false)) declared.add(name);
  for (const stage of dockerfile.stages) {
    const from = stage.from;
    const image = from.args.split(/\s+/).filter((w) => w !== '')[0] ?? '';
    if (env !== undefined) checkFromWords(dockerfile, stage, image, env, declared, report);
    if (defaults === undefined) continue;
    // The base name with no build argument given: a default that leaves it empty or invalid (a word that does
    // not expand is the build's error to report, not this rule's).
    let name: string;
    try {
      name = processWord(image, defaults, dockerfile.escape);
    } catch {
      continue;
    }
    try {
      if (name !== 'scratch' && stageNamed(dockerfile, name, stage.index) === undefined) parseReference(name);
    } catch {
      report('InvalidDefaultArgInFrom', from.line, `Default value for ARG ${image} results in empty or invalid base image name`);
    }
  }
}

/** A FROM line's image and `--platform` words with the build's global scope `env`: undeclared names, and the platform rules. */
function checkFromWords(dockerfile: Dockerfile, stage: Stage, image: string, env: Env, declared: ReadonlySet<string>, report: Report): void {
  const from = stage.from;
  const undeclared = (word: string): WatchedEnv | undefined => {
    const watched = new WatchedEnv(env);
    try {
      processWord(word, watched, dockerfile.escape);
    } catch {
      return undefined; // the build reports the word itself
    }
    for (const name of watched.unmatched) {
      if (declared.has(name)) continue;
      const near = suggestName(name, declared);
      report('UndefinedArgInFrom', from.line, `FROM argument '${name}' is not declared${near ? ` (did you mean ${near}?)` : ''}`, from.line);
    }
    return watched;
  };
  undeclared(image);
  const platform = from.flags.platform;
  if (platform === undefined) return;
  const watched = undeclared(platform);
  if (watched === undefined || watched.unmatched.size !== 0) return;
  if (watched.matched.size === 1 && watched.matched.has('TARGETPLATFORM') && processWord(platform, env, dockerfile.escape) === env.get('TARGETPLATFORM')) {
    report('RedundantTargetPlatform', from.line, `Setting platform to predefined ${platform} in FROM is redundant as this is the default behavior`, from.line);
  }
  if (watched.matched.size === 0) constantPlatform(processWord(platform, env, dockerfile.escape), stage, from.line, report);
}

/** FromPlatformFlagConstDisallowed: a platform written as a constant, unless the stage's name holds its OS or architecture. */
function constantPlatform(platform: string, stage: Stage, line: number, report: Report): void {
  let os: string;
  let architecture: string;
  try {
    ({ os, architecture } = parsePlatform(platform.toLowerCase()));
  } catch {
    return; // not a platform: the build says so
  }
  const name = stage.name ?? '';
  if (name.includes(os) || name.includes(architecture)) return;
  report('FromPlatformFlagConstDisallowed', line, `FROM --platform flag should not use constant value "${platform}"`, line);
}

/**
 * The global scope's variables (`globalArgs`), or undefined where a global ARG's value does not expand with
 * these build arguments: the rules that need it are not run then, as BuildKit abandons them.
 */
function globalScope(dockerfile: Dockerfile, buildArgs: Readonly<Record<string, string>>): Map<string, string> | undefined {
  try {
    return globalArgs(dockerfile, buildArgs);
  } catch {
    return undefined;
  }
}

/** `keyValues`, or none where the words do not parse (the build reports them). */
function safeKeyValues(text: string, escape: string, legacy: boolean): [string, string | undefined][] {
  try {
    return keyValues(text, escape, legacy);
  } catch {
    return [];
  }
}

/**
 * The rules of a stage's steps: ENV and LABEL in the old `key value` form, ARG and ENV names that look like
 * secrets, a first WORKDIR that is relative, CMD and ENTRYPOINT in shell form where no SHELL was set, CMD,
 * ENTRYPOINT or HEALTHCHECK given twice (reported at the one that is ignored), COPY and ADD of what
 * `ignored` excludes, and EXPOSE of a protocol in capitals or of an address or host port.
 */
function checkSteps(dockerfile: Dockerfile, stage: Stage, keywordOf: (i: Instruction) => string, globals: Env, ignored: ((source: string) => boolean) | undefined, report: Report): void {
  const escape = dockerfile.escape;
  const chain = stagesBelow(dockerfile, stage);
  const shellSet = (upTo: Instruction) => chain.some((s) => s.instructions.some((i) => i.keyword === 'SHELL' && (s !== stage || i.line < upTo.line)));
  let workdirSet = chain.some((s) => s !== stage && s.instructions.some((i) => i.keyword === 'WORKDIR'));
  const last = new Map<string, Instruction>();
  // What a step's words can be expanded with: the stage's ARG (a global one's default, `globals`, when declared
  // without one) and ENV values; a word naming anything else (the base image's variables) is not judged.
  const vars = new Map<string, string>();
  const expand = (word: string): string | undefined => {
    const watched = new WatchedEnv(vars);
    try {
      const value = processWord(word, watched, escape);
      return watched.unmatched.size === 0 ? value : undefined;
    } catch {
      return undefined;
    }
  };
  for (const step of stage.instructions) {
    const at = step.line;
    switch (step.keyword) {
      case 'ENV':
      case 'LABEL': {
        const words = step.args.trim().split(/\s+/);
        if (words[0] !== undefined && words[0] !== '' && !words[0].includes('=')) {
          report('LegacyKeyValueFormat', at, `"${keywordOf(step)} key=value" should be used instead of legacy "${keywordOf(step)} key value" format`, at);
        }
        if (step.keyword === 'ENV') {
          for (const [key, raw] of safeKeyValues(step.args, escape, true)) {
            const name = expand(key) ?? key;
            if (SECRET.test(name) && !NOT_SECRET.test(name)) report('SecretsUsedInArgOrEnv', at, `Do not use ARG or ENV instructions for sensitive data (ENV "${name}")`, at);
            const value = raw === undefined ? undefined : expand(raw);
            if (value === undefined) vars.delete(name);
            else vars.set(name, value);
          }
        }
        break;
      }
      case 'ARG':
        for (const [name, raw] of safeKeyValues(step.args, escape, false)) {
          if (SECRET.test(name) && !NOT_SECRET.test(name)) report('SecretsUsedInArgOrEnv', at, `Do not use ARG or ENV instructions for sensitive data (ARG "${name}")`, at);
          const value = raw === undefined ? globals.get(name) : expand(raw);
          if (value === undefined) vars.delete(name);
          else vars.set(name, value);
        }
        break;
      case 'WORKDIR':
        if (!workdirSet) {
          const path = expand(step.args.trim());
          if (path !== undefined && !path.startsWith('/')) report('WorkdirRelativePath', at, `Relative workdir ${JSON.stringify(path)} can have unexpected results if the base image changes`, at);
        }
        workdirSet = true;
        break;
      case 'CMD':
      case 'ENTRYPOINT':
      case 'HEALTHCHECK': {
        const before = last.get(step.keyword);
        if (before !== undefined) {
          // The one that is ignored is the earlier: reported there, named as this one is written.
          report('MultipleInstructionsDisallowed', before.line, `Multiple ${keywordOf(step)} instructions should not be used in the same stage because only the last one will be used`, at);
        }
        last.set(step.keyword, step);
        if (step.keyword !== 'HEALTHCHECK' && step.json === undefined && !shellSet(step)) {
          report('JSONArgsRecommended', at, `JSON arguments recommended for ${keywordOf(step)} to prevent unintended behavior related to OS signals`, at);
        }
        break;
      }
      case 'COPY':
      case 'ADD': {
        if (ignored === undefined || step.flags.from !== undefined || step.heredocs !== undefined) break;
        const words = step.json ?? splitRawSafe(step.args, escape);
        for (const word of words.slice(0, -1)) {
          if (step.keyword === 'ADD' && /^[a-z][a-z0-9+.-]*:\/\/|^git@/i.test(word)) continue; // a URL or repository, not the context's
          const source = step.json ? word : expand(word);
          if (source !== undefined && ignored(source)) report('CopyIgnoredFile', at, `Attempting to ${step.keyword === 'ADD' ? 'Add' : 'Copy'} file ${JSON.stringify(cleanSource(source))} that is excluded by .dockerignore`, at);
        }
        break;
      }
      case 'EXPOSE': {
        let words: string[];
        try {
          words = processWords(step.args, vars, escape);
        } catch {
          break;
        }
        for (const word of words) {
          const { address, host, port, protocol } = portParts(word);
          if (port !== '' && protocol !== protocol.toLowerCase()) report('ExposeProtoCasing', at, `Defined protocol '${word}' in EXPOSE instruction should be lowercase`, at);
          if (address !== '' || host !== '') report('ExposeInvalidFormat', at, `EXPOSE instruction should not define an IP address or host-port mapping, found '${word}'`, at);
        }
        break;
      }
      default:
    }
  }
}

/** A source as BuildKit cleans one before matching it (`./a/../b/` is `b`, `/a` stays `/a`). */
function cleanSource(source: string): string {
  const clean = posix.normalize(source).replace(/(.)\/+$/, '$1');
  return clean === './' ? '.' : clean;
}

/**
 * CopyIgnoredFile's question, as BuildKit asks it: whether a COPY or ADD source (cleaned) is excluded by the
 * context's `.dockerignore`, or a directory above it is. Undefined where it is not asked: no patterns, or
 * patterns with exceptions (`!`), under which an excluded directory may hold what is kept. The context root
 * (`.` or `/`) counts only under a pattern that excludes everything (`*`, `**`, `**\/*`).
 */
function ignoredSources(patterns: readonly string[]): ((source: string) => boolean) | undefined {
  if (patterns.length === 0 || hasExceptions(patterns)) return undefined;
  const excluded = patternFilter(patterns);
  const everything = patterns.some((p) => ['*', '**', '**/*'].includes(p.trim()));
  return (source) => {
    const clean = cleanSource(source);
    if (clean === '.' || clean === '/') return everything;
    // BuildKit matches the path as written, and no pattern (relative to the context) matches one from `/`.
    return !clean.startsWith('/') && !clean.startsWith('../') && excluded(clean);
  };
}

/** `splitRaw`, or no words where the text does not split (the build reports it). */
function splitRawSafe(text: string, escape: string): string[] {
  try {
    return splitRaw(text, escape);
  } catch {
    return [];
  }
}

/** `stage` and the Dockerfile's stages below it (its FROM naming an earlier stage), bottom first. */
function stagesBelow(dockerfile: Dockerfile, stage: Stage): Stage[] {
  const chain = [stage];
  for (let s = stageBelow(dockerfile, stage); s !== undefined; s = stageBelow(dockerfile, s)) chain.unshift(s);
  return chain;
}

/** The error a build with `error=true` stops with: every rule that found something, at the first finding's line. */
export function checkFailure(found: readonly BuildCheck[]): InvalidArgumentError {
  const rules = [...new Set(found.map((f) => f.rule))];
  return lineError(found[0]!.line, `lint violation found for rules: ${rules.join(', ')}`);
}
