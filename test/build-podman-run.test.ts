/**
 * A built image as a runtime runs it: strata builds two stages of a Dockerfile (an exec-form ENTRYPOINT and
 * CMD run as a named user in a WORKDIR, with ENV expanded from a build argument and the default PATH; a
 * stage below it that clears the ENTRYPOINT and runs a shell-form CMD as root), exports them as a docker
 * save archive and an OCI archive, and podman loads and runs each. What the processes print is what
 * `docker run` prints for the same Dockerfile: the config's meaning checked by a runtime nobody here wrote,
 * where the other suites compare configs field by field with buildah's.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImages, type Images } from '@strata/images';
import { busybox } from './helpers/busybox.js';
import { buildWith, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';

const DOCKERFILE = `FROM scratch AS app
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /tmp /root && chmod 1777 /tmp \\
 && printf 'root:x:0:0:root:/root:/bin/sh\\napp:x:1234:1234:app:/opt/app:/bin/sh\\n' > /etc/passwd \\
 && printf 'root:x:0:\\napp:x:1234:\\n' > /etc/group
ARG GREETING=hello
ENV GREETING="$GREETING from strata" PATH=/opt/app/bin:$PATH
WORKDIR /opt/app
COPY --chmod=755 greet bin/greet
USER app
ENTRYPOINT ["greet"]
CMD ["one", "two"]

FROM app AS shell
USER root
WORKDIR /srv
ENTRYPOINT []
CMD echo "shell form: $GREETING in $(pwd) as $(id -un)"
`;

const GREET = '#!/bin/sh\necho "greeting=$GREETING user=$(id -un):$(id -u):$(id -g) cwd=$(pwd) path=$PATH args=$*"\n';
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

describe.skipIf(!needs('root', 'overlay', 'podman', 'runc'))('built images run under podman', () => {
  let work: string;
  let images: Images;
  let podmanArgs: string[];

  const podman = (args: string[]) => execFileSync('podman', [...podmanArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  /**
   * `podman run` of `ref`, with no network and limits inside this VM's hard limits (podman asks for a million
   * open files, which runc may not set where the machine allows fewer).
   */
  const runImage = (ref: string, args: string[] = []) =>
    podman(['run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', ref, ...args]).trim();

  beforeAll(async () => {
    work = scratch('strata-build-podman-');
    images = await openImages(join(work, 'root'));
    const context = writeContext(join(work, 'context'), { Dockerfile: DOCKERFILE, greet: GREET });
    copyFileSync(busybox('amd64'), join(context, 'busybox'));
    podmanArgs = ['--root', join(work, 'podman', 'root'), '--runroot', join(work, 'podman', 'run'), '--storage-driver', 'overlay', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
    await buildWith(images, { context, target: 'app', tags: ['example.com/run:app'], buildArgs: { GREETING: 'hi' } });
    await buildWith(images, { context, target: 'shell', tags: ['example.com/run:shell'], buildArgs: { GREETING: 'hi' } });
    await images.export(['example.com/run:app'], join(work, 'app.tar'), { format: 'docker' });
    await images.export(['example.com/run:shell'], join(work, 'shell.tar'), { format: 'oci-archive' });
  }, 10 * 60_000);

  afterAll(async () => {
    await images?.close();
    if (podmanArgs !== undefined) {
      try {
        podman(['rmi', '--all', '--force']);
      } catch {
        // nothing loaded
      }
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('runs the exec-form ENTRYPOINT with CMD as its arguments, as the named user in the WORKDIR, with ENV', () => {
    expect(podman(['load', '-i', join(work, 'app.tar')])).toContain('example.com/run:app');
    const expected = `greeting=hi from strata user=app:1234:1234 cwd=/opt/app path=/opt/app/bin:${DEFAULT_PATH}`;
    expect(runImage('example.com/run:app')).toBe(`${expected} args=one two`);
    // Arguments replace CMD and go to the ENTRYPOINT.
    expect(runImage('example.com/run:app', ['three'])).toBe(`${expected} args=three`);
  });

  it('runs a shell-form CMD through /bin/sh -c once the ENTRYPOINT is cleared, as the stage set it up', () => {
    expect(podman(['load', '-i', join(work, 'shell.tar')])).toContain('Loaded image');
    expect(runImage('example.com/run:shell')).toBe('shell form: hi from strata in /srv as root');
    // Arguments replace CMD; with no ENTRYPOINT they are the command.
    expect(runImage('example.com/run:shell', ['sh', '-c', 'echo "$GREETING"'])).toBe('hi from strata');
    const config = JSON.parse(podman(['image', 'inspect', 'example.com/run:shell']))[0].Config;
    expect(config.Cmd).toEqual(['/bin/sh', '-c', 'echo "shell form: $GREETING in $(pwd) as $(id -un)"']);
    expect(config.Entrypoint ?? []).toEqual([]);
    expect(config.User).toBe('root');
  });
});
