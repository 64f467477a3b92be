/**
 * What `docker buildx build --call=targets` and `--call=outline` ask of a Dockerfile, answered without
 * building: its stages, and for one target the build arguments, secrets and SSH agents the stages it
 * needs read, with the descriptions their doc comments give (a comment just above a FROM or an ARG that
 * starts with the stage's or the argument's name), in the shapes BuildKit's subrequests return.
 */
import { hostPlatform, parsePlatform } from '@strata/images';
import { WatchedEnv, writtenInstructions } from './checks.js';
import { globalArgs, parseDockerfile, platformArgs, runMountAt, stageBelow, stageNamed, targetStage, wordsAt, type Dockerfile, type Instruction, type Stage } from './dockerfile.js';
import { keyValues, processWord } from './lex.js';
import { StageState } from './metadata.js';
import { mountFroms } from './run-mounts.js';

/** Where a stage or an argument is declared: its line, as BuildKit's `pb.Location` gives it (one range). */
export interface SourceLocation {
  readonly ranges: readonly { readonly start: { readonly line: number }; readonly end: { readonly line: number } }[];
}

/** One stage, as `--call=targets` lists it. */
export interface BuildTarget {
  /** Its name; empty for a stage without one. */
  readonly name: string;
  /** Whether it is what a build without a target builds (the last stage). */
  readonly default: boolean;
  readonly description: string;
  /** Its FROM image as written. */
  readonly base: string;
  /** Its FROM's `--platform` as written; empty without one. */
  readonly platform: string;
  readonly location: SourceLocation;
}

export interface BuildArgOutline {
  readonly name: string;
  readonly description: string;
  /** Its value for this build: the build arg given, else its default (expanded); empty without either. */
  readonly value: string;
  readonly location: SourceLocation;
}

export interface MountOutline {
  readonly name: string;
  readonly required: boolean;
  readonly location: SourceLocation;
}

/** What `--call=targets` lists: every stage, and the Dockerfile read. */
export interface TargetList {
  readonly targets: readonly BuildTarget[];
  readonly source: string;
}

/** What `--call=outline` tells of a target, and the Dockerfile read. */
export interface BuildOutline {
  readonly name: string;
  readonly description: string;
  readonly args: readonly BuildArgOutline[];
  readonly secrets: readonly MountOutline[];
  readonly ssh: readonly MountOutline[];
  readonly source: string;
}

const at = (line: number): SourceLocation => ({ ranges: [{ start: { line }, end: { line } }] });

/** The comments just above each instruction, by its first line, as BuildKit attaches them (checks.ts reads them so). */
function commentsAbove(text: string): (line: number) => readonly string[] {
  const written = writtenInstructions(text);
  return (line) => written.get(line)?.comments ?? [];
}

/** BuildKit's doc comment for `name`: the first comment line that starts with it and a space, the rest of that line. */
function docComment(comments: readonly string[], name: string): string {
  if (name === '') return '';
  for (const line of comments) if (line.startsWith(`${name} `)) return line.slice(name.length + 1);
  return '';
}

/** A FROM line's words as written: the image, then `AS name` if it names the stage. */
const fromWords = (stage: Stage): string[] => stage.from.args.split(/\s+/).filter((w) => w !== '');

/** The stage name a FROM line gives, as written. */
const writtenName = (stage: Stage): string => fromWords(stage)[2] ?? '';

/** The stages of `text`, as `--call=targets` lists them. Throws INVALID_ARGUMENT for a Dockerfile that does not parse. */
export function listTargets(text: string): TargetList {
  const dockerfile = parseDockerfile(text);
  const comments = commentsAbove(text);
  const targets = dockerfile.stages.map((stage, i) => ({
    name: stage.name ?? '',
    default: i === dockerfile.stages.length - 1,
    description: docComment(comments(stage.from.line), writtenName(stage)),
    base: fromWords(stage)[0] ?? '',
    platform: stage.from.flags.platform ?? '',
    location: at(stage.from.line),
  }));
  return { targets, source: text };
}

/** An argument as declared: its value, line and description, and the arguments its default read (a global's). */
interface ArgInfo {
  readonly value: string;
  readonly line: number;
  readonly description: string;
  readonly deps: ReadonlySet<string>;
}

/** What one stage's outline gathers, taken over by the stages built on it. */
interface StageOutline {
  readonly allArgs: Map<string, ArgInfo>;
  readonly usedArgs: Set<string>;
  readonly secrets: Map<string, { required: boolean; line: number }>;
  readonly ssh: Map<string, { required: boolean; line: number }>;
  /** The earlier stages its steps read from (COPY --from, a mount's from). */
  readonly deps: Set<number>;
}

const cloneOutline = (o: StageOutline): StageOutline => ({ allArgs: new Map(o.allArgs), usedArgs: new Set(o.usedArgs), secrets: new Map(o.secrets), ssh: new Map(o.ssh), deps: new Set() });

/**
 * The outline of `target` (default the last stage) as `--call=outline` gives it: the global ARGs its stages'
 * FROM lines read (and those their defaults read), every ARG its stages declare, with this build's values,
 * and the secrets and SSH agents their RUN steps mount, in the order declared. Throws INVALID_ARGUMENT for a
 * Dockerfile that does not parse or a target it does not have.
 */
export function outlineTarget(text: string, options: { target?: string; buildArgs?: Readonly<Record<string, string>>; platform?: string } = {}): BuildOutline {
  const buildArgs = options.buildArgs ?? {};
  const dockerfile = parseDockerfile(text, buildArgs, platformArgs(options.platform ? parsePlatform(options.platform) : hostPlatform(), hostPlatform(), options.target));
  const target = targetStage(dockerfile, options.target);
  const comments = commentsAbove(text);
  const globals = globalArgs(dockerfile, buildArgs);
  const topArgs = globalArgInfos(dockerfile, buildArgs, comments);
  const outlines = new Map<number, StageOutline>();
  for (const stage of dockerfile.stages) outlines.set(stage.index, outlineStage(dockerfile, stage, outlines, topArgs, globals, buildArgs, comments));

  const visitedArgs = new Set<string>();
  const visitedSecrets = new Set<string>();
  const visitedSsh = new Set<string>();
  const args: BuildArgOutline[] = [];
  const secrets: MountOutline[] = [];
  const ssh: MountOutline[] = [];
  const seen = new Set<number>();
  const gather = (stage: Stage): void => {
    if (seen.has(stage.index)) return;
    seen.add(stage.index);
    const o = outlines.get(stage.index)!;
    markUsed(o);
    for (const name of o.usedArgs) {
      const info = o.allArgs.get(name);
      if (info === undefined || visitedArgs.has(name)) continue;
      visitedArgs.add(name);
      args.push({ name, description: info.description, value: info.value, location: at(info.line) });
    }
    for (const [name, s] of o.secrets) if (!visitedSecrets.has(name) && visitedSecrets.add(name)) secrets.push({ name, required: s.required, location: at(s.line) });
    for (const [name, s] of o.ssh) if (!visitedSsh.has(name) && visitedSsh.add(name)) ssh.push({ name, required: s.required, location: at(s.line) });
    const base = stageBelow(dockerfile, stage);
    if (base !== undefined) gather(base);
    for (const index of o.deps) gather(dockerfile.stages[index]!);
  };
  gather(target);
  const byLine = (a: { location: SourceLocation }, b: { location: SourceLocation }) => a.location.ranges[0]!.start.line - b.location.ranges[0]!.start.line;
  return {
    name: target.name ?? '',
    description: docComment(comments(target.from.line), writtenName(target)),
    args: args.sort(byLine),
    secrets: secrets.sort(byLine),
    ssh: ssh.sort(byLine),
    source: text,
  };
}

/** The global ARGs, each with its value for this build and the arguments its default read. */
function globalArgInfos(dockerfile: Dockerfile, buildArgs: Readonly<Record<string, string>>, comments: (line: number) => readonly string[]): Map<string, ArgInfo> {
  const env = new Map<string, string>(dockerfile.automaticArgs);
  const infos = new Map<string, ArgInfo>();
  for (const arg of dockerfile.globalArgs) {
    for (const [name, raw] of keyValuesAt(arg, dockerfile.escape)) {
      let value: string | undefined;
      let deps = new Set<string>();
      if (Object.hasOwn(buildArgs, name)) value = buildArgs[name];
      else if (raw !== undefined) {
        const watched = new WatchedEnv(env);
        value = wordsAt(arg, () => processWord(raw, watched, dockerfile.escape));
        deps = new Set(watched.matched);
        // ARG a=${a}x: what the earlier a read, not a itself.
        if (deps.delete(name)) for (const d of infos.get(name)?.deps ?? []) deps.add(d);
      }
      if (value !== undefined) env.set(name, value);
      infos.set(name, { value: value ?? '', line: arg.line, description: docComment(comments(arg.line), name), deps });
    }
  }
  return infos;
}

/** One stage's outline: its base stage's, or the global scope's, with what its FROM line and steps add. */
function outlineStage(
  dockerfile: Dockerfile,
  stage: Stage,
  earlier: ReadonlyMap<number, StageOutline>,
  topArgs: ReadonlyMap<string, ArgInfo>,
  globals: Map<string, string>,
  buildArgs: Readonly<Record<string, string>>,
  comments: (line: number) => readonly string[],
): StageOutline {
  const base = stageBelow(dockerfile, stage);
  const o = base === undefined ? { allArgs: new Map(topArgs), usedArgs: new Set<string>(), secrets: new Map(), ssh: new Map(), deps: new Set<number>() } : cloneOutline(earlier.get(base.index)!);
  // What the FROM line read of the global scope.
  const watched = new WatchedEnv(globals);
  for (const word of [fromWords(stage)[0] ?? '', stage.from.flags.platform ?? '']) if (word !== '') wordsAt(stage.from, () => processWord(word, watched, dockerfile.escape));
  for (const name of watched.matched) o.usedArgs.add(name);

  const state = new StageState(dockerfile, {}, buildArgs, globals);
  for (const step of stage.instructions) {
    if (step.keyword === 'ARG') {
      for (const [name, raw] of keyValuesAt(step, dockerfile.escape)) {
        const given = Object.hasOwn(buildArgs, name);
        // `ARG NAME` of a global, without a default: the global one, as declared at the top.
        const inherited = raw === undefined && !given && globals.has(name);
        if (!inherited) {
          const value = given ? buildArgs[name]! : raw === undefined ? '' : wordsAt(step, () => processWord(raw, state.variables(), dockerfile.escape));
          o.allArgs.set(name, { value, line: step.line, description: docComment(comments(step.line), name), deps: new Set() });
        }
        o.usedArgs.add(name);
        state.apply({ ...step, args: raw === undefined ? name : `${name}=${raw}` });
      }
      continue;
    }
    if (step.keyword === 'COPY' && step.flags.from !== undefined) addDependency(dockerfile, stage, step.flags.from, o);
    for (const spec of step.mounts ?? []) {
      for (const from of mountFroms(spec)) addDependency(dockerfile, stage, from, o);
      const mount = runMountAt(wordsAt(step, () => processWord(spec, state.variables(), dockerfile.escape)), '/', step.line);
      if (mount.type === 'secret' && !o.secrets.has(mount.id)) o.secrets.set(mount.id, { required: mount.required, line: step.line });
      if (mount.type === 'ssh' && !o.ssh.has(mount.id)) o.ssh.set(mount.id, { required: mount.required, line: step.line });
    }
    state.apply(step);
  }
  return o;
}

/** A stage `from` names (COPY --from, a mount's from), read before `stage`: one whose outline joins. */
function addDependency(dockerfile: Dockerfile, stage: Stage, from: string, o: StageOutline): void {
  const source = stageNamed(dockerfile, from, stage.index);
  if (source !== undefined) o.deps.add(source.index);
}

/** Marks what the used arguments' defaults read as used too, through any depth. */
function markUsed(o: StageOutline): void {
  const pending = [...o.usedArgs];
  while (pending.length > 0) {
    for (const dep of o.allArgs.get(pending.pop()!)?.deps ?? []) {
      if (!o.usedArgs.has(dep)) {
        o.usedArgs.add(dep);
        pending.push(dep);
      }
    }
  }
}

/** An ARG line's names and raw defaults, an error naming the line. */
const keyValuesAt = (step: Instruction, escape: string) => wordsAt(step, () => keyValues(step.args, escape, false));
