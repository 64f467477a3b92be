/**
 * BuildKit's UndefinedVar build check: a variable a step expands that nothing defines, neither the base
 * image's ENV, the stage's ARG and ENV, nor an ARG of the stage it is built on. It needs the base images'
 * variables, so the builder runs it once it has their configs (before the first step, as BuildKit does once
 * it resolved them), and a check run with the images the store holds.
 *
 * Judged where BuildKit's frontend expands words: ENV and LABEL keys and values, WORKDIR, USER, VOLUME,
 * STOPSIGNAL, COPY and ADD sources, destination, `--chown`, `--chmod` (and ADD's `--checksum`) and
 * expanded heredocs, RUN's `--mount` values, and ARG defaults where no build argument replaces them. Never
 * RUN, CMD or ENTRYPOINT themselves: their shell expands them, from the container's environment.
 */
import { globalArgs, stageBelow, type Dockerfile, type Instruction, type Stage } from './dockerfile.js';
import { expandHeredoc, keyValues, processWord, processWords } from './lex.js';
import { StageState } from './metadata.js';
import { withDefaultPath } from './run-step.js';
import { reporter, WatchedEnv, type BuildCheck, type CheckOptions, type Report } from './checks.js';
import { suggestName } from './suggest.js';

/** Build arguments BuildKit reads for itself, never a step's variables. */
const NOT_VARIABLES = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);

/** Options of `checkVariables`. */
export interface CheckVariablesOptions {
  readonly checks?: CheckOptions;
  readonly buildArgs?: Readonly<Record<string, string>>;
}

/** A stage as far as its steps were followed: its variables, and the ARG names it declared. */
interface Followed {
  readonly state: StageState;
  readonly declared: ReadonlySet<string>;
}

/**
 * UndefinedVar's findings for `stages` (the build's, or all of them for a check run), in line order.
 * `baseEnv` gives the ENV of the image a stage starts from, or undefined where it is not known: that stage,
 * and those built on it, are not judged.
 */
export function checkVariables(text: string, dockerfile: Dockerfile, stages: readonly Stage[], baseEnv: (stage: Stage) => readonly string[] | undefined, options: CheckVariablesOptions = {}): BuildCheck[] {
  const { report, found } = reporter(text, options.checks);
  const buildArgs = options.buildArgs ?? {};
  let globals: Map<string, string>;
  try {
    globals = globalArgs(dockerfile, buildArgs);
  } catch {
    return []; // the build reports a global ARG that does not expand
  }
  const followed = new Map<number, Followed | undefined>();
  for (const stage of [...stages].sort((a, b) => a.index - b.index)) {
    const base = stageBelow(dockerfile, stage);
    let state: StageState;
    let declared: Set<string>;
    if (base !== undefined) {
      // Built on an earlier stage: its config, and its ARGs with their values (see the builder's #base).
      const below = followed.get(base.index);
      if (below === undefined) {
        followed.set(stage.index, undefined);
        continue;
      }
      state = new StageState(dockerfile, structuredClone(below.state.config), buildArgs, globals);
      for (const [name, value] of below.state.args) state.args.set(name, value);
      declared = new Set(below.declared);
    } else {
      const env = stage.image.toLowerCase() === 'scratch' ? [] : baseEnv(stage);
      if (env === undefined) {
        followed.set(stage.index, undefined);
        continue;
      }
      state = new StageState(dockerfile, { Env: withDefaultPath(env) }, buildArgs, globals);
      declared = new Set();
    }
    followed.set(stage.index, followStage(dockerfile, stage, state, declared, buildArgs, report));
  }
  return found.sort((a, b) => a.line - b.line);
}

/** Judges each step of `stage` with the variables it sees, applying its config steps: undefined once a step fails. */
function followStage(dockerfile: Dockerfile, stage: Stage, state: StageState, declared: Set<string>, buildArgs: Readonly<Record<string, string>>, report: Report): Followed | undefined {
  const escape = dockerfile.escape;
  for (const step of stage.instructions) {
    /** Expands `word` (one word, or `split` into several) as the step will, reporting what it finds undefined. */
    const judge = (word: string | undefined, how: 'word' | 'split' | 'heredoc' = 'word') => {
      if (word === undefined || word === '') return;
      const variables = state.variables();
      const watched = new WatchedEnv(variables);
      try {
        if (how === 'heredoc') expandHeredoc(word, watched);
        else if (how === 'split') processWords(word, watched, escape);
        else processWord(word, watched, escape);
      } catch {
        // The build reports a word that does not expand.
      }
      for (const name of watched.unmatched) {
        if (declared.has(name) || NOT_VARIABLES.has(name)) continue;
        const near = suggestName(name, variables.keys());
        report('UndefinedVar', step.line, `Usage of undefined variable '$${name}'${near ? ` (did you mean $${near}?)` : ''}`, step.line);
      }
    };
    try {
      if (step.keyword === 'ARG') {
        // One by one, as BuildKit declares them: a default may name an ARG declared before it on the line.
        for (const [name, raw] of keyValues(step.args, escape, false)) {
          if (!Object.hasOwn(buildArgs, name)) judge(raw);
          state.apply({ ...step, args: raw === undefined ? name : `${name}=${raw}` });
          declared.add(name);
        }
        continue;
      }
      judgeStep(step, escape, judge);
      state.apply(step);
    } catch {
      return undefined; // the build reports the step; what follows it is not judged
    }
  }
  return { state, declared };
}

/** The words of `step` BuildKit's frontend expands, each given to `judge`. */
function judgeStep(step: Instruction, escape: string, judge: (word: string | undefined, how?: 'word' | 'split' | 'heredoc') => void): void {
  switch (step.keyword) {
    case 'ENV':
    case 'LABEL':
      for (const [name, raw] of keyValues(step.args, escape, true)) {
        judge(name);
        judge(raw);
      }
      return;
    case 'WORKDIR':
    case 'USER':
    case 'STOPSIGNAL':
      judge(step.args);
      return;
    case 'VOLUME':
      if (step.json) for (const word of step.json) judge(word);
      else judge(step.args, 'split');
      return;
    case 'COPY':
    case 'ADD':
      judge(step.flags.chown);
      judge(step.flags.chmod);
      if (step.keyword === 'ADD') judge(step.flags.checksum);
      if (step.json) for (const word of step.json) judge(word);
      else judge(step.args, 'split');
      for (const heredoc of step.heredocs ?? []) if (!heredoc.quoted) judge(heredoc.content, 'heredoc');
      return;
    case 'RUN':
      for (const mount of step.mounts ?? []) judge(mount);
      return;
    default:
  }
}
