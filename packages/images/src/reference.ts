/**
 * Image references, as Docker and containerd read them: `[registry/]path[:tag][@digest]`, normalized to the
 * full name containerd stores (`docker.io/library/alpine:latest`).
 */
import { InvalidArgumentError, quote } from '@strata/core';

/** A parsed, normalized reference. */
export interface Reference {
  /** The registry host (`docker.io` unless given). */
  readonly domain: string;
  /** The repository path (`library/…` for official images on docker.io). */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;

/** Parses and normalizes a reference; a missing tag is `latest` unless a digest is given. Throws INVALID_ARGUMENT. */
export function parseReference(text: string): Reference {
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`image reference ${quote(text)} is invalid: ${why}`);
  };
  if (text.length === 0 || text.length > 512) bad('empty or too long');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad('the digest is not sha256:<64 hex>');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`tag ${quote(tag)}`);
  }
  const parts = rest.split('/');
  let domain = 'docker.io';
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || /[A-Z]/.test(first))) {
    domain = parts.shift()!;
    if (!DOMAIN.test(domain)) bad(`registry ${quote(domain)}`);
  }
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) bad('the repository must be lower-case components (a-z, 0-9, separated by ., _, __ or -)');
  if (domain === 'docker.io' && parts.length === 1) parts.unshift('library');
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { domain, path: parts.join('/'), ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The full name of a reference: `domain/path[:tag][@digest]`. */
export function formatReference(ref: Reference): string {
  return `${ref.domain}/${ref.path}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** `text` normalized (`alpine` → `docker.io/library/alpine:latest`). */
export function normalizeReference(text: string): string {
  return formatReference(parseReference(text));
}

/**
 * The forms of a stored name that Docker matches a `reference=` filter against: familiar with its tag or
 * digest (`alpine:latest`), familiar alone (`alpine`), full with them, full alone. Familiar drops
 * `docker.io/`, and `library/` before a one-component path.
 */
export function nameForms(name: string): string[] {
  let ref: Reference;
  try {
    ref = parseReference(name);
  } catch {
    return [name];
  }
  const full = `${ref.domain}/${ref.path}`;
  const familiar = ref.domain !== 'docker.io' ? full : ref.path.startsWith('library/') && !ref.path.slice('library/'.length).includes('/') ? ref.path.slice('library/'.length) : ref.path;
  const suffix = `${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
  return [`${familiar}${suffix}`, familiar, `${full}${suffix}`, full];
}
