/**
 * The steps that change only the image config (ARG, ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, CMD,
 * ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER), applied as Docker applies them: words
 * processed with the variables the step sees (the stage's ARGs, then its ENV, which wins), all pairs of one
 * ENV against the variables from before it, relative WORKDIRs joined to the previous one, a shell-form
 * CMD or ENTRYPOINT run by the stage's SHELL, and an ENTRYPOINT clearing a CMD inherited from the base.
 */
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { keyValues, processWord, processWords } from './lex.js';
import { lineError, wordsAt, type Dockerfile, type Instruction } from './dockerfile.js';

/** The runnable part of an image config (the OCI image spec's `config`), as steps change it. */
export interface RunConfig {
  Env?: string[];
  Labels?: Record<string, string>;
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  Cmd?: string[];
  Entrypoint?: string[];
  StopSignal?: string;
  Shell?: string[];
  Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number };
  OnBuild?: string[];
}

/** A stage's state between steps. */
export class StageState {
  readonly config: RunConfig;
  /** The stage's declared ARGs and their values. */
  readonly args = new Map<string, string>();
  author: string | undefined;
  #cmdSetHere = false;

  constructor(
    readonly dockerfile: Dockerfile,
    base: RunConfig,
    readonly buildArgs: Readonly<Record<string, string>>,
    /** The global ARGs' values (a stage's `ARG NAME` without a default takes the global one). */
    readonly globals: ReadonlyMap<string, string>,
  ) {
    this.config = structuredClone(base);
  }

  /** The variables a step sees: the stage's ARGs, then its ENV over them. */
  variables(): Map<string, string> {
    const vars = new Map(this.args);
    for (const entry of this.config.Env ?? []) {
      const eq = entry.indexOf('=');
      vars.set(eq < 0 ? entry : entry.slice(0, eq), eq < 0 ? '' : entry.slice(eq + 1));
    }
    return vars;
  }

  #word(text: string): string {
    return processWord(text, this.variables(), this.dockerfile.escape);
  }

  /** The shell a shell-form command runs under. */
  shell(): string[] {
    return this.config.Shell ?? ['/bin/sh', '-c'];
  }

  /**
   * Applies a metadata step; returns false for a step that is not one (COPY, ADD, RUN). Throws
   * INVALID_ARGUMENT naming the line for what the step cannot take.
   */
  apply(step: Instruction): boolean {
    return wordsAt(step, () => this.#apply(step));
  }

  #apply(step: Instruction): boolean {
    const escape = this.dockerfile.escape;
    const at = step.line;
    const config = this.config;
    switch (step.keyword) {
      case 'ARG':
        for (const [name, raw] of keyValues(step.args, escape, false)) {
          const value = Object.hasOwn(this.buildArgs, name) ? this.buildArgs[name]! : raw !== undefined ? this.#word(raw) : this.globals.get(name);
          // Declared again without a value, an ARG keeps the one it has (from this stage or its base stage), as in BuildKit.
          if (value !== undefined) this.args.set(name, value);
        }
        return true;
      case 'ENV': {
        const vars = this.variables();
        const env = [...(config.Env ?? [])];
        for (const [key, raw] of keyValues(step.args, escape, true)) {
          // The name is a word as the value is (BuildKit expands both): `ENV "A"=1` sets A.
          const name = processWord(key, vars, escape);
          const value = processWord(raw ?? '', vars, escape);
          const entry = `${name}=${value}`;
          const existing = env.findIndex((e) => e === name || e.startsWith(`${name}=`));
          if (existing >= 0) env[existing] = entry;
          else env.push(entry);
        }
        config.Env = env;
        return true;
      }
      case 'LABEL': {
        const vars = this.variables();
        config.Labels = { ...(config.Labels ?? {}) };
        for (const [name, raw] of keyValues(step.args, escape, true)) config.Labels[processWord(name, vars, escape)] = processWord(raw ?? '', vars, escape);
        return true;
      }
      case 'WORKDIR': {
        const dir = this.#word(step.args);
        if (dir === '') throw lineError(at, 'WORKDIR needs a directory');
        config.WorkingDir = posix.resolve(config.WorkingDir || '/', dir);
        return true;
      }
      case 'USER': {
        const user = this.#word(step.args);
        if (user === '') throw lineError(at, 'USER needs a user');
        config.User = user;
        return true;
      }
      case 'EXPOSE':
        config.ExposedPorts = { ...(config.ExposedPorts ?? {}) };
        for (const word of processWords(step.args, this.variables(), escape)) {
          const ports = exposedPorts(word);
          if (typeof ports === 'string') throw lineError(at, `EXPOSE ${JSON.stringify(word)}: ${ports}`);
          for (const port of ports) config.ExposedPorts[port] = {};
        }
        return true;
      case 'VOLUME':
        config.Volumes = { ...(config.Volumes ?? {}) };
        for (const path of step.json ?? processWords(step.args, this.variables(), escape)) {
          if (path === '') throw lineError(at, 'VOLUME of an empty path');
          config.Volumes[path] = {};
        }
        return true;
      case 'CMD':
        config.Cmd = step.json ? [...step.json] : [...this.shell(), step.args];
        this.#cmdSetHere = true;
        return true;
      case 'ENTRYPOINT':
        config.Entrypoint = step.json ? [...step.json] : [...this.shell(), step.args];
        if (!this.#cmdSetHere) delete config.Cmd; // an inherited CMD no longer applies
        return true;
      case 'SHELL':
        if (!step.json || step.json.length === 0) throw lineError(at, 'SHELL takes the JSON form: SHELL ["executable", "parameters"]');
        config.Shell = [...step.json];
        return true;
      case 'STOPSIGNAL': {
        const signal = this.#word(step.args);
        if (!/^(SIG[A-Z0-9+-]+|\d+)$/.test(signal)) throw lineError(at, `STOPSIGNAL ${JSON.stringify(signal)} is not a signal`);
        config.StopSignal = signal;
        return true;
      }
      case 'HEALTHCHECK':
        config.Healthcheck = healthcheck(step);
        return true;
      case 'ONBUILD':
        config.OnBuild = [...(config.OnBuild ?? []), step.args];
        return true;
      case 'MAINTAINER':
        this.author = this.#word(step.args);
        return true;
      default:
        return false;
    }
  }
}

/** Go's units: microseconds as `us`, `\u00b5s` (micro sign) or `\u03bcs` (Greek mu). */
const UNITS: Record<string, number> = { ns: 1, us: 1e3, '\u00b5s': 1e3, '\u03bcs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds, as the config stores it. */
function duration(text: string, at: number, flag: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw lineError(at, `HEALTHCHECK --${flag}=${text} is not a duration`);
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]!]!, 0));
}

function healthcheck(step: Instruction): NonNullable<RunConfig['Healthcheck']> {
  const at = step.line;
  const words = step.args.trim();
  if (words.toUpperCase() === 'NONE') {
    if (Object.keys(step.flags).length > 0) throw lineError(at, 'HEALTHCHECK NONE takes no flags');
    return { Test: ['NONE'] };
  }
  const m = /^CMD\s+([\s\S]+)$/i.exec(words);
  if (m === null) throw lineError(at, 'HEALTHCHECK takes NONE, or CMD and a command');
  const command = m[1]!.trim();
  let test: string[];
  try {
    const json = command.startsWith('[') ? (JSON.parse(command) as unknown) : undefined;
    test = Array.isArray(json) && json.every((s) => typeof s === 'string') ? ['CMD', ...json] : ['CMD-SHELL', command];
  } catch {
    test = ['CMD-SHELL', command];
  }
  const out: NonNullable<RunConfig['Healthcheck']> = { Test: test };
  const f = step.flags;
  if (f.interval !== undefined) out.Interval = duration(f.interval, at, 'interval');
  if (f.timeout !== undefined) out.Timeout = duration(f.timeout, at, 'timeout');
  if (f['start-period'] !== undefined) out.StartPeriod = duration(f['start-period'], at, 'start-period');
  if (f['start-interval'] !== undefined) out.StartInterval = duration(f['start-interval'], at, 'start-interval');
  if (f.retries !== undefined) {
    if (!/^\d+$/.test(f.retries)) throw lineError(at, `HEALTHCHECK --retries=${f.retries} is not a count`);
    out.Retries = Number(f.retries);
  }
  return out;
}

/** A port or range (`8000-8010`) of EXPOSE: its first and last port, or why it is not one. */
function portRange(text: string): [number, number] | string {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (m === null) return `${JSON.stringify(text)} is not a port or a range of ports`;
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  if (first > 65535 || last > 65535) return `${text}: a port is 0 to 65535`;
  if (last < first) return `${text}: the range ends before it starts`;
  return [first, last];
}

/**
 * An EXPOSE word split as BuildKit splits it, `[address:][hostPort:]port[/protocol]`: each part as written,
 * '' where absent (what the build reads, and what the build checks judge).
 */
export function portParts(word: string): { address: string; host: string; port: string; protocol: string } {
  const parts = word.split(':');
  const container = parts.at(-1)!;
  const slash = container.indexOf('/');
  return {
    address: parts.length >= 3 ? parts.slice(0, -2).join(':') : '',
    host: parts.length >= 2 ? parts.at(-2)! : '',
    port: slash < 0 ? container : container.slice(0, slash),
    protocol: slash < 0 ? '' : container.slice(slash + 1),
  };
}

/**
 * What an EXPOSE word exposes, as BuildKit reads it: `[ip:][hostPort:]port[-port][/protocol]`, the container's
 * ports each as `port/protocol` (tcp by default; tcp, udp or sctp in any case, written lower-case). An address
 * or host port is taken and left out of the image (BuildKit warns, ExposeInvalidFormat); a host range is
 * allowed only for a single container port. A string: why the word is not one.
 */
export function exposedPorts(word: string): string[] | string {
  const { address, host, port: portText, protocol: written } = portParts(word);
  const protocol = written === '' ? 'tcp' : written.toLowerCase();
  if (portText === '') return 'no port';
  if (!['tcp', 'udp', 'sctp'].includes(protocol)) return `${JSON.stringify(written)} is not a protocol (tcp, udp or sctp)`;
  if (address !== '' && isIP(address.replace(/^\[(.*)\]$/, '$1')) === 0) return `${JSON.stringify(address)} is not an IP address`;
  const range = portRange(portText);
  if (typeof range === 'string') return range;
  if (host !== '') {
    const hostRange = portRange(host);
    if (typeof hostRange === 'string') return hostRange;
    if (range[1] - range[0] !== hostRange[1] - hostRange[0] && range[1] !== range[0]) return `the container's ports ${portText} and the host's ${host} are ranges of different lengths`;
  }
  const ports: string[] = [];
  for (let port = range[0]; port <= range[1]; port++) ports.push(`${port}/${protocol}`);
  return ports;
}
