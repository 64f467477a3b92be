/**
 * What the root-using commands share: where the root is, opening it (its libraries loaded only when a
 * command needs them: the database binding costs the layer commands nothing), and output helpers.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Images, PlatformChoice } from '@strata/images';
import type { DriverName, Snapshotter } from '@strata/snapshotter';
import { UsageError } from './format.js';

/** The root: --root, else $STRATA_ROOT, else /var/lib/strata as root, else $XDG_DATA_HOME/strata. */
export function defaultRoot(): string {
  if (process.env.STRATA_ROOT) return process.env.STRATA_ROOT;
  if (process.geteuid?.() === 0) return '/var/lib/strata';
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'strata');
}

interface GlobalOptions {
  root?: string;
  driver?: DriverName;
}

/** Runs `fn` on the snapshotter the global options name, closing it after. */
export async function withSnapshotter<T>(command: Command, fn: (sn: Snapshotter) => Promise<T>): Promise<T> {
  const { root, options } = rootOf(command);
  const { openSnapshotter } = await import('@strata/snapshotter');
  return using(await openSnapshotter(root, options), fn);
}

export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `k=v` options as labels. */
export function labels(pairs: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`a label is key=value: ${pair}`);
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

/** Runs `fn` on the images of the root the global options name, closing it after. */
export async function withImages<T>(command: Command, fn: (images: Images) => Promise<T>): Promise<T> {
  const { root, options } = rootOf(command);
  const { openImages } = await import('@strata/images');
  return using(await openImages(root, options), fn);
}

async function using<R extends { close(): Promise<void> }, T>(resource: R, fn: (resource: R) => Promise<T>): Promise<T> {
  try {
    return await fn(resource);
  } finally {
    await resource.close();
  }
}

function rootOf(command: Command): { root: string; options: { driver?: DriverName } } {
  const global = command.optsWithGlobals<GlobalOptions>();
  return { root: global.root ?? defaultRoot(), options: global.driver === undefined ? {} : { driver: global.driver } };
}

/** Columns padded to their widest cell; the last column runs free. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}


export interface PlatformOptions {
  platform?: string;
  allPlatforms?: boolean;
}

/** --platform / --all-platforms as a choice (undefined: the library's default, the host). */
export async function platformChoice(o: PlatformOptions): Promise<PlatformChoice | undefined> {
  if (o.platform !== undefined && o.allPlatforms) throw new UsageError('--platform and --all-platforms exclude each other');
  if (o.allPlatforms) return { all: true };
  if (o.platform === undefined) return undefined;
  const { parsePlatform } = await import('@strata/images');
  return { platform: parsePlatform(o.platform) };
}
