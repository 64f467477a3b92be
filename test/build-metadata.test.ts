/**
 * The Dockerfile frontend and its config steps against buildah (`buildah bud --format docker`, FROM scratch,
 * no RUN, so no runtime is involved): the same Dockerfiles, with build args, give the same config: Env
 * (quotes, escapes, `${x:-y}`, `${x:+y}`, legacy `ENV k v`, all pairs of one ENV against the variables from
 * before it), Labels, WorkingDir (relative to the last), User, Volumes, Cmd and Entrypoint (shell form through
 * SHELL, an ENTRYPOINT clearing the base's CMD), StopSignal, Healthcheck and OnBuild, and the automatic
 * platform ARGs (`TARGETARCH` and the rest: in FROM lines, declared in a stage, given a default, given as a
 * build arg).
 *
 * Known and kept differences, where strata follows Docker: buildah keeps an `EXPOSE` range as one key
 * (`8000-8002/tcp`), Docker expands it to one key per port; buildah labels its images `io.buildah.version`;
 * buildah 1.28's word processing is Docker's of 2020 (`$-` kept as written, no `${name-word}`, `${name?}` or
 * patterns), so those are checked against BuildKit's own expectations (packages/build/test/lex-buildkit.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { globalArgs, neededStages, parseDockerfile, platformArgs, StageState, targetStage, type RunConfig } from '@strata/build';
import { hostPlatform } from '@strata/images';
import { needs } from './helpers/oracle.js';
import { execBuildah } from './helpers/buildah-run.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'dockerfiles');
/** The PATH Docker and buildah give an image built from scratch. */
const SCRATCH: RunConfig = { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] };

/** strata's config for the target stage, its base stages evaluated first. */
function evaluate(text: string, buildArgs: Record<string, string>): { config: RunConfig; author?: string } {
  const dockerfile = parseDockerfile(text, buildArgs, platformArgs(hostPlatform(), hostPlatform()));
  const globals = globalArgs(dockerfile, buildArgs);
  const configs = new Map<number, RunConfig>();
  let last: StageState | undefined;
  for (const stage of neededStages(dockerfile, targetStage(dockerfile))) {
    const base = dockerfile.stages.find((s) => s.name === stage.image.toLowerCase() && s.index < stage.index);
    const state = new StageState(dockerfile, base ? configs.get(base.index)! : SCRATCH, buildArgs, globals);
    for (const step of stage.instructions) expect(state.apply(step), `line ${step.line}`).toBe(true);
    configs.set(stage.index, state.config);
    last = state;
  }
  return { config: last!.config, ...(last!.author ? { author: last!.author } : {}) };
}

/** A config as compared: buildah's own label out, empty lists as absent, ranges as Docker expands them. */
function comparable(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ['Env', 'Labels', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'Cmd', 'Entrypoint', 'StopSignal', 'Shell', 'Healthcheck', 'OnBuild']) {
    let value = config[key];
    if (key === 'Labels' && value) value = Object.fromEntries(Object.entries(value as Record<string, string>).filter(([k]) => k !== 'io.buildah.version'));
    if (key === 'ExposedPorts' && value) {
      const ports: Record<string, object> = {};
      for (const port of Object.keys(value as object)) {
        const m = /^(\d+)-(\d+)\/(\w+)$/.exec(port);
        if (m) for (let p = Number(m[1]); p <= Number(m[2]); p++) ports[`${p}/${m[3]}`] = {};
        else ports[port] = {};
      }
      value = ports;
    }
    if (value === null || value === undefined || value === '' || (Array.isArray(value) && value.length === 0) || (typeof value === 'object' && Object.keys(value).length === 0)) continue;
    out[key] = value;
  }
  return out;
}

describe.skipIf(!needs('buildah'))('Dockerfile config steps against buildah', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-build-metadata-'));
  });
  afterAll(() => {
    try {
      execFileSync('buildah', [...store(), 'rmi', '--all', '--force'], { stdio: 'ignore' });
    } catch {
      // nothing built
    }
    rmSync(work, { recursive: true, force: true });
  });
  const store = () => ['--root', join(work, 'root'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];

  function buildah(file: string, buildArgs: Record<string, string>): Record<string, unknown> {
    const tag = `strata-test-${Math.random().toString(36).slice(2)}`;
    const args = Object.entries(buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
    execBuildah('buildah', [...store(), 'bud', '--quiet', '--format', 'docker', ...args, '-t', tag, '-f', file, FIXTURES]);
    const inspected = JSON.parse(execBuildah('buildah', [...store(), 'inspect', '--type', 'image', tag])) as { Docker: { config: Record<string, unknown> } };
    return inspected.Docker.config;
  }

  for (const [file, buildArgs] of [
    ['metadata.Dockerfile', { V: 'given' }],
    ['metadata.Dockerfile', {}],
    ['stages.Dockerfile', {}],
    ['platform-args.Dockerfile', {}],
    ['platform-args.Dockerfile', { TARGETARCH: 'given' }],
  ] as const) {
    it(`${file} with ${JSON.stringify(buildArgs)} gives buildah's config`, () => {
      const path = join(FIXTURES, file);
      const ours = evaluate(readFileSync(path, 'utf8'), buildArgs);
      expect(comparable(ours.config as Record<string, unknown>)).toEqual(comparable(buildah(path, buildArgs)));
    }, 120_000);
  }
});

describe('Dockerfile frontend', () => {
  it('expands EXPOSE ranges as Docker does, one key per port', () => {
    const { config } = evaluate('FROM scratch\nEXPOSE 8000-8002 53/UDP\n', {});
    expect(Object.keys(config.ExposedPorts!)).toEqual(['8000/tcp', '8001/tcp', '8002/tcp', '53/udp']);
  });

  it('reads HEALTHCHECK durations as Go does, both micro signs included', () => {
    const { config } = evaluate('FROM scratch\nHEALTHCHECK --interval=1m30s --timeout=250\u00b5s --start-period=1.5\u03bcs --start-interval=2us CMD true\n', {});
    expect(config.Healthcheck).toMatchObject({ Interval: 90e9, Timeout: 250e3, StartPeriod: 1500, StartInterval: 2000 });
  });

  it("expands BuildKit's modifiers in config steps: -, +, ? without the colon, patterns trimmed and replaced", () => {
    const text = ['FROM scratch', 'ARG VERSION=v1.22.3', 'ARG EMPTY=', 'ENV MINOR=${VERSION%.*} BARE=${VERSION#v} DASHED=${VERSION//./-}', 'ENV KEPT=${EMPTY-none} GIVEN=${EMPTY:-none} SET=${EMPTY+set}', 'LABEL major="${VERSION%%.*}" req=${VERSION:?}', 'WORKDIR /opt/${VERSION/v/ver-}'].join('\n');
    const { config } = evaluate(text, {});
    expect(config.Env).toEqual([...SCRATCH.Env!, 'MINOR=v1.22', 'BARE=1.22.3', 'DASHED=v1-22-3', 'KEPT=', 'GIVEN=none', 'SET=set']);
    expect(config.Labels).toEqual({ major: 'v1', req: 'v1.22.3' });
    expect(config.WorkingDir).toBe('/opt/ver-1.22.3');
    expect(evaluate(text, { VERSION: '2.0' }).config.Env).toContain('BARE=2.0');
  });

  it('refuses what it does not carry out, naming the line', () => {
    const cases: [string, RegExp][] = [
      ['FROM scratch\nFOO bar\n', /line 2: unknown instruction "FOO"/],
      ['FROM scratch\nRUN --mount=type=ssh,src=x true\n', /line 2: --mount type=ssh takes no src/],
      ['FROM scratch\nRUN --mount=type=bind,from=scratch,target=/x,from=x true\n', /line 2: --mount from given twice/],
      ['FROM scratch\nRUN --mount=type=cache,target=/x,sharing=maybe true\n', /line 2: --mount sharing="maybe" is not shared, private or locked/],
      ['FROM scratch\nRUN --network=bridge true\n', /line 2: RUN --network=bridge is not a network \(RUN --network takes default, host, none\)/],
      ['FROM scratch\nRUN --network=none --network=host true\n', /line 2: RUN --network given twice/],
      ['FROM scratch\nRUN --security=maybe true\n', /line 2: RUN --security=maybe is not a mode \(RUN --security takes sandbox, insecure\)/],
      ['FROM scratch\nRUN --device=x true\n', /line 2: RUN --device is not supported \(RUN takes --mount, --network, --security\)/],
      ['FROM scratch\nCOPY --unpack a b\n', /line 2: COPY --unpack is not supported \(COPY takes --from, --chown, --chmod, --link, --parents, --exclude\)/],
      ['FROM scratch\nADD --parents a b\n', /line 2: ADD --parents is not supported/],
      ['FROM scratch\nCOPY --parents=maybe a b\n', /line 2: COPY --parents=maybe: true or false is expected/],
      ['FROM scratch\nCOPY --link=yes a b\n', /line 2: COPY --link=yes: true or false is expected/],
      ['ENV A=1\nFROM scratch\n', /line 1: ENV before the first FROM/],
      ['ARG BASE\nFROM ${BASE}\n', /line 2: FROM \$\{BASE\} names no image/],
      ['FROM scratch\nONBUILD FROM x\n', /line 2: ONBUILD FROM is not allowed/],
      ['FROM scratch\nSHELL /bin/bash -c\n', /line 2: SHELL takes the JSON form/],
      ['FROM scratch\nHEALTHCHECK --interval=soon CMD true\n', /line 2: HEALTHCHECK --interval=soon is not a duration/],
      ['FROM scratch\nEXPOSE http\n', /line 2: EXPOSE "http": "http" is not a port or a range of ports/],
      ['FROM scratch\nENV A=${B:=x}\n', /line 2: .*unsupported modifier ":="/],
      ['FROM scratch\nARG B\nENV A="${B:?B must be set}"\n', /line 3: ENV: B: B must be set/],
      ['ARG V=${X:?}\nFROM scratch\n', /line 1: ARG: X: is not allowed to be unset/],
      ["FROM ${X:?required}\n", /line 1: FROM: X: required/],
      ['FROM scratch\nLABEL a=${B#\\x}\n', /line 2: .*invalid escape/],
      ['FROM scratch\nCOPY --from=1 a b\n', /line 2: COPY --from=1: there is no stage 1/],
      ['FROM scratch AS first\nCOPY --from=later a b\nFROM scratch AS later\nFROM first\n', /line 2: COPY --from=later: stage later is defined after this one/],
      ['FROM scratch AS first\nRUN --mount=from=Later,target=/x true\nFROM scratch AS later\nFROM first\n', /line 2: RUN --mount from=Later: stage Later is defined after this one/],
      ['# nothing\n', /no FROM/],
    ];
    for (const [text, message] of cases) {
      expect(() => evaluate(text, {}), text).toThrow(message);
    }
  });

  it('builds only the stages the target needs, dependencies first', () => {
    const text = ['FROM scratch AS a', 'FROM scratch AS unused', 'FROM a AS b', 'FROM scratch AS c', 'COPY --from=b /x /x', 'COPY --from=0 /y /y', 'FROM scratch AS d'].join('\n');
    const dockerfile = parseDockerfile(text);
    expect(neededStages(dockerfile, targetStage(dockerfile, 'c')).map((s) => s.name)).toEqual(['a', 'b', 'c']);
    expect(neededStages(dockerfile, targetStage(dockerfile)).map((s) => s.name)).toEqual(['d']);
    expect(() => targetStage(dockerfile, 'missing')).toThrow(/target stage "missing"/);
    // A bind mount's `from` is a dependency as COPY --from is.
    const mounted = parseDockerfile(['FROM scratch AS a', 'FROM scratch AS unused', 'FROM scratch AS m', 'RUN --mount=type=bind,from=a,target=/x true'].join('\n'));
    expect(neededStages(mounted, targetStage(mounted)).map((s) => s.name)).toEqual(['a', 'm']);
    // Neither takes a variable: BuildKit refuses both while parsing, in any stage (its testMountFromError and
    // testDockerfileCopyFromArgs), where buildah expands them. A `$` that ends a mount's `from` is a name's.
    expect(() => parseDockerfile('ARG SRC=a\nFROM scratch AS a\nFROM scratch\nENV ttt=a\nRUN --mount=from=$ttt,type=cache,target=/tmp ls\n')).toThrow(
      /line 5: RUN --mount from=\$ttt: 'from' doesn't support variable expansion, define alias stage instead/,
    );
    expect(() => parseDockerfile('FROM scratch AS unused\nRUN --mount=type=bind,FROM=${SRC},target=/x true\nFROM scratch\n')).toThrow(/line 2: RUN --mount from=\$\{SRC\}: 'from' doesn't/);
    expect(parseDockerfile('FROM scratch\nRUN --mount=from=image$,target=/x true\n').stages[0]!.instructions).toHaveLength(1);
    expect(() => parseDockerfile('FROM scratch\nCOPY --from=$FOO . .\n')).toThrow(/line 2: COPY --from=\$FOO: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround/);
    for (const from of ['"$FOO"', "'$FOO'", '\\$FOO', '${FOO}']) {
      expect(() => parseDockerfile(`FROM scratch AS unused\nCOPY --from=${from} /x /y\nFROM scratch\n`), from).toThrow(/line 2: COPY --from=.*variable expansion is not supported/);
    }
    // Quotes and escapes are the parser's, as in BuildKit's (extractBuilderFlags): the name is what is left.
    const quoted = parseDockerfile('FROM scratch AS a\nFROM scratch\nCOPY --from="a" /x /y\nCOPY --from=\'a\' /x /y\nCOPY --from=\\a /x /y\n');
    expect(quoted.stages[1]!.instructions.map((i) => i.flags.from)).toEqual(['a', 'a', 'a']);
    expect(neededStages(quoted, targetStage(quoted)).map((s) => s.name)).toEqual(['a', undefined]);
    expect(parseDockerfile('FROM scratch\nCOPY --from=image$ /x /y\n').stages[0]!.instructions).toHaveLength(1);
    // A stage naming itself depends on itself: BuildKit's cycle (its TestDockerfileCircularDependencies), for
    // COPY --from and a mount's from alike; a later stage it may not name either (see above).
    const own = parseDockerfile('FROM scratch AS a\nCOPY --from=a /x /y\n');
    expect(() => neededStages(own, targetStage(own))).toThrow(/line 2: COPY --from=a: circular dependency detected on stage: a/);
    const mountsOwn = parseDockerfile('FROM scratch AS stage0\nRUN --mount=from=stage0,target=/x true\n');
    expect(() => neededStages(mountsOwn, targetStage(mountsOwn))).toThrow(/line 2: RUN --mount from=stage0: circular dependency detected on stage: stage0/);
    // A name given twice names its last stage in the file, as BuildKit looks it up for --from: the second
    // `a` (built on the first, which FROM names, as only earlier stages are there for it) ...
    const twice = parseDockerfile('FROM scratch AS a\nFROM a AS a\nFROM scratch AS c\nCOPY --from=a /x /x\n');
    expect(neededStages(twice, targetStage(twice)).map((s) => s.index)).toEqual([0, 1, 2]);
    // ... and an error where that last one comes after the stage naming it.
    const later = parseDockerfile('FROM scratch AS a\nFROM scratch AS c\nCOPY --from=a /x /x\nFROM scratch AS a\n');
    expect(() => neededStages(later, targetStage(later, 'c'))).toThrow(/line 3: COPY --from=a: stage a is defined after this one/);
  });

  it('reads flags apart from the arguments, FROM --platform expanded with the global ARGs', () => {
    const dockerfile = parseDockerfile('ARG ARCH=arm64\nFROM --platform=linux/$ARCH busybox AS b\nCOPY --from=b --chown=1:2 a /b\n');
    const stage = dockerfile.stages[0]!;
    expect(stage).toMatchObject({ name: 'b', image: 'busybox', platform: 'linux/arm64' });
    expect(stage.instructions[0]).toMatchObject({ keyword: 'COPY', line: 3, flags: { from: 'b', chown: '1:2' }, args: 'a /b' });
    expect(parseDockerfile('ARG ARCH=arm64\nFROM --platform=linux/$ARCH busybox\n', { ARCH: 'amd64' }).stages[0]!.platform).toBe('linux/amd64');
  });

  it('reads heredocs from the lines between their delimiters: several, chomped, quoted, after a continued command line', () => {
    const text = 'FROM scratch\nCOPY <<-A <<"B" \\\n  /dest/\n\tfirst\n\\$x\nA\n\nsecond\nB\nRUN true\n';
    const [copy, run] = parseDockerfile(text).stages[0]!.instructions;
    expect(copy).toMatchObject({ keyword: 'COPY', line: 2, heredocs: [{ name: 'A', content: '\tfirst\n\\$x\n', chomp: true, quoted: false }, { name: 'B', content: '\nsecond\n', chomp: false, quoted: true }] });
    expect(run).toMatchObject({ keyword: 'RUN', line: 10, args: 'true' });
    expect(() => parseDockerfile('FROM scratch\nCOPY <<EOF /x\nno end\n')).toThrow(/Dockerfile line 2: the heredoc EOF has no end/);
    // A last body line ending in \ is continued by the parser, so the heredoc would take the wrong arguments.
    for (const body of ['\\', 'a\nb \\']) expect(() => parseDockerfile(`FROM scratch\nCOPY <<EOF /x\n${body}\nEOF\n`)).toThrow(/Dockerfile line 2: the heredoc EOF has no end .*a body whose last line ends in \\ is read as continued/);
    expect(parseDockerfile('FROM scratch\nCOPY <<EOF /x\n\\\\\nEOF\n').stages[0]!.instructions[0]).toMatchObject({ args: '<<EOF /x', heredocs: [{ content: '\\\\\n' }] });
  });

  it('keeps RUN heredocs and exec forms as written', () => {
    const dockerfile = parseDockerfile('FROM scratch\nRUN <<EOT bash\necho one\necho "$HOME"\nEOT\nRUN ["/bin/echo", "a b"]\nRUN echo a \\\n  b\n');
    const [heredoc, exec, shell] = dockerfile.stages[0]!.instructions;
    expect(heredoc).toMatchObject({ keyword: 'RUN', line: 2, args: '<<EOT bash', heredocs: [{ name: 'EOT', content: 'echo one\necho "$HOME"\n', chomp: false, quoted: false }] });
    expect(exec).toMatchObject({ keyword: 'RUN', line: 6, json: ['/bin/echo', 'a b'] });
    expect(shell).toMatchObject({ keyword: 'RUN', line: 7 });
    expect(shell!.json).toBeUndefined();
    expect(shell!.args.replace(/\s+/g, ' ')).toBe('echo a b');
  });
});
