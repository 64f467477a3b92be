/**
 * @strata/build: Dockerfile builds. The frontend (instructions, stages, Docker's word processing,
 * .dockerignore), the step loop with its content-addressed cache, and RUN through an OCI runtime.
 */
export { build, buildOutline, buildTargets, checkBuild, type BuildOptions, type BuildEvent, type BuildResult, type Entitlement } from './builder.js';
export { checkDockerfile, checkOptionsOf, parseCheckOptions, CHECK_RULES, type BuildCheck, type CheckOptions, type CheckRule, type CheckDockerfileOptions } from './checks.js';
export { checkVariables, type CheckVariablesOptions } from './check-variables.js';
export type { CacheExport, CacheSource } from './image-cache.js';
export { BuildCache, bytesToKeep, type CacheEntry, type CachePruneOptions, type CacheRecord } from './cache.js';
export { FileChecksums } from './checksums.js';
export { parseDockerfile, targetStage, stageNamed, neededStages, globalArgs, platformArgs, lineError, type Dockerfile, type Stage, type Instruction, type Keyword } from './dockerfile.js';
export { processWord, processWords, splitRaw, keyValues, WordError, type Env } from './lex.js';
export { StageState, type RunConfig } from './metadata.js';
export { contextFilter, type ContextFilter } from './ignore.js';
export { listTargets, outlineTarget, type BuildArgOutline, type BuildOutline, type BuildTarget, type MountOutline, type SourceLocation, type TargetList } from './subrequests.js';
