/**
 * ADD's URL sources, as BuildKit's Dockerfile frontend reads them: which sources are URLs it fetches, the
 * name a download takes, and how a URL is shown. The fetching is `StepFiles.fetch`.
 */
import { posix } from 'node:path';

/**
 * Whether an ADD source is a URL strata fetches: http or https, but not a repository's (a path ending in
 * `.git`), which BuildKit clones instead.
 */
export function isUrlSource(source: string): boolean {
  return /^https?:\/\//i.test(source) && !/\.git\/?$/i.test(source.replace(/[?#].*$/s, ''));
}

/** Whether a source names something remote at all (a URL of any scheme, or a git remote). */
export function isRemoteSource(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source) || source.startsWith('git@');
}

/** Text with the password of every URL in it replaced (a step's progress line, its history). */
export function redactUrls(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^@\s/]*@/gi, '$1xxxxx@');
}

/**
 * The name a download takes: the URL path's last segment, decoded, as BuildKit's frontend names it, or
 * `__unnamed__` where the path has none (or one that could not be a file's name).
 */
export function urlFileName(url: URL): string {
  let base = posix.basename(url.pathname);
  try {
    base = decodeURIComponent(base);
  } catch {
    // not percent-encoding: the segment as written
  }
  // eslint-disable-next-line no-control-regex
  if (base === '' || base === '.' || base === '..' || base.includes('/') || /[\x00-\x1f\x7f]/.test(base)) return '__unnamed__';
  return base;
}
