#!/usr/bin/env node
/**
 * The `strata` executable (bundled as dist/strata.cjs): runs the bundled command (dist/strata-command.cjs)
 * through V8's code cache. Compiling the 1 MB bundle, and then each function it calls, is 30–90 ms of every
 * command; with the cache V8 deserialises the bytecode a previous run compiled instead (Node 22 has
 * `module.enableCompileCache` for this; Node 20 does not).
 *
 * The cache lives beside the bundle, so it is exactly as trusted as the bundle: a user who cannot write there
 * reads the cache the installer's runs left, or runs without one. Bytecode is code, so a cache owned by
 * anyone but the caller or the bundle's owner, or writable by others, is ignored. It is rewritten when a
 * command the cache has not seen ran (its functions are then compiled too), at most once per command, by
 * rename, so a reader sees the old cache or the new one.
 */
import { closeSync, fstatSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/** The command bundle's content hash, set by scripts/bundle.mjs: V8 itself checks only the source's length. */
declare const STRATA_COMMAND_BUNDLE_ID: string;

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, 'strata-command.cjs');
/** `STRATA_CODE_CACHE` moves it (a user of a read-only install points it into their own directory). */
const cacheFile = process.env.STRATA_CODE_CACHE || join(here, 'strata-command.v8cache');
/** The cache's first line: what it was made from, then the commands whose functions it holds. */
const stamp = `strata-v8cache ${STRATA_COMMAND_BUNDLE_ID} ${process.version} ${process.arch}`;

interface Cache {
  data: Buffer | undefined;
  commands: string[];
}

const NO_CACHE: Cache = { data: undefined, commands: [] };

/** The cache, when it was made from this bundle by this Node, and is owned by us or by the bundle's owner. */
function readCache(): Cache {
  let fd: number;
  try {
    fd = openSync(cacheFile, 'r');
  } catch {
    return NO_CACHE;
  }
  try {
    const { uid, mode } = fstatSync(fd);
    if (![process.geteuid?.(), ownerOf(bundle)].includes(uid) || (mode & 0o022) !== 0) return NO_CACHE;
    const bytes = readFileSync(fd);
    const newline = bytes.indexOf(10);
    if (newline < 0) return NO_CACHE;
    const [header, commandList = ''] = bytes.toString('utf8', 0, newline).split('\t');
    if (header !== stamp) return NO_CACHE;
    return { data: bytes.subarray(newline + 1), commands: commandList.split(',').filter(Boolean) };
  } finally {
    closeSync(fd);
  }
}

function ownerOf(path: string): number | undefined {
  return statSync(path, { throwIfNoEntry: false })?.uid;
}

/** Writes the cache by rename; a read-only install keeps none. */
function writeCache(data: Buffer, commands: string[]): void {
  const temporary = `${cacheFile}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, Buffer.concat([Buffer.from(`${stamp}\t${commands.join(',')}\n`), data]), { mode: 0o644, flag: 'wx' });
    renameSync(temporary, cacheFile);
  } catch {
    try {
      unlinkSync(temporary);
    } catch {
      // Nothing was written.
    }
  }
}

const cache = readCache();
// The bundle is CommonJS's module function, wrapper included (scripts/bundle.mjs), in ASCII: read as
// Latin-1 it becomes V8's source as it is, with no decoding and no copy to wrap it.
const source = readFileSync(bundle, 'latin1');
const script = new Script(source, {
  filename: bundle,
  ...(cache.data ? { cachedData: cache.data } : {}),
});
const commandModule = { exports: {} as { commandName?: () => string | undefined } };
(script.runInThisContext() as (...args: unknown[]) => void)(commandModule.exports, createRequire(bundle), commandModule, bundle, here);

process.on('exit', () => {
  const command = commandModule.exports.commandName?.();
  if (command === undefined) return; // help, version and usage errors compile little worth keeping
  const fresh = cache.data === undefined || script.cachedDataRejected === true;
  if (!fresh && cache.commands.includes(command)) return;
  writeCache(script.createCachedData(), fresh ? [command] : [...cache.commands, command]);
});
