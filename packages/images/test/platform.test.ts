/**
 * Platforms as BuildKit and containerd read `--platform`: the aliases and defaults they normalise, and which
 * index entries a platform takes.
 */
import { describe, expect, it } from 'vitest';
import { formatPlatform, hostPlatform, parsePlatform, platformMatches } from '../src/platform.js';

describe('parsePlatform', () => {
  it('normalises as containerd does for BuildKit: arm is v7, arm64/v8 arm64, the aliases their names', () => {
    const cases: [string, string][] = [
      ['linux/amd64', 'linux/amd64'],
      ['linux/arm', 'linux/arm/v7'],
      ['linux/arm/7', 'linux/arm/v7'],
      ['linux/arm/v6', 'linux/arm/v6'],
      ['linux/arm/5', 'linux/arm/v5'],
      ['linux/armhf', 'linux/arm/v7'],
      ['linux/armel', 'linux/arm/v6'],
      ['linux/arm64/v8', 'linux/arm64'],
      ['linux/aarch64', 'linux/arm64'],
      ['linux/arm64/9', 'linux/arm64/v9'],
      ['linux/x86_64', 'linux/amd64'],
      ['linux/x86-64', 'linux/amd64'],
      ['linux/amd64/v1', 'linux/amd64'],
      ['linux/amd64/v3', 'linux/amd64/v3'],
      ['linux/i386', 'linux/386'],
      ['Linux/AMD64', 'linux/amd64'],
      ['macos/arm64', 'darwin/arm64'],
      ['windows/amd64', 'windows/amd64'],
      ['linux/s390x', 'linux/s390x'],
      ['arm64', 'linux/arm64'],
      ['armhf', 'linux/arm/v7'],
    ];
    for (const [text, normal] of cases) expect(formatPlatform(parsePlatform(text)), text).toBe(normal);
  });

  it('takes a lone operating system for the host architecture on it', () => {
    expect(parsePlatform('linux')).toEqual(hostPlatform());
    expect(parsePlatform('windows')).toEqual({ ...hostPlatform(), os: 'windows' });
  });

  it('refuses what is neither, and malformed specifiers, as INVALID_ARGUMENT', () => {
    for (const text of ['', 'nonsense', 'linux/', '/amd64', 'linux/amd64/v8/x', 'linux/am d64', 'linux/*']) {
      expect(() => parsePlatform(text), text).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });

  it('matches an index entry written either way', () => {
    expect(platformMatches(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(false);
  });
});
