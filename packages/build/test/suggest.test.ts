/**
 * "Did you mean …?" on mistyped names, as BuildKit's suggest package adds it: instructions (its
 * testDockerfileInvalidInstruction), target stages, mount types and mount options.
 */
import { describe, expect, it } from 'vitest';
import { parseDockerfile, targetStage } from '../src/index.js';
import { suggestIgnoringCase, suggestName } from '../src/suggest.js';

describe('suggestions', () => {
  it('takes the closest option within two edits, none when the name is an option or nothing is near', () => {
    expect(suggestName('buidl', ['build', 'test'])).toBe('build');
    expect(suggestName('build', ['build', 'buidl'])).toBeUndefined();
    expect(suggestName('deploy', ['build', 'test'])).toBeUndefined();
    expect(suggestName('ab', ['abc', 'abcd'])).toBe('abc');
  });

  it('ignoring case, answers in the case the name was written in', () => {
    const keywords = ['ENTRYPOINT', 'COPY'];
    expect(suggestIgnoringCase('FNTRYPOINT', keywords)).toBe('ENTRYPOINT');
    expect(suggestIgnoringCase('entrypint', keywords)).toBe('entrypoint');
    expect(suggestIgnoringCase('Entrypint', keywords)).toBe('ENTRYPOINT');
    expect(suggestIgnoringCase('copy', keywords)).toBeUndefined();
  });

  it('adds one to the errors of a mistyped instruction, target, mount type and mount option', () => {
    expect(() => parseDockerfile('FROM scratch\nFNTRYPOINT ["/bin/sh", "-c", "echo invalidinstruction"]\n')).toThrow(/line 2: unknown instruction "FNTRYPOINT" \(did you mean ENTRYPOINT\?\)/);
    expect(() => parseDockerfile('FROM scratch\nONBUILD COPPY a b\n')).toThrow(/\(did you mean COPY\?\)/);
    expect(() => targetStage(parseDockerfile('FROM scratch AS build\nFROM scratch\n'), 'buidl')).toThrow(/target stage "buidl" is not in the Dockerfile \(did you mean build\?\)/);
    expect(() => parseDockerfile('FROM scratch\nRUN --mount=type=cahce,target=/x true\n')).toThrow(/is not a mount type .*\(did you mean cache\?\)/);
    expect(() => parseDockerfile('FROM scratch\nRUN --mount=type=cache,targt=/x true\n')).toThrow(/takes no targt \(did you mean target\?\)/);
    expect(() => parseDockerfile('FROM scratch\nBOGUSWORD x\n')).toThrow(/unknown instruction "BOGUSWORD"$/);
  });
});
