/**
 * @strata/build: Dockerfile builds. So far the frontend (instructions, stages, Docker's word processing,
 * .dockerignore) and the steps that change only the config; layers from COPY, ADD and RUN come next.
 */
export { parseDockerfile, targetStage, stageNamed, neededStages, globalArgs, lineError, type Dockerfile, type Stage, type Instruction, type Keyword } from './dockerfile.js';
export { processWord, processWords, splitRaw, keyValues, type Env } from './lex.js';
export { StageState, type RunConfig } from './metadata.js';
export { contextFilter, type ContextFilter } from './ignore.js';
