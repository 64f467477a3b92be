/**
 * The Dockerfile frontend: instructions, their lines, flags and forms, grouped into stages, over
 * `dockerfile-ast` (a maintained parser: continuations, comments, parser directives, heredocs, JSON forms).
 * Every instruction and flag strata does not carry out is an error naming its line, never ignored. Word
 * processing follows Docker's rules (`lex.ts`) rather than the parser's own value splitting, which reads
 * escaped quotes differently from Docker.
 */
import { posix } from 'node:path';
import { DockerfileParser, type Instruction as AstInstruction } from 'dockerfile-ast';
import { InvalidArgumentError, StrataError } from '@strata/core';
import { formatPlatform, type Platform } from '@strata/images';
import { keyValues, processWord, WordError, type Env } from './lex.js';
import { mountFroms, MountError, parseRunMount, type RunMount } from './run-mounts.js';
import { didYouMean, suggestIgnoringCase, suggestName } from './suggest.js';

export type Keyword =
  | 'FROM'
  | 'ARG'
  | 'ENV'
  | 'LABEL'
  | 'WORKDIR'
  | 'USER'
  | 'EXPOSE'
  | 'VOLUME'
  | 'CMD'
  | 'ENTRYPOINT'
  | 'SHELL'
  | 'STOPSIGNAL'
  | 'HEALTHCHECK'
  | 'ONBUILD'
  | 'COPY'
  | 'ADD'
  | 'RUN'
  | 'MAINTAINER';

/** The flags each instruction takes (any other is an error naming it). */
const FLAGS: Readonly<Record<Keyword, readonly string[]>> = {
  FROM: ['platform'],
  ARG: [],
  ENV: [],
  LABEL: [],
  WORKDIR: [],
  USER: [],
  EXPOSE: [],
  VOLUME: [],
  CMD: [],
  ENTRYPOINT: [],
  SHELL: [],
  STOPSIGNAL: [],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
  ONBUILD: [],
  COPY: ['from', 'chown', 'chmod', 'link', 'parents', 'exclude'],
  ADD: ['chown', 'chmod', 'checksum', 'link', 'unpack', 'exclude', 'keep-git-dir'],
  RUN: ['mount', 'network', 'security'],
  MAINTAINER: [],
};

/** A here-document: `<<NAME` (`<<-NAME` strips the body's leading tabs, a quoted name keeps `$` literal). */
export interface Heredoc {
  readonly name: string;
  /** The body as written, each line with its newline. */
  readonly content: string;
  /** `<<-`. */
  readonly chomp: boolean;
  /** `<<"NAME"` or `<<'NAME'`. */
  readonly quoted: boolean;
}

/** A heredoc's body with each line's leading tabs taken off (what `<<-` asks for). */
export function chompHeredoc(content: string): string {
  return content.replace(/^\t+/gm, '');
}

/** How many escape characters a line ends with (an odd number continues it). */
function trailingEscapes(text: string, escape: string): number {
  let n = 0;
  while (n < text.length && text[text.length - 1 - n] === escape) n++;
  return n;
}

/** Flags that are switches: `--link` alone means `--link=true`. */
const SWITCHES = new Set(['link', 'parents', 'unpack', 'keep-git-dir']);

/** One instruction as written. */
export interface Instruction {
  readonly keyword: Keyword;
  /** 1-based, where the instruction starts. */
  readonly line: number;
  readonly flags: Readonly<Record<string, string>>;
  /** The arguments with continuations joined, flags left out; not expanded. */
  readonly args: string;
  /** The exec (JSON) form's strings, when the instruction was written that way. */
  readonly json?: readonly string[];
  /** Its here-documents (RUN, COPY and ADD), in order; `args` is then the instruction's first line. */
  readonly heredocs?: readonly Heredoc[];
  /** `RUN --mount` values, in order (a flag given more than once); not expanded. */
  readonly mounts?: readonly string[];
  /** `COPY --exclude` and `ADD --exclude` patterns, in order (a flag given more than once); never expanded, as in BuildKit. */
  readonly excludes?: readonly string[];
}

export interface Stage {
  /** Its position among the stages, from 0 (what `COPY --from=<n>` names). */
  readonly index: number;
  /** `AS <name>`, lower-cased as Docker compares them. */
  readonly name?: string;
  /** The FROM instruction; its image is expanded with the global ARGs only. */
  readonly from: Instruction;
  readonly image: string;
  readonly platform?: string;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  /** The escape character (`# escape=` directive; `\` by default). */
  readonly escape: string;
  /** The ARGs every build defines in the global scope (`platformArgs`), under the Dockerfile's own. */
  readonly automaticArgs: ReadonlyMap<string, string>;
  /** ARGs before the first FROM: usable in FROM lines, and in a stage that declares them again. */
  readonly globalArgs: readonly Instruction[];
  readonly stages: readonly Stage[];
}

/** An instruction's flags as written, each followed by a space, for progress and history. */
export function flagText(step: Instruction): string {
  const flags = Object.entries(step.flags).map(([k, v]) => ((k === 'link' || k === 'parents') && v === 'true' ? `--${k} ` : `--${k}=${v} `));
  return flags.join('') + (step.excludes ?? []).map((p) => `--exclude=${p} `).join('');
}

/** A Dockerfile problem, with its line (INVALID_ARGUMENT). */
export function lineError(line: number, message: string): InvalidArgumentError {
  return new InvalidArgumentError(`Dockerfile line ${line}: ${message}`);
}

/** A strata error of the same kind, its message after `prefix`; any other error as it is. */
export function withPrefix(prefix: string, error: unknown): unknown {
  if (!(error instanceof StrataError)) return error;
  const Kind = error.constructor as new (message: string, options: { cause: unknown }) => StrataError;
  return new Kind(`${prefix}${error.message}`, { cause: error });
}

/** A word the instruction could not process (WordError) as the line's error; any other error as it is. */
export function atWordsLine(instruction: Instruction, error: unknown): unknown {
  return error instanceof WordError ? lineError(instruction.line, `${instruction.keyword}: ${error.message}`) : error;
}

/** `fn`'s result, a word it could not process reported with the instruction's line. */
export function wordsAt<T>(instruction: Instruction, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw atWordsLine(instruction, error);
  }
}

const KEYWORDS = new Set<string>(Object.keys(FLAGS));

/** The networks `RUN --network` takes, as BuildKit's frontend: the build's own (`default`, here the host's), `host`, or `none`. */
export type RunNetwork = 'default' | 'host' | 'none';
const RUN_NETWORKS: readonly RunNetwork[] = ['default', 'host', 'none'];

/** `RUN --security`: `sandbox` (the default) or `insecure` (what `docker run --privileged` gives). */
export type RunSecurity = 'sandbox' | 'insecure';

/** The mode a RUN's `--security` value names; a line error for anything else (not expanded, as in BuildKit). */
export function runSecurityAt(value: string | undefined, line: number): RunSecurity {
  if (value === undefined || value === 'sandbox') return 'sandbox';
  if (value !== 'insecure') throw lineError(line, `RUN --security=${value} is not a mode (RUN --security takes sandbox, insecure)`);
  return value;
}

/** The network a RUN's `--network` value names; a line error for anything else (variables are not expanded in it, as in BuildKit). */
export function runNetworkAt(value: string | undefined, line: number): RunNetwork {
  if (value === undefined) return 'default';
  if (!(RUN_NETWORKS as readonly string[]).includes(value)) throw lineError(line, `RUN --network=${value} is not a network (RUN --network takes ${RUN_NETWORKS.join(', ')})`);
  return value as RunNetwork;
}

/** A `RUN --mount` value (expanded) for a step in `cwd`, as `parseRunMount` reads it; malformed: the line's error. */
export function runMountAt(spec: string, cwd: string, line: number, sshBefore = 0): RunMount {
  try {
    return parseRunMount(spec, cwd, sshBefore);
  } catch (error) {
    if (error instanceof MountError) throw lineError(line, error.message);
    throw error;
  }
}

/**
 * Why line `line` may have been read as an instruction: a heredoc on a file descriptor (`RUN 3<<IN …`), which
 * BuildKit's parser takes and dockerfile-ast does not, opened above it and ended by a line of its name
 * below. Empty when there is none.
 */
function fdHeredocHint(text: string, line: number): string {
  const lines = text.split('\n');
  for (let i = line - 2; i >= 0; i--) {
    for (const match of lines[i]!.matchAll(/(?:^|\s)(\d+)<<-?(["']?)([A-Za-z_][A-Za-z0-9_]*)\2(?=\s|$)/g)) {
      const name = match[3]!;
      if (lines.slice(line - 1).some((l) => l.trim() === name)) {
        return ` (line ${i + 1} opens a heredoc on file descriptor ${match[1]}, ${match[1]}<<${name}, which strata's parser does not read: write <<${name} and redirect in the command)`;
      }
    }
  }
  return '';
}

function instructionOf(ast: AstInstruction, text: string, escape: string): Instruction {
  const line = ast.getRange().start.line + 1;
  const keyword = ast.getKeyword().toUpperCase();
  if (!KEYWORDS.has(keyword)) {
    // A heredoc's body read as instructions says why; otherwise the nearest instruction, as BuildKit suggests it.
    const hint = fdHeredocHint(text, line) || didYouMean(suggestIgnoringCase(ast.getKeyword(), KEYWORDS));
    throw lineError(line, `unknown instruction ${JSON.stringify(ast.getKeyword())}${hint}`);
  }
  const allowed = FLAGS[keyword as Keyword];
  const flags: Record<string, string> = {};
  const mounts: string[] = [];
  const excludes: string[] = [];
  const astFlags = (ast as unknown as { getFlags?: () => { getName(): string; getValue(): string | null }[] }).getFlags?.() ?? [];
  for (const flag of astFlags) {
    const name = flag.getName();
    if (!allowed.includes(name)) {
      const near = suggestName(name, allowed);
      throw lineError(line, `${keyword} --${name} is not supported${near ? ` (did you mean --${near}?)` : allowed.length ? ` (${keyword} takes ${allowed.map((f) => `--${f}`).join(', ')})` : ''}`);
    }
    let value = flag.getValue();
    if (SWITCHES.has(name)) {
      value = value === null ? 'true' : value.toLowerCase();
      if (value !== 'true' && value !== 'false') throw lineError(line, `${keyword} --${name}=${flag.getValue()}: true or false is expected`);
    }
    if (value === null || value === '') throw lineError(line, `${keyword} --${name} needs a value`);
    if (name === 'mount') {
      // Checked here when it needs no variables, so a build fails before its first step, as BuildKit's does.
      if (!value.includes('$')) runMountAt(value, '/', line);
      mounts.push(value);
    } else if (name === 'exclude') excludes.push(value);
    else if (name in flags) throw lineError(line, `${keyword} --${name} given twice`);
    // COPY --from is taken as BuildKit's parser reads a flag, before any expansion (see checkCopyFrom).
    else flags[name] = keyword === 'COPY' && name === 'from' ? unquoteFlag(value, escape) : value;
    if (name === 'network') runNetworkAt(value, line); // before the first step, as BuildKit's frontend refuses it
    if (name === 'security') runSecurityAt(value, line);
  }
  // The arguments after the flags (the parser leaves them out), continuations joined as Docker joins them.
  let rest = (ast.getArgumentsContent() ?? '').trim();
  type Position = { line: number; character: number };
  type Range = { start: Position; end: Position };
  const found = (ast as unknown as { getHeredocs?: () => { getName(): string; getStartRange(): Range; getDelimiterRange(): Range | null }[] }).getHeredocs?.() ?? [];
  const heredocs: Heredoc[] = [];
  if (found.length > 0) {
    if (keyword !== 'RUN' && keyword !== 'COPY' && keyword !== 'ADD' && keyword !== 'ONBUILD') throw lineError(line, `heredocs are supported in RUN, COPY and ADD (and ONBUILD of them), not ${keyword}`);
    const lines = text.split('\n');
    // Bodies are taken from the lines between the delimiters, not from the parser's content ranges, which it
    // loses for a body starting with the escape character (\$).
    let body = line - 1;
    while (body < lines.length && trailingEscapes(lines[body]!.trimEnd(), escape) % 2 === 1) body++; // the command line's continuations
    body++;
    for (const heredoc of found) {
      const end = heredoc.getDelimiterRange();
      // dockerfile-ast joins a body's last line that ends in the escape character to the delimiter after it,
      // as if continued: refused, where BuildKit's parser would take it as written.
      if (end === null || trailingEscapes(lines[end.start.line - 1]!.trimEnd(), escape) % 2 === 1) {
        throw lineError(line, `the heredoc ${heredoc.getName()} has no end (a line of ${heredoc.getName()} alone; a body whose last line ends in ${escape} is read as continued, so end it with another line)`);
      }
      const content = lines.slice(body, end.start.line).map((l) => `${l}\n`).join('');
      body = end.start.line + 1;
      const start = heredoc.getStartRange();
      const operator = lines[start.start.line]!.slice(start.start.character, start.end.line === start.start.line ? start.end.character : undefined);
      heredocs.push({ name: heredoc.getName(), content, chomp: operator.startsWith('<<-'), quoted: /["']/.test(operator) });
    }
    rest = rest.split('\n')[0]!.trim();
    // An ONBUILD trigger is kept as text, to be parsed again in the image built on this one: with its bodies.
    if (keyword === 'ONBUILD') rest += heredocs.map((h) => `\n${h.content}${h.name}`).join('');
  }
  let json: string[] | undefined;
  if (rest.startsWith('[') && ['CMD', 'ENTRYPOINT', 'RUN', 'SHELL', 'COPY', 'ADD', 'VOLUME', 'HEALTHCHECK'].includes(keyword)) {
    try {
      const parsed = JSON.parse(rest) as unknown;
      if (Array.isArray(parsed) && parsed.every((s) => typeof s === 'string')) json = parsed;
    } catch {
      // not JSON: the shell form, as Docker reads it
    }
  }
  return { keyword: keyword as Keyword, line, flags, args: rest, ...(json ? { json } : {}), ...(heredocs.length > 0 && keyword !== 'ONBUILD' ? { heredocs } : {}), ...(mounts.length > 0 ? { mounts } : {}), ...(excludes.length > 0 ? { excludes } : {}) };
}

/**
 * BuildKit's automatic ARGs: `TARGETPLATFORM`, `TARGETOS`, `TARGETOSVERSION`, `TARGETARCH`, `TARGETVARIANT`
 * of the platform the build is for, the same five `BUILD…` of the one it runs on, and `TARGETSTAGE`, the
 * target's name (given none, `parseDockerfile` makes it the last stage's, or `default`). Defined in the
 * global scope, so a FROM line can use them as they are (`FROM --platform=$BUILDPLATFORM`) and a stage gets
 * one by declaring it without a value (`ARG TARGETARCH`).
 */
export function platformArgs(target: Platform, build: Platform, targetStage?: string): Map<string, string> {
  const args = new Map<string, string>();
  for (const [prefix, p] of [['TARGET', target], ['BUILD', build]] as const) {
    args.set(`${prefix}PLATFORM`, formatPlatform(p));
    args.set(`${prefix}OS`, p.os);
    args.set(`${prefix}OSVERSION`, p['os.version'] ?? '');
    args.set(`${prefix}ARCH`, p.architecture);
    args.set(`${prefix}VARIANT`, p.variant ?? '');
  }
  if (targetStage !== undefined) args.set('TARGETSTAGE', targetStage);
  return args;
}

/**
 * The variables of the global scope: the automatic ARGs, then the global ARGs' defaults, overridden by build
 * args for the names declared.
 */
export function globalArgs(dockerfile: Dockerfile, buildArgs: Readonly<Record<string, string>> = {}): Map<string, string> {
  const env = new Map<string, string>(dockerfile.automaticArgs);
  for (const arg of dockerfile.globalArgs) {
    wordsAt(arg, () => {
      for (const [name, raw] of keyValues(arg.args, dockerfile.escape, false)) {
        const value = Object.hasOwn(buildArgs, name) ? buildArgs[name] : raw === undefined ? undefined : processWord(raw, env, dockerfile.escape);
        if (value !== undefined) env.set(name, value);
      }
    });
  }
  return env;
}

/**
 * Parses and checks a Dockerfile: instructions known, flags known, FROM first, stage names well formed.
 * `automaticArgs` are the global scope's before the Dockerfile's ARGs (`platformArgs`, for a build).
 */
export function parseDockerfile(text: string, buildArgs: Readonly<Record<string, string>> = {}, automatic: ReadonlyMap<string, string> = new Map()): Dockerfile {
  const ast = DockerfileParser.parse(text);
  const escape = ast.getEscapeCharacter();
  // TARGETSTAGE is the target's name; with none given, the last stage's, or "default" (BuildKit's defaultArgs).
  const automaticArgs = automatic.has('TARGETSTAGE') ? automatic : new Map([...automatic, ['TARGETSTAGE', lastStageName(ast.getInstructions()) ?? 'default']]);
  const globals: Instruction[] = [];
  const stages: { index: number; name?: string; from: Instruction; image: string; platform?: string; instructions: Instruction[] }[] = [];
  let env: Env | undefined;
  for (const node of ast.getInstructions()) {
    const instruction = instructionOf(node, text, escape);
    const line = instruction.line;
    if (instruction.keyword === 'ONBUILD') {
      const trigger = instruction.args.split(/\s+/, 1)[0]!.toUpperCase();
      if (trigger === 'ONBUILD' || trigger === 'FROM' || trigger === 'MAINTAINER') throw lineError(line, `ONBUILD ${trigger} is not allowed`);
      if (!KEYWORDS.has(trigger)) throw lineError(line, `ONBUILD of an unknown instruction ${JSON.stringify(trigger)}${didYouMean(suggestName(trigger, KEYWORDS))}`);
    }
    if (instruction.keyword === 'FROM') {
      env ??= globalArgs({ escape, automaticArgs, globalArgs: globals, stages: [] }, buildArgs);
      const words = instruction.args.split(/\s+/).filter((w) => w !== '');
      if (words.length !== 1 && !(words.length === 3 && words[1]!.toUpperCase() === 'AS')) throw lineError(line, 'FROM takes an image and, optionally, AS <name>');
      const image = wordsAt(instruction, () => processWord(words[0]!, env!, escape));
      if (image === '') throw lineError(line, `FROM ${words[0]} names no image (an ARG without a value?)`);
      let name: string | undefined;
      if (words.length === 3) {
        name = words[2]!.toLowerCase();
        if (!/^[a-z][a-z0-9_.-]*$/.test(name)) throw lineError(line, `${JSON.stringify(words[2])} is not a stage name`);
      }
      const platform = instruction.flags.platform === undefined ? undefined : wordsAt(instruction, () => processWord(instruction.flags.platform!, env!, escape));
      stages.push({ index: stages.length, ...(name ? { name } : {}), from: instruction, image, ...(platform ? { platform } : {}), instructions: [] });
      continue;
    }
    if (instruction.keyword === 'COPY' && instruction.flags.from !== undefined) checkCopyFrom(instruction, escape);
    for (const spec of instruction.mounts ?? []) checkMountFrom(spec, line);
    const stage = stages.at(-1);
    if (stage === undefined) {
      if (instruction.keyword !== 'ARG') throw lineError(line, `${instruction.keyword} before the first FROM (only ARG may come before it)`);
      globals.push(instruction);
      continue;
    }
    stage.instructions.push(instruction);
  }
  if (stages.length === 0) throw new InvalidArgumentError('the Dockerfile has no FROM');
  return { escape, automaticArgs, globalArgs: globals, stages };
}

/** The name the last FROM gives its stage, if any. */
function lastStageName(instructions: readonly { getKeyword(): string; getArgumentsContent(): string | null }[]): string | undefined {
  const from = instructions.findLast((i) => i.getKeyword().toUpperCase() === 'FROM');
  const words = from?.getArgumentsContent()?.split(/\s+/).filter((w) => w !== '') ?? [];
  const named = words.filter((w) => !w.startsWith('--'));
  return named.length === 3 && named[1]!.toUpperCase() === 'AS' ? named[2]!.toLowerCase() : undefined;
}

/** The stage `target` names (a name or an index; default the last). */
export function targetStage(dockerfile: Dockerfile, target?: string): Stage {
  if (target === undefined) return dockerfile.stages.at(-1)!;
  const stage = stageNamed(dockerfile, target);
  if (stage === undefined) {
    const names = dockerfile.stages.flatMap((s) => (s.name === undefined ? [] : [s.name]));
    throw new InvalidArgumentError(`target stage ${JSON.stringify(target)} is not in the Dockerfile${didYouMean(suggestName(target.toLowerCase(), names))}`);
  }
  return stage;
}

/** The stage a `FROM` or `COPY --from` names by name or index, or undefined (then it names an image). */
export function stageNamed(dockerfile: Dockerfile, reference: string, before = dockerfile.stages.length): Stage | undefined {
  const lower = reference.toLowerCase();
  // A name given twice (a DuplicateStageName warning) names the last such stage before `before`, as in BuildKit.
  const byName = dockerfile.stages.findLast((s) => s.name === lower && s.index < before);
  if (byName) return byName;
  if (/^\d+$/.test(reference) && Number(reference) < before) return dockerfile.stages[Number(reference)];
  return undefined;
}

/**
 * The earlier stage `stage` is built on: the one its FROM names by name (a number there names an image), unless
 * `replaced` says a named context stands for that name.
 */
export function stageBelow(dockerfile: Dockerfile, stage: Stage, replaced: (name: string) => boolean = () => false): Stage | undefined {
  const image = stage.image.toLowerCase();
  if (image === 'scratch' || replaced(stage.image)) return undefined;
  const below = stageNamed(dockerfile, stage.image, stage.index);
  return below?.name === image ? below : undefined;
}

/**
 * A flag's value as BuildKit's parser reads it (`extractBuilderFlags`): quotes removed, the escape character
 * taking the next one as it is, inside quotes too.
 */
function unquoteFlag(raw: string, escape: string): string {
  let out = '';
  let quote = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === escape) {
      if (i + 1 < raw.length) out += raw[++i];
    } else if (quote === '' && (c === '"' || c === "'")) {
      quote = c;
    } else if (c === quote) {
      quote = '';
    } else {
      out += c;
    }
  }
  return out;
}

/**
 * `COPY --from` names a stage or an image as written: BuildKit refuses a value that expansion would change (a
 * variable: `$SRC`, `"${SRC}"`, `\$SRC`), in every stage, needed or not, before any step runs; quotes around
 * a name are its parser's, and go.
 */
function checkCopyFrom(instruction: Instruction, escape: string): void {
  const from = instruction.flags.from!;
  if (wordsAt(instruction, () => processWord(from, new Map(), escape)) !== from) {
    throw lineError(instruction.line, `COPY --from=${from}: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround`);
  }
}

/**
 * A mount's `from` is read as written too: BuildKit's parser refuses one with a `$` anywhere but at its end,
 * before any variable is known.
 */
function checkMountFrom(spec: string, line: number): void {
  for (const value of mountFroms(spec)) {
    const dollar = value.indexOf('$');
    if (dollar >= 0 && dollar !== value.length - 1) throw lineError(line, `RUN --mount from=${value}: 'from' doesn't support variable expansion, define alias stage instead`);
  }
}

/** The stages or images an instruction reads from: `COPY --from`, and `RUN --mount` `from=` (bind and cache). */
function sourcesNamed(instruction: Instruction): Array<{ name: string; what: string }> {
  if (instruction.keyword === 'COPY' && instruction.flags.from !== undefined) return [{ name: instruction.flags.from, what: 'COPY --from' }];
  // A mount's other fields may use the stage's ENV and ARGs, which only the step's state has: only from is read here.
  return (instruction.mounts ?? []).flatMap((spec) => {
    const from = mountFroms(spec)[0];
    return from === undefined || from === '' ? [] : [{ name: from, what: 'RUN --mount from' }];
  });
}

/** The names a Dockerfile is looked for by, in order: a `Dockerfile` may be spelled `dockerfile` (moby#10858), as BuildKit reads it. */
export function dockerfileNames(name: string): string[] {
  return posix.basename(name) === 'Dockerfile' ? [name, posix.join(posix.dirname(name), 'dockerfile')] : [name];
}

/** ONBUILD triggers (an image config's `OnBuild`, or a stage's ONBUILD lines) as the steps they run, at `line`. */
export function parseTriggers(triggers: readonly string[], line: number): Instruction[] {
  if (triggers.length === 0) return [];
  return parseDockerfile(`FROM scratch\n${triggers.join('\n')}\n`).stages[0]!.instructions.map((trigger) => ({ ...trigger, line }));
}

/**
 * The stages `target` needs, in the order they must be built (dependencies first): those its FROM, a
 * `COPY --from` or a mount's `from` (bind or cache) names, and theirs, unless a named context `replaced`
 * them; the ONBUILD triggers a stage runs first count as its steps (a stage's base stage's ONBUILD lines,
 * or, through `imageTriggers`, its base image's). Stages nothing needs are not built.
 */
export function neededStages(
  dockerfile: Dockerfile,
  target: Stage,
  replaced: ReadonlySet<string> = new Set(),
  imageTriggers: (stage: Stage) => readonly Instruction[] = () => [],
): Stage[] {
  // A stage a named context replaces is never built (it is looked up by name: `FROM x`, `--from=x`).
  const stageNamedHere = (name: string, before: number) => (replaced.has(name) ? undefined : stageNamed(dockerfile, name, before));
  const order: Stage[] = [];
  const state = new Map<number, 'visiting' | 'done'>();
  const visit = (stage: Stage): void => {
    if (state.get(stage.index) === 'done') return;
    if (state.get(stage.index) === 'visiting') throw lineError(stage.from.line, 'stages depend on each other in a cycle');
    state.set(stage.index, 'visiting');
    const base = stageNamedHere(stage.image, stage.index);
    if (base) visit(base);
    const ownTriggers = base?.instructions.filter((i) => i.keyword === 'ONBUILD').map((i) => i.args);
    const triggers = ownTriggers ? parseTriggers(ownTriggers, stage.from.line) : imageTriggers(stage);
    for (const instruction of [...triggers, ...stage.instructions]) {
      for (const { name, what } of sourcesNamed(instruction)) {
        // BuildKit looks the name up among all the stages (a name given twice names the last stage of it) and
        // builds stages in the order they are written: a later stage is an error there, not an image to pull,
        // and its own name makes a stage depend on itself, which BuildKit refuses as a cycle.
        const source = stageNamedHere(name, Infinity);
        if (source === undefined && /^\d+$/.test(name)) throw lineError(instruction.line, `${what}=${name}: there is no stage ${name}`);
        if (source === stage) throw lineError(instruction.line, `${what}=${name}: circular dependency detected on stage: ${name} (a stage cannot use itself)`);
        if (source !== undefined && source.index > stage.index) {
          throw lineError(instruction.line, `${what}=${name}: stage ${name} is defined after this one (a stage can only use earlier stages)`);
        }
        if (source) visit(source);
      }
    }
    state.set(stage.index, 'done');
    order.push(stage);
  };
  visit(target);
  return order;
}
