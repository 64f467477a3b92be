/**
 * Public corpora of Dockerfiles built by strata and by buildah side by side (`buildah bud --layers
 * --isolation chroot`, Debian's), from the same stand-in base images, and compared: both build a case (or
 * both refuse it), and the images have the same tree and config, but for the differences a case lists, each
 * with BuildKit's reason.
 *
 * The stand-ins are the same bytes in both stores: `busybox` is Debian's static busybox with its applets
 * and a small /etc/passwd, `golang` the minbase image with a /go/src and WORKDIR /go, and `minbase` the
 * minbase image itself; strata builds or imports them and hands them to buildah through OCI layouts.
 *
 * Left out of every comparison: times (each build runs at its own moment; build-buildah compares the
 * copies' times), and what buildah's chroot isolation leaves behind: the empty files it bind-mounted over
 * (/etc/hosts, /etc/hostname, /etc/resolv.conf) and the empty /run and /etc it made for them.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Images } from '@strata/images';
import { execBuildah } from './buildah-run.js';
import { busybox } from './busybox.js';
import { BASE, Buildah, buildWith, imageTree, rootWithBase, scratch, writeContext } from './build.js';
import { diffSnapshots, type NodeRecord } from './snapshot.js';
import { picture } from './unpacked.js';

/** A difference from buildah's image that is BuildKit's way: a line of the comparison, by its start, and why. */
export interface Known {
  /** `missing: path` is in buildah's image only, `extra: path` in strata's only, `differs: path\n` in both. */
  readonly line: string;
  readonly why: string;
}

/** The `Known` differences of `lines`, all for one reason. */
export const known = (why: string, ...lines: string[]): Known[] => lines.map((line) => ({ line, why }));

// BuildKit's VOLUME only declares (dispatchVolume): it makes no directory, and what later steps write below
// it stays in the image; buildah (as Docker's classic builder) makes the directory and drops what RUN writes
// there.
export const VOLUME_KEEPS_RUN = 'what RUN writes below a VOLUME is kept';
export const VOLUME_MAKES_NOTHING = 'VOLUME makes no directory';
// BuildKit's WORKDIR makes its directory, owned by the stage's USER, where buildah leaves it to the next
// COPY, which gives it --chown's owner.
export const WORKDIR_MAKES_IT = "WORKDIR makes its directory as the stage's user";

export interface CorpusCase {
  readonly name: string;
  /** The context and the Dockerfile, absolute. */
  readonly context: string;
  readonly dockerfile: string;
  readonly args?: Readonly<Record<string, string>>;
  /** The stage to build (the last by default). */
  readonly target?: string;
  /** What the steps print, as the corpus expects it. */
  readonly output?: readonly RegExp[];
  /** A Dockerfile Docker refuses: both refuse it, before any image is made. */
  readonly refused?: true;
  readonly differences?: readonly Known[];
}

/** How the corpus's FROM names are stood in for. */
export type StandIn = 'busybox' | 'golang' | 'minbase';

const BUSYBOX = [
  'FROM scratch',
  'COPY busybox /bin/busybox',
  'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
  "RUN mkdir -p /tmp /var /etc /root /home && chmod 1777 /tmp && printf 'root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/home:/bin/false\\n' > /etc/passwd && printf 'root:x:0:\\nnogroup:x:65534:\\n' > /etc/group",
  '',
].join('\n');
const GOLANG = [`FROM ${BASE}`, 'RUN mkdir -p /go/src/example && echo go > /go/src/example/main.go', 'WORKDIR /go', ''].join('\n');
const CONFIG_KEYS = ['Env', 'Cmd', 'Entrypoint', 'User', 'WorkingDir', 'ExposedPorts', 'Volumes', 'Labels', 'Shell', 'StopSignal', 'OnBuild', 'Healthcheck'];

/**
 * A config value as both builders mean it: buildah writes an empty string, list or map where BuildKit writes
 * none, and leaves a scratch image's workdir empty where BuildKit writes `/`.
 */
const meaning = (key: string, value: unknown) =>
  value === undefined || value === null || value === '' || (key === 'WorkingDir' && value === '/') || (typeof value === 'object' && Object.keys(value).length === 0) ? null : value;

/** A tree with the times left out. */
function timeless(tree: Map<string, NodeRecord>): Map<string, NodeRecord> {
  const out = new Map<string, NodeRecord>();
  for (const [path, record] of tree) {
    const { mtimeNs, ...rest } = record;
    void mtimeNs;
    out.set(path, rest);
  }
  return out;
}

export class CorpusBuilds {
  #n = 0;

  private constructor(
    readonly work: string,
    readonly images: Images,
    readonly buildah: Buildah,
  ) {}

  /** A strata root and a buildah store under a new scratch directory, each `standIns` name in both. */
  static async open(prefix: string, standIns: Readonly<Record<string, StandIn>>): Promise<CorpusBuilds> {
    const work = scratch(prefix);
    const images = await rootWithBase(work);
    const buildah = new Buildah(work);
    const made = new Map<StandIn, string>([['minbase', BASE]]);
    const make = async (kind: StandIn): Promise<string> => {
      if (made.has(kind)) return made.get(kind)!;
      const ref = `example.com/stand-in/${kind}:latest`;
      const context = writeContext(join(work, 'stand-ins', kind), { Dockerfile: kind === 'busybox' ? BUSYBOX : GOLANG });
      if (kind === 'busybox') copyFileSync(busybox('amd64'), join(context, 'busybox'));
      await buildWith(images, { context, tags: [ref] });
      made.set(kind, ref);
      return ref;
    };
    for (const [name, kind] of Object.entries(standIns)) {
      images.tag(await make(kind), name);
      // A layout of its own for each, at a lowercase path: buildah names what it pulls after the path.
      const layout = join(tmpdir(), `strata-corpus-${randomBytes(6).toString('hex')}`);
      try {
        await images.export([name], layout, { format: 'oci' });
        const id = buildah.run(['pull', '--quiet', `oci:${layout}`]).trim().split('\n').at(-1)!;
        buildah.run(['tag', id, name]);
      } finally {
        rmSync(layout, { recursive: true, force: true });
      }
    }
    return new CorpusBuilds(work, images, buildah);
  }

  async close(): Promise<void> {
    this.buildah.close();
    await this.images.close();
    rmSync(this.work, { recursive: true, force: true });
  }

  /** Builds `c` with both and compares them (see the file's header). */
  async check(c: CorpusCase): Promise<void> {
    const tag = `example.com/corpus-${++this.#n}`;
    const flags = ['-f', c.dockerfile, ...(c.target ? ['--target', c.target] : []), ...Object.entries(c.args ?? {}).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`])];
    const options = { context: c.context, dockerfile: c.dockerfile, tags: [`${tag}:strata`], ...(c.args ? { buildArgs: c.args } : {}), ...(c.target ? { target: c.target } : {}) };
    if (c.refused) {
      await expect(buildWith(this.images, options)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(() => this.buildah.build(c.context, `${tag}:buildah`, flags)).toThrow();
      return;
    }
    const { output } = await buildWith(this.images, options);
    for (const line of c.output ?? []) expect(output).toMatch(line);
    try {
      this.buildah.build(c.context, `${tag}:buildah`, flags);
    } catch (error) {
      throw new Error(`buildah refused it: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`);
    }
    const mine = await imageTree(this.images, `${tag}:strata`, this.work);
    const differences = diffSnapshots(timeless(this.#theirTree(`${tag}:buildah`, mine)), timeless(mine), 40);
    const expected = c.differences ?? [];
    expect(differences.filter((line) => !expected.some((known) => line.startsWith(known.line)))).toEqual([]);
    for (const known of expected) expect(differences.some((line) => line.startsWith(known.line)), `${known.line} (${known.why})`).toBe(true);
    const config = this.images.inspect(`${tag}:strata`).config.config as Record<string, unknown>;
    const theirConfig = this.buildah.config(`${tag}:buildah`);
    const labels = { ...(theirConfig.Labels as Record<string, string> | undefined) };
    delete labels['io.buildah.version'];
    theirConfig.Labels = labels;
    for (const key of CONFIG_KEYS) expect(meaning(key, config[key]), key).toEqual(meaning(key, theirConfig[key]));
  }

  /**
   * buildah's image as its store holds it, through podman's image mount (buildah's own mount needs a
   * container, which a USER the image does not know refuses), less what its chroot isolation left.
   */
  #theirTree(tag: string, mine: Map<string, NodeRecord>): Map<string, NodeRecord> {
    const podman = (...args: string[]) => execBuildah('podman', ['--root', join(this.work, 'buildah', 'root'), '--runroot', join(this.work, 'buildah', 'run'), '--storage-driver', 'overlay', ...args]);
    const mount = podman('image', 'mount', tag).trim();
    let tree: Map<string, NodeRecord>;
    try {
      tree = picture(mount);
    } finally {
      podman('image', 'unmount', tag);
    }
    for (const path of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf']) if (tree.get(path)?.size === 0 && !mine.has(path)) tree.delete(path);
    for (const dir of ['run', 'etc']) {
      if (tree.get(dir)?.type === 'directory' && !mine.has(dir) && ![...tree.keys()].some((p) => p.startsWith(`${dir}/`))) tree.delete(dir);
    }
    return tree;
  }
}
