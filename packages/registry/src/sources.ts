/**
 * Where a registry is known to hold a blob: containerd's `containerd.io/distribution.source.<registry>`
 * label, a comma-separated list of repositories, set by pulls and pushes and read by pushes to mount.
 */
import type { ContentStore } from '@strata/images';

/** The label containerd gives a blob for each repository of a registry it is known to be in. */
export function sourceLabel(domain: string): string {
  return `containerd.io/distribution.source.${domain}`;
}

/** The repositories of `domain` the store knows to hold `digest`. */
export function sourcesOf(content: ContentStore, digest: string, domain: string): string[] {
  return (content.info(digest).labels[sourceLabel(domain)] ?? '').split(',').filter((r) => r !== '');
}

/** Records that `domain`'s `repository` holds each of `digests` the store has (in the caller's transaction). */
export function recordSource(content: ContentStore, digests: Iterable<string>, domain: string, repository: string): void {
  const label = sourceLabel(domain);
  for (const digest of digests) {
    if (!content.has(digest)) continue;
    const known = sourcesOf(content, digest, domain);
    if (!known.includes(repository)) content.update(digest, { [label]: [...known, repository].join(',') }, [`labels.${label}`]);
  }
}
