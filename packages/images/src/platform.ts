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

/** Operating systems and architectures Go knows, as containerd tells a lone word's kind by them. */
const KNOWN_OS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'windows', 'zos']);
const KNOWN_ARCHITECTURES = new Set(['386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'ppc64', 'ppc64le', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm']);

/**
 * An architecture and variant in the one spelling images use, as containerd normalises them: `x86_64` is
 * amd64, `aarch64` arm64 (v8 its default, so unwritten), `i386` 386, `armhf` arm/v7, `armel` arm/v6, and a
 * bare `arm` v7.
 */
function normalizeArchitecture(architecture: string, variant: string | undefined): { architecture: string; variant?: string } {
  const arch = architecture.toLowerCase();
  const v = variant?.toLowerCase() ?? '';
  const as = (a: string, w: string) => (w === '' ? { architecture: a } : { architecture: a, variant: w });
  switch (arch) {
    case 'i386':
      return as('386', '');
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return as('amd64', v === 'v1' ? '' : v);
    case 'aarch64':
    case 'arm64':
      return as('arm64', v === '8' || v === 'v8' || v === 'v8.0' ? '' : v === '9' || v === '9.0' || v === 'v9.0' ? 'v9' : v);
    case 'armhf':
      return as('arm', 'v7');
    case 'armel':
      return as('arm', 'v6');
    case 'arm':
      return as('arm', v === '' || v === '7' ? 'v7' : v === '5' || v === '6' || v === '8' ? `v${v}` : v);
    default:
      return as(arch, v);
  }
}

/**
 * Parses a platform as BuildKit and containerd read `--platform`: `os/arch[/variant]`, or a lone OS (the
 * host's architecture) or architecture (linux), in any case, normalised (`linux/arm` is linux/arm/v7,
 * `linux/arm64/v8` linux/arm64, `linux/x86_64` linux/amd64). Throws INVALID_ARGUMENT.
 */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9._-]+$/.test(p))) {
    throw new InvalidArgumentError(`platform ${quote(text)} is not os/architecture[/variant]`);
  }
  const os = parts[0]!.toLowerCase() === 'macos' ? 'darwin' : parts[0]!.toLowerCase();
  if (parts.length === 1) {
    if (KNOWN_OS.has(os)) return { ...hostPlatform(), os };
    const alone = normalizeArchitecture(parts[0]!, undefined);
    if (KNOWN_ARCHITECTURES.has(alone.architecture)) return { os: 'linux', ...alone };
    throw new InvalidArgumentError(`platform ${quote(text)} is neither an operating system nor an architecture (os/architecture[/variant])`);
  }
  return { os, ...normalizeArchitecture(parts[1]!, parts[2]) };
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
