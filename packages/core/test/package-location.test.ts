import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findManifest } from '../src/package.js';

const root = mkdtempSync(join(tmpdir(), 'strata-package-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function manifest(dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, exports: { '.': './index.js', './package.json': './package.json' } }));
}

function file(path: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, '');
  return path;
}

function link(target: string, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  symlinkSync(target, path);
}

/** What Node's own resolver answers from `from`, or undefined where it finds nothing. */
function nodeAnswer(from: string): string | undefined {
  try {
    return createRequire(from).resolve('@strata/core/package.json');
  } catch {
    return undefined;
  }
}

describe('finding the installed @strata/core as Node does', () => {
  it('the package itself, from its dist/ or src/', () => {
    manifest(join(root, 'self'), '@strata/core');
    const from = file(join(root, 'self', 'dist', 'strata-core.js'));
    expect(findManifest(from)).toBe(join(root, 'self', 'package.json'));
    expect(findManifest(from)).toBe(nodeAnswer(from));
  });

  it('a workspace link, resolved to its real path (the CLI bundle in packages/cli/dist)', () => {
    const ws = join(root, 'ws');
    manifest(join(ws, 'packages', 'core'), '@strata/core');
    manifest(join(ws, 'packages', 'cli'), '@strata/cli');
    link('../../../core', join(ws, 'packages', 'cli', 'node_modules', '@strata', 'core'));
    const from = file(join(ws, 'packages', 'cli', 'dist', 'strata-command.cjs'));
    expect(findManifest(from)).toBe(join(ws, 'packages', 'core', 'package.json'));
    expect(findManifest(from)).toBe(nodeAnswer(from));
  });

  it('past the nearest package, up to an ancestor node_modules', () => {
    const hoisted = join(root, 'hoisted');
    manifest(join(hoisted, 'node_modules', '@strata', 'core'), '@strata/core');
    manifest(join(hoisted, 'app'), 'app');
    const from = file(join(hoisted, 'app', 'lib', 'main.js'));
    expect(findManifest(from)).toBe(join(hoisted, 'node_modules', '@strata', 'core', 'package.json'));
    expect(findManifest(from)).toBe(nodeAnswer(from));
  });

  it("pnpm's layout, never looking in a node_modules inside node_modules, as Node does not", () => {
    const store = join(root, 'pnpm', 'node_modules', '.pnpm');
    manifest(join(store, '@strata+core@1', 'node_modules', '@strata', 'core'), '@strata/core');
    manifest(join(store, '@strata+cli@1', 'node_modules', '@strata', 'cli'), '@strata/cli');
    link('../../../@strata+core@1/node_modules/@strata/core', join(store, '@strata+cli@1', 'node_modules', '@strata', 'core'));
    // A decoy where only a lookup that forgets Node's rule would go.
    manifest(join(store, '@strata+cli@1', 'node_modules', 'node_modules', '@strata', 'core'), '@strata/core');
    const from = file(join(store, '@strata+cli@1', 'node_modules', '@strata', 'cli', 'dist', 'strata-command.cjs'));
    expect(findManifest(from)).toBe(join(store, '@strata+core@1', 'node_modules', '@strata', 'core', 'package.json'));
    expect(findManifest(from)).toBe(nodeAnswer(from));
  });

  it('not the package above a node_modules directory the file is in', () => {
    // A file of a package without a manifest, inside an @strata/core checkout's node_modules: Node's
    // self-reference stops at node_modules, and no node_modules up from it holds @strata/core.
    manifest(join(root, 'checkout'), '@strata/core');
    const from = file(join(root, 'checkout', 'node_modules', 'bare', 'lib', 'index.js'));
    expect(findManifest(from)).toBeUndefined();
    expect(nodeAnswer(from)).toBeUndefined();
  });

  it('nothing where there is nothing, for the caller to ask Node', () => {
    manifest(join(root, 'alone'), 'alone');
    const from = file(join(root, 'alone', 'index.js'));
    expect(findManifest(from)).toBeUndefined();
    expect(nodeAnswer(from)).toBeUndefined();
  });
});
