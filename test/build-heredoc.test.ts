/**
 * Here-documents in RUN, COPY and ADD, checked against what BuildKit's own integration tests of them expect
 * (moby/buildkit, frontend/dockerfile/dockerfile_heredoc_test.go: the files each case must leave): COPY's
 * files named by their heredoc, `--chmod` and `--chown`, bodies expanded unless the name is quoted (quotes
 * kept, `\` taking the next character), `<<-` stripping tabs; RUN's heredoc as the whole command, as a
 * script with a `#!` line, and as input to a command line the shell reads whole. buildah 1.28 has no
 * heredocs, so BuildKit's expectations are the oracle here.
 *
 * Left out: a body whose last line ends in `\` (dockerfile-ast reads it as a line continuation: refused at
 * the parse, with the line, see build-metadata), and RUN heredocs on numbered descriptors (`3<<IN`), which
 * the parser does not see as heredocs (their bodies then fail as unknown instructions).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Images } from '@strata/images';
import { BASE, buildWith, imageView, rootWithBase, scratch, writeContext } from './helpers/build.js';
import { needs } from './helpers/oracle.js';

const COPIES = `FROM ${BASE}
ARG name=world
WORKDIR /dest
COPY <<EOF single
single file
EOF
COPY <<EOF <<EOF2 double/
first file
EOF
second file
EOF2
COPY --chmod=777 <<EOF /permfiles/all
dummy content
EOF
COPY --chmod=0644 <<EOF /permfiles/rw
dummy content
EOF
COPY --chown=nobody:nogroup <<EOF /permfiles/owned
dummy content
EOF
COPY <<EOF quotefile
"quotes in file"
EOF
COPY <<EOF slashfile3
\\$
EOF
COPY <<"EOF" rawslashfile3
\\$
EOF
COPY <<EOF c1
Hello \${name}!
EOF
COPY <<'EOF' c2
Hello \${name}!
EOF
COPY <<"EOF" c3
Hello \${name}!
EOF
COPY <<EOF q1
Hello '\${name}'!
EOF
COPY <<EOF q2
Hello "\${name}"!
EOF
COPY <<'EOF' qsingle2
Hello "\${name}"!
EOF
COPY <<EOF foo-copy
\tfoo
EOF
COPY <<-EOF bar-copy
\tbar
EOF
ADD <<EOF local.txt mixed/
inline, beside a context file
EOF
`;

const RUNS = `FROM ${BASE}
ARG name=world
WORKDIR /dest
RUN <<EOF
echo "i am" >> /dest/basic
whoami >> /dest/basic
EOF
RUN <<EOF
#!/usr/bin/awk -f
BEGIN {
\tprint "hello" >> "/dest/shebang"
\tprint "world" >> "/dest/shebang"
}
EOF
RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./out1; \\
\tcat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./out2
hello WORLD
EOF1
HELLO world
EOF2
RUN <<EOF
echo "
\tfoo" > /dest/foo-run
EOF
RUN <<-EOF
echo "
\tbar" > /dest/bar-run
EOF
RUN <<EOF sh > /dest/foo3-run
echo "
\tfoo"
EOF
RUN <<-EOF sh > /dest/bar3-run
echo "
\tbar"
EOF
RUN <<EOF
greeting="Hello"
echo "\${greeting} \${name}!" > /dest/r1
EOF
RUN <<EOF
name="new world"
echo "Hello \${name}!" > /dest/r2
EOF
`;

describe.skipIf(!needs('root', 'overlay', 'umoci', 'skopeo', 'debootstrap'))('heredocs', () => {
  let work: string;
  let images: Images;

  beforeAll(async () => {
    work = scratch('strata-build-heredoc-');
    images = await rootWithBase(work);
  }, 30 * 60_000);

  afterAll(async () => {
    await images?.close();
    rmSync(work, { recursive: true, force: true });
  });

  async function built(dockerfile: string, tag: string) {
    const dir = writeContext(join(work, tag.replace(/\W/g, '-')), { Dockerfile: dockerfile, 'local.txt': 'local\n' });
    const { result } = await buildWith(images, { context: dir, tags: [tag] });
    return imageView(images, result.names[0]!);
  }

  it('makes COPY and ADD files of heredocs as BuildKit does', async () => {
    const layer = await built(COPIES, 'example.com/heredoc:copy');
    const expected: Record<string, string> = {
      single: 'single file\n',
      'double/EOF': 'first file\n',
      'double/EOF2': 'second file\n',
      quotefile: '"quotes in file"\n',
      slashfile3: '$\n',
      rawslashfile3: '\\$\n',
      c1: 'Hello world!\n',
      c2: 'Hello ${name}!\n',
      c3: 'Hello ${name}!\n',
      q1: "Hello 'world'!\n",
      q2: 'Hello "world"!\n',
      qsingle2: 'Hello "${name}"!\n',
      'foo-copy': '\tfoo\n',
      'bar-copy': 'bar\n',
      'mixed/EOF': 'inline, beside a context file\n',
      'mixed/local.txt': 'local\n',
    };
    for (const [name, content] of Object.entries(expected)) expect(await layer.readFile(`/dest/${name}`, 'utf8'), name).toBe(content);
    const mode = async (path: string) => (await layer.lstat(path)).mode & 0o7777;
    expect(await mode('/dest/single')).toBe(0o644);
    expect(await mode('/permfiles/all')).toBe(0o777);
    expect(await mode('/permfiles/rw')).toBe(0o644);
    expect(await layer.lstat('/permfiles/owned')).toMatchObject({ uid: 65534, gid: 65534 });
    const history = images.inspect('example.com/heredoc:copy').config.history!.map((h) => h.created_by);
    expect(history).toContain('COPY <<EOF <<EOF2 /dest/double/');
  }, 300_000);

  it('runs RUN heredocs as BuildKit does: the whole command, a #! script, input to a command line', async () => {
    const layer = await built(RUNS, 'example.com/heredoc:run');
    const expected: Record<string, string> = {
      basic: 'i am\nroot\n',
      shebang: 'hello\nworld\n',
      out1: 'hello world\n',
      out2: 'HELLO WORLD\n',
      'foo-run': '\n\tfoo\n',
      'bar-run': '\nbar\n',
      'foo3-run': '\n\tfoo\n',
      'bar3-run': '\nbar\n',
      r1: 'Hello world!\n',
      r2: 'Hello new world!\n',
    };
    for (const [name, content] of Object.entries(expected)) expect(await layer.readFile(`/dest/${name}`, 'utf8'), name).toBe(content);
    // The #! script ran from /dev, which leaves nothing in a layer.
    await expect(layer.lstat('/dev/pipes')).rejects.toMatchObject({ code: 'ENOENT' });
  }, 300_000);

  it('keys a COPY heredoc by its content after expansion', async () => {
    const dockerfile = (name: string) => `FROM ${BASE}\nARG name=${name}\nCOPY <<EOF /greeting\nHello \${name}!\nEOF\n`;
    const dir = writeContext(join(work, 'keyed'), { Dockerfile: dockerfile('one') });
    const first = await buildWith(images, { context: dir });
    expect(first.ran).toEqual(['COPY <<EOF /greeting']);
    expect((await buildWith(images, { context: dir })).ran).toEqual([]);
    writeContext(dir, { Dockerfile: dockerfile('two') });
    expect((await buildWith(images, { context: dir })).ran).toEqual(['COPY <<EOF /greeting']);
  }, 300_000);

  it("runs an ONBUILD RUN heredoc in the image built on the trigger's", async () => {
    const dir = writeContext(join(work, 'onbuild'), { Dockerfile: `FROM ${BASE}\nONBUILD RUN <<EOF\necho "hello world" >> /dest\nEOF\n` });
    await buildWith(images, { context: dir, tags: ['example.com/heredoc:onbuild'] });
    expect(images.inspect('example.com/heredoc:onbuild').config.config?.OnBuild).toEqual(['RUN <<EOF\necho "hello world" >> /dest\nEOF']);
    const layer = await built('FROM example.com/heredoc:onbuild\n', 'example.com/heredoc:child');
    expect(await layer.readFile('/dest', 'utf8')).toBe('hello world\n');
  }, 300_000);

  it('refuses a heredoc as the destination, naming the line', async () => {
    const dir = writeContext(join(work, 'dest'), { Dockerfile: `FROM ${BASE}\nCOPY local.txt <<EOF\nx\nEOF\n`, 'local.txt': 'x' });
    await expect(buildWith(images, { context: dir })).rejects.toThrow(/Dockerfile line 2: COPY cannot take a heredoc as its destination/);
  }, 120_000);

  it('says so when a heredoc on a file descriptor (3<<IN), which its parser does not read, turned its body into instructions', async () => {
    const dir = writeContext(join(work, 'fd'), { Dockerfile: `FROM ${BASE}\nRUN 3<<IN cat /dev/fd/3\nhello\nIN\n` });
    await expect(buildWith(images, { context: dir })).rejects.toThrow(/Dockerfile line 3: unknown instruction "HELLO" \(line 2 opens a heredoc on file descriptor 3, 3<<IN/);
    // Shell arithmetic is no heredoc: a line that fails for another reason gets no such hint.
    const shift = writeContext(join(work, 'shift'), { Dockerfile: `FROM ${BASE}\nRUN echo $((1<<2))\nbogus\n` });
    await expect(buildWith(images, { context: shift })).rejects.toThrow(/^Dockerfile line 3: unknown instruction "BOGUS"$/);
  }, 120_000);
});
