/**
 * The seccomp profile a RUN step runs under, against containerd's own: a static probe (fixtures/
 * seccomp-probe.c) makes some sixty system calls a profile decides on, each in a child of its own, and writes
 * what each returned. It runs as a RUN step of strata's, and in a container of a private containerd daemon
 * (`ctr run --seccomp`: containerd's default profile, the one BuildKit gives a step, with the same default
 * capabilities and the host's network), once without the profile to show the probe tells them apart. The
 * two must agree on every call but five, where containerd changed its profile after the 1.6 that Debian
 * ships and strata follows the newer one, as BuildKit (which carries containerd 2) does. A step run with
 * `--security=insecure` has no profile.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImages, type Images } from '@strata/images';
import { buildWith, imageView, scratch, writeContext } from './helpers/build.js';
import { Containerd } from './helpers/containerd.js';
import { needs } from './helpers/oracle.js';

const PROBE_SOURCE = join(import.meta.dirname, 'fixtures', 'seccomp-probe.c');

/**
 * Where containerd 1.6's profile and today's differ, what today's (and strata's) answers: io_uring refused
 * (containerd a48ddf4, 2023: its exploits), sockets of the kernel's crypto interface and of virtual machines
 * refused (0c23e94, 2026; 17a9324, 2022), process_vm_readv allowed as ptrace is on kernels from 4.8 on, and
 * name_to_handle_at allowed (only open_by_handle_at needs CAP_DAC_READ_SEARCH).
 */
const NEWER_THAN_CONTAINERD_1_6: Record<string, string> = {
  io_uring_setup: 'EPERM',
  'socket-vsock': 'EPERM',
  'socket-alg': 'EPERM',
  process_vm_readv: 'ok',
  name_to_handle_at: 'ok',
};

function results(text: string): Map<string, string> {
  return new Map(
    text
      .trim()
      .split('\n')
      .map((line) => line.split(' ') as [string, string]),
  );
}

describe.skipIf(!needs('root', 'overlay', 'containerd', 'gcc'))('RUN under seccomp', () => {
  let work: string;
  let images: Images;
  let context: string;
  let containerd: Containerd;

  beforeAll(async () => {
    work = scratch('strata-build-seccomp-');
    context = writeContext(join(work, 'context'), {
      Dockerfile: ['FROM scratch', 'COPY probe /probe', 'RUN ["/probe", "/results"]', ''].join('\n'),
      'Dockerfile.insecure': ['FROM scratch', 'COPY probe /probe', 'RUN --security=insecure ["/probe", "/results"]', ''].join('\n'),
    });
    execFileSync('gcc', ['-static', '-O2', '-o', join(context, 'probe'), PROBE_SOURCE]);
    images = await openImages(join(work, 'root'), { driver: 'overlay' });
    containerd = await Containerd.start(join(work, 'containerd'));
  }, 120_000);

  afterAll(async () => {
    containerd?.stop();
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** The probe's results in a container of containerd's, with its default profile or none. */
  function underContainerd(name: string, seccomp: boolean): Map<string, string> {
    const rootfs = join(work, name);
    mkdirSync(rootfs);
    copyFileSync(join(context, 'probe'), join(rootfs, 'probe'));
    const [ctr, ...args] = containerd.ctr('run', '--rm', '--net-host', ...(seccomp ? ['--seccomp'] : []), '--rootfs', rootfs, name, '/probe');
    return results(execFileSync(ctr!, args, { encoding: 'utf8' }));
  }

  async function underStrata(dockerfile: string, tag: string): Promise<Map<string, string>> {
    const { result } = await buildWith(images, { context, dockerfile: join(context, dockerfile), tags: [tag], allow: ['security.insecure'] });
    const view = await imageView(images, result.names[0]!);
    return results(String(await view.readFile('/results', 'utf8')));
  }

  it("answers every call as containerd's default profile does, and as its newer profile where that changed", async () => {
    const oracle = underContainerd('confined', true);
    const unconfined = underContainerd('unconfined', false);
    const strata = await underStrata('Dockerfile', 'example.com/seccomp:confined');

    expect([...strata.keys()]).toEqual([...oracle.keys()]);
    expect(oracle.size).toBeGreaterThan(50);
    // The probe tells a profile from none: these answer otherwise without one.
    const told = [...oracle].filter(([name, answer]) => unconfined.get(name) !== answer).map(([name]) => name);
    expect(told).toEqual(expect.arrayContaining(['clone-newuser', 'unshare-user', 'keyctl', 'setns', 'open_tree', 'get_mempolicy', 'personality-no-randomize']));

    const expected = new Map([...oracle].map(([name, answer]) => [name, NEWER_THAN_CONTAINERD_1_6[name] ?? answer]));
    expect(Object.fromEntries(strata)).toEqual(Object.fromEntries(expected));
    // What a build does goes through: files, owners, devices, users, processes, sockets.
    for (const name of ['mkdir', 'chown', 'mknod', 'setresuid', 'clone', 'chroot', 'socket-inet', 'socket-unix', 'ptrace-traceme']) expect(strata.get(name), name).toBe('ok');
    // clone3 looks unimplemented, so a C library falls back to clone, whose flags seccomp can read.
    expect(strata.get('clone3')).toBe('ENOSYS');
  }, 300_000);

  it('gives RUN --security=insecure no profile', async () => {
    const strata = await underStrata('Dockerfile.insecure', 'example.com/seccomp:insecure');
    for (const name of ['unshare-user', 'keyctl', 'io_uring_setup', 'personality-no-randomize', 'get_mempolicy']) expect(strata.get(name), name).toBe('ok');
    expect(strata.get('clone3')).not.toBe('ENOSYS');
  }, 300_000);
});
