#!/usr/bin/env node
/**
 * The `strata` command: thin argument parsing over @strata/core; typed errors become one line and a
 * non-zero exit.
 */
import { parseArgs } from 'node:util';
import { isatty } from 'node:tty';
import type { Compression } from '@strata/core';
import { formatError, sanitize } from './format.js';
import { runApply, runDiffTrees, runDiffUpper, runDigest, runFlatten, runLs, runLsMerged, runPack } from './commands.js';

const USAGE = `usage:
  strata apply <layer|-> <dir> [--format plain|overlay] [--userxattr]
  strata digest <layer|->
  strata ls <layer>... [--json]
  strata ls --lower <dir|layer.tar>... [--upper <dir>] [path] [--json] [--userxattr]
  strata pack <dir> -o <layer|-> [--compression none|gzip|zstd] [--source-date-epoch N]
  strata diff --upper <dir> [--lower <dir|layer.tar>]... -o <layer|-> [--compression …] [--userxattr]
  strata diff --from <dir|layer.tar> --to <dir|layer.tar> -o <layer|-> [--compression …] [--exact]
  strata flatten <layer>... -o <layer|-> [--compression …] [--source-date-epoch N]`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      format: { type: 'string' },
      userxattr: { type: 'boolean' },
      json: { type: 'boolean' },
      lower: { type: 'string', multiple: true },
      upper: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      exact: { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      compression: { type: 'string' },
      'source-date-epoch': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const output = (): string => {
    if (!values.output) throw new UsageError(`${command} needs -o <layer>`);
    if (values.output !== '-') return values.output;
    // As tar -f -: the layer goes to stdout, but never onto a terminal.
    if (isatty(1)) throw new UsageError('refusing to write a layer to a terminal: redirect stdout, or name a file with -o');
    return '/dev/stdout';
  };
  const compression = (): Compression => {
    const c = values.compression ?? 'none';
    if (c !== 'none' && c !== 'gzip' && c !== 'zstd') throw new UsageError('--compression must be none, gzip or zstd');
    return c;
  };
  const epoch = (): number | undefined => {
    const text = values['source-date-epoch'] ?? process.env.SOURCE_DATE_EPOCH;
    const value = text === undefined || text === '' ? undefined : Number(text);
    if (value !== undefined && !Number.isSafeInteger(value)) throw new UsageError('--source-date-epoch must be whole seconds');
    return value;
  };
  const need = (count: number, variadic = false) => {
    if (positionals.length < count || (!variadic && positionals.length > count)) throw new UsageError(`wrong number of arguments for ${command}`);
  };
  switch (command) {
    case 'apply': {
      need(2);
      const format = values.format ?? 'plain';
      if (format !== 'plain' && format !== 'overlay') throw new UsageError(`--format must be plain or overlay`);
      await runApply(positionals[0]!, positionals[1]!, { format, userxattr: values.userxattr ?? false });
      return;
    }
    case 'digest':
      need(1);
      await runDigest(positionals[0]!);
      return;
    case 'ls':
      if (values.lower !== undefined) {
        if (positionals.length > 1) throw new UsageError('ls --lower takes at most one path');
        await runLsMerged(values.lower, values.upper, positionals[0] ?? '/', values.json ?? false, values.userxattr ?? false);
        return;
      }
      if (values.upper !== undefined) throw new UsageError('--upper needs --lower');
      need(1, true);
      await runLs(positionals, values.json ?? false);
      return;
    case 'pack': {
      need(1);
      await runPack(positionals[0]!, output(), compression(), epoch());
      return;
    }
    case 'diff': {
      need(0);
      const write = { output: output(), compression: compression(), sourceDateEpoch: epoch() };
      if (values.upper !== undefined) {
        if (values.from !== undefined || values.to !== undefined) throw new UsageError('diff takes --upper or --from/--to, not both');
        await runDiffUpper(values.upper, values.lower ?? [], values.userxattr ?? false, write);
      } else if (values.from !== undefined && values.to !== undefined) {
        await runDiffTrees(values.from, values.to, values.exact ?? false, write);
      } else {
        throw new UsageError('diff needs --upper <dir>, or --from and --to');
      }
      return;
    }
    case 'flatten':
      need(1, true);
      await runFlatten(positionals, { output: output(), compression: compression(), sourceDateEpoch: epoch() });
      return;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/** Runs the command line and sets the exit code: 2 for usage errors, 1 for failures, one line on stderr. */
async function run(argv: string[]): Promise<void> {
  try {
    await main(argv);
  } catch (error: unknown) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`strata: ${sanitize((error as Error).message)}\n${USAGE}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`${formatError(error)}\n`);
      process.exitCode = 1;
    }
  }
}

// Should the event loop ever drain while the command is still pending, Node would exit with 0, a silent,
// successful-looking exit: this makes it a failure instead (13, as Node uses for an unsettled top-level await).
let settled = false;
process.on('exit', () => {
  if (!settled) {
    process.stderr.write('strata: internal error: exited before the command finished\n');
    process.exitCode = 13;
  }
});
void run(process.argv.slice(2)).finally(() => {
  settled = true;
});
