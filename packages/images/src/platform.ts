/**
 * Platforms: the host's, parsing `os/arch[/variant]`, and which manifests of an index an operation takes.
 */
import { InvalidArgumentError, quote } from '@strata/core';
import type { Descriptor, Platform } from './documents.js';

const ARCHITECTURES: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };

/** The platform this process runs on, as images name it. */
export function hostPlatform(): Platform {
  const architecture = ARCHITECTURES[process.arch] ?? process.arch;
  if (architecture === 'arm') return { os: 'linux', architecture, variant: 'v7' };
  return { os: 'linux', architecture };
}

/** Parses `os/arch[/variant]`. Throws INVALID_ARGUMENT. */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new InvalidArgumentError(`platform ${quote(text)} is not os/architecture[/variant]`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** arm64's default variant is v8: the same platform written either way. */
function variantOf(p: Platform): string | undefined {
  return p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
}

/** Whether an index entry for `candidate` serves `wanted`. */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  if (candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return false;
  const want = variantOf(wanted);
  return want === undefined || variantOf(candidate) === undefined || variantOf(candidate) === want;
}

/** Attestations and signatures ride in indexes as manifests of platform unknown/unknown: they are not images. */
export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown');
}

/** Which manifests of an index to take: all, or those for one platform. */
export type PlatformChoice = { readonly all: true } | { readonly platform: Platform };

/** The entries of an index that `choice` takes (attestations never). */
export function chooseManifests(manifests: readonly Descriptor[], choice: PlatformChoice): Descriptor[] {
  const images = manifests.filter((d) => !isAttestation(d));
  if ('all' in choice) return images;
  return images.filter((d) => d.platform === undefined || platformMatches(choice.platform, d.platform));
}
