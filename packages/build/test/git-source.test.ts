/**
 * Which ADD sources are git repositories, and how their refs read: the cases of BuildKit's git_ref_test.go
 * and its query-string rules (dfgitutil), restated.
 */
import { describe, expect, it } from 'vitest';
import { isGitSource, parseGitRef } from '../src/git-source.js';

describe('git sources', () => {
  it('tells a repository from a download or a path as BuildKit does', () => {
    const cases: [string, boolean][] = [
      ['https://example.com/', false],
      ['https://example.com/foo', false],
      ['https://example.com/foo.git', true],
      ['https://example.com/foo.git#deadbeef', true],
      ['https://example.com/foo.git/', false],
      ['https://example.com/foo.git.bar', false],
      ['git://example.com/foo', true],
      ['ssh://git@example.com/foo', true],
      ['https://foo:bar@github.com/moby/buildkit.git', true],
      ['git@github.com:moby/buildkit', true],
      ['git@bitbucket.org:atlassianlabs/atlassian-docker.git', true],
      ['http://github.com/docker/docker.git:#branch', false],
      ['custom.xyz/moby/buildkit.git', false],
      ['github.com/moby/buildkit', false], // a context path for ADD (BuildKit takes it only as a build context)
      ['./repo.git', false],
    ];
    for (const [source, git] of cases) expect(isGitSource(source), source).toBe(git);
  });

  it('reads fragments and queries', () => {
    expect(parseGitRef('https://github.com/foo/bar.git#baz/qux:quux/quuz')).toMatchObject({ remote: 'https://github.com/foo/bar.git', ref: 'baz/qux', subdir: 'quux/quuz', ssh: false });
    expect(parseGitRef('https://github.com/docker/docker.git#:myfolder')).toMatchObject({ ref: '', subdir: 'myfolder' });
    expect(parseGitRef('https://foo:bar@github.com/moby/buildkit.git')).toMatchObject({ remote: 'https://foo:bar@github.com/moby/buildkit.git' });
    expect(parseGitRef('git@github.com:moby/buildkit.git#v0.10.1:docs')).toMatchObject({ remote: 'git@github.com:moby/buildkit.git', ref: 'v0.10.1', subdir: 'docs', ssh: true });
    expect(parseGitRef('git@github.com:moby/buildkit.git?tag=v1&subdir=x/./y')).toMatchObject({ remote: 'git@github.com:moby/buildkit.git', ref: 'refs/tags/v1', subdir: 'x/y' });
    expect(parseGitRef('ssh://git@example.com:2222/srv/repo.git?branch=main')).toMatchObject({ remote: 'ssh://git@example.com:2222/srv/repo.git', ref: 'refs/heads/main', ssh: true });
    expect(parseGitRef('https://h/r.git?tag=v0.0.2#refs/tags/v0.0.2')).toMatchObject({ ref: 'refs/tags/v0.0.2' });
    expect(parseGitRef('https://h/r.git?keep-git-dir&submodules=false&mtime=commit&commit=abc')).toMatchObject({ keepGitDir: true, submodules: false, mtime: 'commit', checksum: 'abc' });
  });

  it('refuses what BuildKit refuses', () => {
    const cases: [string, RegExp][] = [
      ['https://h/r.git?tag=a&branch=b', /branch conflicts with tag/],
      ['https://h/r.git?tag=v0.0.2#refs/heads/master', /ref conflicts/],
      ['https://h/r.git?ref=x#y', /ref conflicts/],
      ['https://h/r.git?subdir=a#x:b', /subdir conflicts/],
      ['https://h/r.git?unknown=1', /unexpected query "unknown"/],
      ['https://h/r.git?ref=', /query "ref" has no value/],
      ['https://h/r.git?ref=a&ref=b', /query "ref" has multiple values/],
      ['https://h/r.git?keep-git-dir=maybe', /invalid keep-git-dir value/],
      ['https://h/r.git?mtime=now', /invalid mtime value/],
      ['https://h/r.git#main:../up', /leaves the repository/],
      ['https://h/r.git#-upload-pack=x', /invalid ref/],
    ];
    for (const [source, message] of cases) expect(() => parseGitRef(source), source).toThrow(message);
  });
});
