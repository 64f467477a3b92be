/**
 * One layer read the three ways a user meets it (`ls`, `apply`, `digest`), with what each made of it, and
 * the check that the apply wrote nothing outside its target.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyLayer, digestLayer, mergedListing, readLayer, type Entry } from '@strata/core';
import { diffSnapshots, snapshotTree } from './snapshot.js';

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export interface ThreeWays {
  /** The layer's own entries in archive order (readLayer), whiteouts included. */
  entries: Outcome<Entry[]>;
  /** The merged listing `strata ls` prints. */
  ls: Outcome<Entry[]>;
  apply: Outcome<string>;
  digest: Outcome<string>;
  /** What the apply changed outside its target (must be nothing). */
  outside: string[];
  /** Where the layer was applied (removed by `dispose`). */
  target: string;
  dispose(): void;
}

async function outcome<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Reads `bytes` as a layer three ways; the apply goes into a fresh target two levels below a sandbox. */
export async function threeWays(bytes: Uint8Array, options: { layout?: 'plain' | 'overlay' } = {}): Promise<ThreeWays> {
  const sandbox = mkdtempSync(join(tmpdir(), 'strata-3ways-'));
  mkdirSync(join(sandbox, 'outside'));
  writeFileSync(join(sandbox, 'outside', 'secret'), 'keep\n');
  mkdirSync(join(sandbox, 'a', 'b'), { recursive: true });
  const layer = join(sandbox, 'layer.tar');
  writeFileSync(layer, bytes);
  const target = join(sandbox, 'a', 'b', 'target');
  const picture = () => snapshotTree(sandbox, { ignoreDirMtime: true, skip: (p) => p === 'a/b/target' || p === 'layer.tar' });
  const before = picture();
  const entries = await outcome(async () => {
    const out: Entry[] = [];
    for await (const { entry } of readLayer(layer)) out.push(entry);
    return out;
  });
  const ls = await outcome(() => mergedListing([layer]));
  const apply = await outcome(async () => (await applyLayer(layer, target, options)).diffID);
  const digest = await outcome(async () => (await digestLayer(layer)).diffID);
  const outside = diffSnapshots(before, picture());
  if (!apply.ok && existsSync(target)) outside.push('a failed apply left its fresh target behind');
  return { entries, ls, apply, digest, outside, target, dispose: () => rmSync(sandbox, { recursive: true, force: true }) };
}

/** A refusal's code, or the error itself when it carries none (a test failure). */
export function codeOf(outcome: Outcome<unknown>): string | undefined {
  if (outcome.ok) return undefined;
  const code = (outcome.error as { code?: unknown }).code;
  return typeof code === 'string' ? code : `untyped: ${String(outcome.error)}`;
}
