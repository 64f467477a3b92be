/**
 * Build checks: each rule on Dockerfiles that break it and on ones that do not, with the rule names, details
 * and lines BuildKit's linter gives them (its documented messages), and the ways a check is skipped or made
 * an error: the `# check=` directive, the BUILDKIT_DOCKERFILE_CHECK build argument in its place, and a
 * `# check=skip=` comment above one instruction.
 */
import { describe, expect, it } from 'vitest';
import { checkDockerfile, checkOptionsOf, checkVariables, neededStages, parseCheckOptions, parseDockerfile, platformArgs, targetStage } from '@strata/build';
import { exposedPorts } from '../src/metadata.js';

const AMD64 = { os: 'linux', architecture: 'amd64' };

/** The findings on `text` as `rule line: detail`, for a check run (every stage) or for a build of its last stage. */
function found(text: string, options: { buildArgs?: Record<string, string>; build?: boolean; ignored?: string[] } = {}): string[] {
  const buildArgs = options.buildArgs ?? {};
  const dockerfile = parseDockerfile(text, buildArgs, platformArgs(AMD64, AMD64));
  const stages = options.build ? neededStages(dockerfile, targetStage(dockerfile)) : undefined;
  const checks = checkOptionsOf(text, buildArgs);
  return checkDockerfile(text, dockerfile, { checks, buildArgs, ignored: options.ignored ?? [], ...(stages ? { stages } : {}) }).map((f) => `${f.rule} ${f.line}: ${f.detail}`);
}

/**
 * UndefinedVar's findings on `text` as `line: detail`: base images' ENV from `images` (by name; one not
 * listed is unknown), for a check run or for a build of its last stage.
 */
function undefinedVars(text: string, options: { images?: Record<string, string[]>; buildArgs?: Record<string, string>; build?: boolean } = {}): string[] {
  const buildArgs = options.buildArgs ?? {};
  const dockerfile = parseDockerfile(text, buildArgs, platformArgs(AMD64, AMD64));
  const stages = options.build ? neededStages(dockerfile, targetStage(dockerfile)) : dockerfile.stages;
  const checks = checkOptionsOf(text, buildArgs);
  return checkVariables(text, dockerfile, stages, (stage) => options.images?.[stage.image], { checks, buildArgs }).map((f) => `${f.line}: ${f.detail}`);
}

describe('build checks', () => {
  it('finds stage names in capitals, AS in another case than FROM, and instructions against the majority case', () => {
    expect(found('\nFROM scratch AS BadName\n\nFROM scratch as base2\nFROM scratch AS base3\n')).toEqual([
      "StageNameCasing 2: Stage name 'BadName' should be lowercase",
      "FromAsCasing 4: 'as' and 'FROM' keywords' casing do not match",
    ]);
    expect(found('from scratch AS base\nfrom scratch as base2\n')).toEqual(["FromAsCasing 1: 'AS' and 'from' keywords' casing do not match"]);
    expect(found('From scratch as base\nFROM scratch AS base2\n')).toEqual(["ConsistentInstructionCasing 1: Command 'From' should match the case of the command majority (uppercase)"]);
    expect(found('from scratch\ncopy a b\nRUN true\nrun true\n')).toEqual(["ConsistentInstructionCasing 3: Command 'RUN' should match the case of the command majority (lowercase)"]);
    expect(found('FROM scratch AS base\nCOPY a b\n')).toEqual([]);
  });

  it('finds an empty line inside a continuation, at the instruction\'s last line', () => {
    expect(found('FROM scratch\nCOPY a \\\n\nb\nCOPY a \\\n# a comment\nb\n')).toEqual(['NoEmptyContinuation 4: Empty continuation line']);
  });

  it('finds stage names used twice or reserved, and builds with the later of two', () => {
    expect(found('FROM scratch AS b\nFROM scratch AS b\n')).toEqual(['DuplicateStageName 2: Duplicate stage name "b", stage names should be unique']);
    expect(found('FROM scratch AS scratch\nFROM scratch AS context\nFROM scratch\n')).toEqual([
      'ReservedStageName 1: Stage name should not use the same name as reserved stage "scratch"',
      'ReservedStageName 2: Stage name should not use the same name as reserved stage "context"',
    ]);
    const dockerfile = parseDockerfile('FROM scratch AS b\nFROM busybox AS b\nFROM b\n');
    expect(dockerfile.stages[2]!.image).toBe('b');
    expect(neededStages(dockerfile, targetStage(dockerfile)).map((s) => s.index)).toEqual([1, 2]);
  });

  it('finds CMD and ENTRYPOINT in shell form unless a SHELL was set, here or in a stage below', () => {
    expect(found('FROM scratch\nCMD mycommand\n')).toEqual(['JSONArgsRecommended 2: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals']);
    expect(found('FROM scratch\nentrypoint mycommand\n')).toEqual([
      "ConsistentInstructionCasing 2: Command 'entrypoint' should match the case of the command majority (uppercase)",
      'JSONArgsRecommended 2: JSON arguments recommended for entrypoint to prevent unintended behavior related to OS signals',
    ]);
    expect(found('FROM scratch\nSHELL ["/bin/customshell"]\nCMD mycommand\n')).toEqual([]);
    expect(found('FROM scratch AS base\nSHELL ["/bin/customshell"]\nFROM base\nENTRYPOINT mycommand\n')).toEqual([]);
    expect(found('FROM scratch\nCMD ["mycommand"]\nHEALTHCHECK CMD curl -f http://localhost/\n')).toEqual([]);
  });

  it('finds MAINTAINER, and CMD, ENTRYPOINT or HEALTHCHECK given twice in a stage, at the one ignored', () => {
    expect(found('FROM scratch\nMAINTAINER me@example.org\n')).toEqual(['MaintainerDeprecated 2: Maintainer instruction is deprecated in favor of using label']);
    const twice = (n: string) => `Multiple ${n} instructions should not be used in the same stage because only the last one will be used`;
    expect(found('FROM scratch\nENTRYPOINT ["/a"]\nCMD ["/a"]\nHEALTHCHECK CMD ["/a"]\nCOPY x y\nENTRYPOINT ["/b"]\nCMD ["/b"]\nHEALTHCHECK CMD ["/b"]\n')).toEqual([
      `MultipleInstructionsDisallowed 2: ${twice('ENTRYPOINT')}`,
      `MultipleInstructionsDisallowed 3: ${twice('CMD')}`,
      `MultipleInstructionsDisallowed 4: ${twice('HEALTHCHECK')}`,
    ]);
    expect(found('FROM scratch AS a\nCMD ["/a"]\nFROM a\nCMD ["/b"]\n')).toEqual([]);
  });

  it('finds the old key value form of ENV and LABEL, and ARG and ENV names that look like secrets', () => {
    expect(found('FROM scratch\nENV testkey value\nLABEL key value\nENV k=v\nLABEL k=v\n')).toEqual([
      'LegacyKeyValueFormat 2: "ENV key=value" should be used instead of legacy "ENV key value" format',
      'LegacyKeyValueFormat 3: "LABEL key=value" should be used instead of legacy "LABEL key value" format',
    ]);
    const secret = (kind: string, name: string) => `SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (${kind} "${name}")`;
    const lines = found('FROM scratch\nARG SECRET_PASSPHRASE\nENV DB_Password=x sunflower=y\nARG github_token=1 auth=2\nENV PUBLIC_KEY=1 api_key_file=2\nARG TOKEN_VERSION\nENV keyboard=1 monkey=2\n');
    expect(lines.map((l) => l.replace(/ \d+:/, ':'))).toEqual([secret('ARG', 'SECRET_PASSPHRASE'), secret('ENV', 'DB_Password'), secret('ARG', 'github_token'), secret('ARG', 'auth')]);
  });

  it('finds a first WORKDIR that is relative, unless a stage below set one or its value is not known here', () => {
    expect(found('FROM scratch\nWORKDIR app/\nWORKDIR more\n')).toEqual(['WorkdirRelativePath 2: Relative workdir "app/" can have unexpected results if the base image changes']);
    expect(found('FROM scratch AS a\nWORKDIR /app\nFROM a\nWORKDIR sub/\n')).toEqual([]);
    // A number in FROM names an image, not the stage of that index (BuildKit looks stages up by name).
    expect(found('FROM scratch\nWORKDIR /app\nFROM 0\nWORKDIR sub/\n')).toEqual(['WorkdirRelativePath 4: Relative workdir "sub/" can have unexpected results if the base image changes']);
    expect(found('FROM scratch\nARG DIR=/srv\nWORKDIR $DIR/app\n')).toEqual([]);
    expect(found('FROM scratch\nARG DIR=srv\nWORKDIR ${DIR}\n')).toEqual(['WorkdirRelativePath 3: Relative workdir "srv" can have unexpected results if the base image changes']);
    expect(found('FROM busybox\nWORKDIR $HOME/app\n')).toEqual([]);
  });

  it('finds what FROM lines use: undeclared variables (with the nearest declared), $TARGETPLATFORM, constant platforms, empty defaults', () => {
    expect(found('ARG base=scratch\nFROM $base\n')).toEqual([]);
    expect(found('ARG DEBUG\nFROM scra${DEBUG:-tch}\n')).toEqual([]);
    expect(found('FROM --platform=$BULIDPLATFORM scratch\n')).toEqual(["UndefinedArgInFrom 1: FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)"]);
    expect(found('ARG tag=latest\nFROM busybox:${tag}${version} AS b\n')).toEqual(["UndefinedArgInFrom 2: FROM argument 'version' is not declared"]);
    expect(found('FROM --platform=$TARGETPLATFORM scratch\nFROM --platform=${TARGETPLATFORM} scratch\nFROM --platform=$BUILDPLATFORM scratch\n')).toEqual([
      'RedundantTargetPlatform 1: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior',
      'RedundantTargetPlatform 2: Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior',
    ]);
    expect(found('FROM --platform=linux/amd64 scratch AS build\nFROM --platform=linux/arm64 scratch AS build-arm64\n')).toEqual([
      'FromPlatformFlagConstDisallowed 1: FROM --platform flag should not use constant value "linux/amd64"',
    ]);
    // A default that leaves the base name invalid, even when the build gives a value.
    expect(found('ARG VERSION\nFROM busybox:$VERSION\n', { buildArgs: { VERSION: '1.36' } })).toEqual([
      'InvalidDefaultArgInFrom 2: Default value for ARG busybox:$VERSION results in empty or invalid base image name',
    ]);
    expect(found('ARG VERSION=1.36\nARG IMAGE=busybox\nFROM busybox:$VERSION\nFROM $IMAGE\n')).toEqual([]);
    // A word whose defaults do not expand is the build's error, not this rule's finding.
    expect(found('ARG V\nFROM busybox:${V:?required}\n', { buildArgs: { V: '1.36' } })).toEqual([]);
  });

  it('finds EXPOSE of a protocol in capitals or of an address or host port, and exposes its container port as BuildKit does', () => {
    expect(found('FROM scratch\nEXPOSE 80/TCP 53/udp\nEXPOSE 127.0.0.1:8080:80 9000:90/tcp\n')).toEqual([
      "ExposeProtoCasing 2: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase",
      "ExposeInvalidFormat 3: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80'",
      "ExposeInvalidFormat 3: EXPOSE instruction should not define an IP address or host-port mapping, found '9000:90/tcp'",
    ]);
    expect(exposedPorts('80/TCP')).toEqual(['80/tcp']);
    expect(exposedPorts('127.0.0.1:8080:80')).toEqual(['80/tcp']);
    expect(exposedPorts('[::1]:9000-9001:90-91/udp')).toEqual(['90/udp', '91/udp']);
    expect(exposedPorts('8000-8002')).toEqual(['8000/tcp', '8001/tcp', '8002/tcp']);
    expect(exposedPorts('80/ftp')).toMatch(/not a protocol/);
    expect(exposedPorts('70000')).toMatch(/0 to 65535/);
    expect(exposedPorts('bad:host:80')).toMatch(/not an IP address/);
    expect(exposedPorts('9000-9002:90-91')).toMatch(/different lengths/);
  });

  it('finds COPY and ADD of what .dockerignore excludes, when it has no exceptions', () => {
    const text = 'FROM scratch AS src\nCOPY . /\nCOPY ./secret.txt logs/today.log keep.txt /\nADD secret.txt https://example.com/a /\nCOPY --from=src secret.txt /\nARG D=logs\nCOPY $D/x /\nCOPY /logs/y /\n';
    expect(found(text, { ignored: ['secret.txt', 'logs'] })).toEqual([
      'CopyIgnoredFile 3: Attempting to Copy file "secret.txt" that is excluded by .dockerignore',
      'CopyIgnoredFile 3: Attempting to Copy file "logs/today.log" that is excluded by .dockerignore',
      'CopyIgnoredFile 4: Attempting to Add file "secret.txt" that is excluded by .dockerignore',
      'CopyIgnoredFile 7: Attempting to Copy file "logs/x" that is excluded by .dockerignore',
    ]);
    // Exceptions make it undecidable here (an excluded directory may hold what is kept): not asked, as in BuildKit.
    expect(found(text, { ignored: ['logs', '!logs/keep'] })).toEqual([]);
    // The context root counts only under a pattern that excludes everything.
    expect(found('FROM scratch\nCOPY . /\n', { ignored: ['*'] })).toEqual(['CopyIgnoredFile 2: Attempting to Copy file "." that is excluded by .dockerignore']);
    expect(found('FROM scratch\nCOPY . /\n')).toEqual([]);
  });

  it('checks the steps of the stages a build needs, and of every stage in a check run', () => {
    const text = 'FROM scratch AS a\nFROM scratch AS b\nENV testkey value\nFROM a AS c\n';
    expect(found(text, { build: true })).toEqual([]);
    expect(found(text)).toEqual(['LegacyKeyValueFormat 3: "ENV key=value" should be used instead of legacy "ENV key value" format']);
  });

  it('skips rules by directive, build argument (which replaces the directive) or a comment above one instruction', () => {
    const base = 'FROM scratch as base\ncopy Dockerfile .\n';
    expect(found(`#check=skip=all\n${base}`)).toEqual([]);
    expect(found(`#check=skip=ConsistentInstructionCasing,FromAsCasing\n${base}`)).toEqual([]);
    expect(found(`#check=skip=ConsistentInstructionCasing\n${base}`)).toEqual(["FromAsCasing 2: 'as' and 'FROM' keywords' casing do not match"]);
    expect(found(`#check=skip=all\n${base}`, { buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'skip=ConsistentInstructionCasing;error=true' } })).toEqual([
      "FromAsCasing 2: 'as' and 'FROM' keywords' casing do not match",
    ]);
    expect(found(`#check=error=true\n${base}`, { buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'skip=all' } })).toEqual([]);
    // A comment above an instruction skips for it alone; an empty comment line drops the ones above it.
    expect(found('FROM scratch\n# check=skip=JSONArgsRecommended // allowed here\nCMD a\nCMD b\n')).toEqual([
      'MultipleInstructionsDisallowed 3: Multiple CMD instructions should not be used in the same stage because only the last one will be used',
      'JSONArgsRecommended 4: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals',
    ]);
    expect(found('FROM scratch\n# check=skip=all\n#\nMAINTAINER me\n')).toEqual(['MaintainerDeprecated 4: Maintainer instruction is deprecated in favor of using label']);
    // A directive is one only among the lines that open the file.
    expect(found('FROM scratch\n# check=skip=all\n\nMAINTAINER me\n')).toEqual([]);
    expect(found('FROM scratch\n\n# check=error=true\nRUN true\n')).toEqual([]);
    expect(checkOptionsOf('# syntax=docker/dockerfile:1\n# check=error=true\nFROM scratch\n').error).toBe(true);
    expect(checkOptionsOf('FROM scratch\n# check=error=true\n').error).toBe(false);
  });

  it("finds variables nothing defines (UndefinedVar), on BuildKit's own cases", () => {
    const alpine = { images: { alpine: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] } };
    // BuildKit's testUnmatchedVars.
    expect(undefinedVars('\nFROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n')).toEqual([]);
    expect(undefinedVars('\nFROM alpine AS base\nARG foo=Dockerfile\n\nFROM base\nCOPY $foo .\n', alpine)).toEqual([]);
    expect(undefinedVars('\nFROM alpine\nRUN echo $PATH\n', alpine)).toEqual([]);
    expect(undefinedVars('\nFROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n', alpine)).toEqual(["3: Usage of undefined variable '$foo'"]);
    expect(undefinedVars('\nFROM alpine\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nARG DIR_CONFIG=config/\nCOPY $DIR_ASSET .\n', alpine)).toEqual([
      "6: Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)",
    ]);
    expect(undefinedVars('\nFROM alpine\nENV PATH=$PAHT:/tmp/bin\n', alpine)).toEqual(["3: Usage of undefined variable '$PAHT' (did you mean $PATH?)"]);
    // BuildKit's testAllTargetUnmarshal: a build judges the stages it needs, a check run every stage.
    const two = '\nFROM scratch AS first\nCOPY $foo .\n\nFROM scratch AS second\nCOPY $bar .\n';
    expect(undefinedVars(two, { build: true })).toEqual(["6: Usage of undefined variable '$bar'"]);
    expect(undefinedVars(two)).toEqual(["3: Usage of undefined variable '$foo'", "6: Usage of undefined variable '$bar'"]);
  });

  it('judges UndefinedVar with the base image\'s variables, where the frontend expands words, and not where a shell does', () => {
    const python = { images: { python: ['PATH=/usr/local/bin:/usr/bin:/bin', 'PYTHON_VERSION=3.13.1'] } };
    // The reference's examples: a base image's variable is defined; an ARG default naming nothing is not.
    expect(undefinedVars('FROM python AS base\nARG VERSION=$PYTHON_VERSION\n', python)).toEqual([]);
    expect(undefinedVars('FROM python AS base\nARG VERSION=$foo\n', python)).toEqual(["2: Usage of undefined variable '$foo'"]);
    // An image whose config is not known (not in the store for a check run) leaves its stage, and those built on it, unjudged.
    expect(undefinedVars('FROM unknown AS a\nCOPY $x .\nFROM a\nCOPY $y .\n')).toEqual([]);
    // Shell forms and exec forms of RUN, CMD and ENTRYPOINT, and HEALTHCHECK and EXPOSE, are not the frontend's to expand.
    expect(undefinedVars('FROM scratch\nRUN echo $a\nRUN ["echo", "$b"]\nCMD echo $c\nENTRYPOINT ["$d"]\nHEALTHCHECK CMD echo $e\nEXPOSE $f\n')).toEqual([]);
    // Every word the frontend does expand (to values the steps take); a default (${x:-y}) still names an
    // undefined variable, as in BuildKit.
    const steps = [
      'FROM scratch',
      'ENV A=$e1 $e2=x',
      'LABEL l=${e3:-fallback}',
      'WORKDIR /$e4',
      'USER u$e5',
      'VOLUME ["/$e6"]',
      'STOPSIGNAL SIGTERM${e7}',
      'COPY --chown=$e8 --chmod=$e9 a /$e10',
      'RUN --mount=type=cache,target=/$e11 true',
      'COPY <<EOF /x',
      '$e12',
      'EOF',
      "COPY <<'EOF' /y",
      '$quoted',
      'EOF',
    ].join('\n');
    expect(undefinedVars(steps).map((f) => f.split("'")[1])).toEqual(['$e1', '$e2', '$e3', '$e4', '$e5', '$e6', '$e7', '$e8', '$e9', '$e10', '$e11', '$e12']);
  });

  it('follows declarations through a stage for UndefinedVar: ARGs one by one, build arguments, ENV from the step before, parent stages', () => {
    expect(undefinedVars('FROM scratch\nARG A=1 B=$A\n')).toEqual([]);
    // ENV expands all its values with the variables before it, as Docker does: A is not set yet for B.
    expect(undefinedVars('FROM scratch\nENV A=1 B=$A\nENV C=$A\n')).toEqual(["2: Usage of undefined variable '$A'"]);
    // A default a build argument replaces is not expanded, so not judged.
    expect(undefinedVars('FROM scratch\nARG V=$nothing\n', { buildArgs: { V: 'x' } })).toEqual([]);
    // A global ARG is the stage's only once declared in it; a parent stage's ARGs and ENV are its children's.
    expect(undefinedVars('ARG G=1\nFROM scratch\nCOPY $G .\nARG G\nCOPY $G .\n')).toEqual(["3: Usage of undefined variable '$G'"]);
    expect(undefinedVars('FROM scratch AS base\nARG NAME=joe\nENV HOME=/root\nFROM base\nCOPY $NAME $HOME\nFROM scratch\nCOPY $NAME .\n')).toEqual(["7: Usage of undefined variable '$NAME'"]);
    // Skipped by a comment above the step, or by the directive.
    expect(undefinedVars('FROM scratch\n# check=skip=UndefinedVar\nCOPY $a .\nCOPY $b .\n')).toEqual(["4: Usage of undefined variable '$b'"]);
    expect(undefinedVars('# check=skip=UndefinedVar\nFROM scratch\nCOPY $a .\n')).toEqual([]);
  });

  it('reads check options as BuildKit does, and refuses what it refuses', () => {
    expect(parseCheckOptions('skip=A, B;error=true')).toEqual({ skipAll: false, skip: new Set(['A', 'B']), error: true });
    expect(parseCheckOptions('experimental=all;skip=all')).toMatchObject({ skipAll: true, error: false });
    expect(parseCheckOptions('')).toMatchObject({ skipAll: false, error: false });
    expect(() => parseCheckOptions('skip')).toThrow(/not key=value/);
    expect(() => parseCheckOptions('error=maybe')).toThrow(/true or false/);
    expect(() => parseCheckOptions('level=high')).toThrow(/not skip, error or experimental/);
  });
});
