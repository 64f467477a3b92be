#!/usr/bin/env node
/**
 * The `strata` command: commander parses (per-command --help, --version, unknown flags refused), the
 * libraries do the work, and every failure becomes one line on stderr: `strata: <CODE>: <message>`, exit
 * 1; usage errors exit 2.
 */
import { createRequire } from 'node:module';
import { isatty } from 'node:tty';
import { Command, CommanderError, InvalidArgumentError as OptionError, Option } from 'commander';
import type { Compression } from '@strata/core';
import { runApply, runDiffTrees, runDiffUpper, runDigest, runFlatten, runLs, runLsMerged, runPack } from './commands.js';
import { formatError, outputPending, print, printError, sanitize, UsageError } from './format.js';
import { registerContainerCommands, registerImageCommands } from './image-commands.js';
import { registerBuildCommands } from './build-commands.js';
import { registerRegistryCommands } from './registry-commands.js';
import { registerSnapshotCommands } from './snapshot-commands.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const compressionOption = () => new Option('--compression <kind>', 'none, gzip or zstd').choices(['none', 'gzip', 'zstd']).default('none');
const epochOption = () =>
  new Option('--source-date-epoch <seconds>', 'clamp times to this (default: $SOURCE_DATE_EPOCH)').argParser((text) => {
    const value = Number(text);
    if (!Number.isSafeInteger(value)) throw new OptionError('must be whole seconds');
    return value;
  });

/** Where a layer goes: a file, or stdout for `-` (refused on a terminal, as tar refuses). */
function outputPath(output: string): string {
  if (output !== '-') return output;
  if (isatty(1)) throw new UsageError('refusing to write a layer to a terminal: redirect stdout, or name a file with -o');
  return '/dev/stdout';
}

function epoch(value: number | undefined): number | undefined {
  if (value !== undefined) return value;
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env === undefined || env === '') return undefined;
  const parsed = Number(env);
  if (!Number.isSafeInteger(parsed)) throw new UsageError('SOURCE_DATE_EPOCH must be whole seconds');
  return parsed;
}

/**
 * The parser for a command line whose first word is `firstWord`, and whether that word names one of the layer
 * commands defined here, which open no root.
 */
function program(firstWord: string): { cli: Command; layerCommand: boolean } {
  const cli = new Command('strata')
    .description('The layer engine under container images: layers, snapshots, images and containers.')
    .version(version, '-V, --version')
    .option('--root <dir>', 'the root of snapshots, images and containers (default: $STRATA_ROOT, /var/lib/strata as root, $XDG_DATA_HOME/strata otherwise)')
    .addOption(new Option('--driver <name>', 'the snapshot driver for a new root, or to switch between overlay and userspace').choices(['overlay', 'userspace', 'native']))
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: print, writeErr: (text) => printError(text.startsWith('error:') ? `strata: ${text}` : text) });

  cli
    .command('apply')
    .description('apply a layer (- for stdin) onto a directory; prints its diffID')
    .argument('<layer>')
    .argument('<dir>')
    .addOption(new Option('--format <layout>', 'plain, or overlay (deletions kept as overlayfs reads them)').choices(['plain', 'overlay']).default('plain'))
    .option('--userxattr', 'overlay markers in the user.* namespace (userxattr mounts)')
    .addOption(new Option('--devices <what>', 'device nodes: create (root only), skip with a warning, or refuse (default: create as root, else refuse)').choices(['create', 'skip', 'refuse']))
    .addOption(new Option('--owners <how>', 'owners: apply (root only), keep the caller\'s, or keep the caller\'s and record the others in user.rootlesscontainers xattrs as umoci --rootless does (default: apply as root, else keep)').choices(['apply', 'keep', 'xattr']))
    .action((layer: string, dir: string, o: { format: 'plain' | 'overlay'; userxattr?: boolean; devices?: 'create' | 'skip' | 'refuse'; owners?: 'apply' | 'keep' | 'xattr' }) =>
      runApply(layer, dir, { format: o.format, userxattr: o.userxattr ?? false, ...(o.devices ? { devices: o.devices } : {}), ...(o.owners ? { owners: o.owners === 'keep' ? 'record' : o.owners } : {}) }),
    );

  cli
    .command('digest')
    .description('check a layer (- for stdin) and print its diffID, and its digest and size when compressed')
    .argument('<layer>')
    .action((layer: string) => runDigest(layer));

  cli
    .command('ls')
    .description('the merged listing of layers (bottom first), or of directories and tarballs as lowers with --lower')
    .argument('[paths...]')
    .option('--lower <dir|layer.tar>', 'a lower layer, bottom first (repeatable)', collect)
    .option('--upper <dir>', 'an overlay upper directory on top (with --lower)')
    .option('--json', 'one JSON object per entry')
    .option('--userxattr', 'overlay markers in the user.* namespace')
    .action((paths: string[], o: { lower?: string[]; upper?: string; json?: boolean; userxattr?: boolean }) => {
      if (o.lower !== undefined) {
        if (paths.length > 1) throw new UsageError('ls --lower takes at most one path');
        return runLsMerged(o.lower, o.upper, paths[0] ?? '/', o.json ?? false, o.userxattr ?? false);
      }
      if (o.upper !== undefined) throw new UsageError('--upper needs --lower');
      if (paths.length === 0) throw new UsageError('ls needs at least one layer');
      return runLs(paths, o.json ?? false);
    });

  cli
    .command('pack')
    .description('a directory as a deterministic layer; prints diffID, digest and size')
    .argument('<dir>')
    .requiredOption('-o, --output <layer>', 'where to write it (- for stdout)')
    .addOption(compressionOption())
    .addOption(epochOption())
    .action((dir: string, o: { output: string; compression: Compression; sourceDateEpoch?: number }) =>
      runPack(dir, outputPath(o.output), o.compression, epoch(o.sourceDateEpoch)),
    );

  cli
    .command('diff')
    .description('a change as a layer: an overlay upper over its lowers, or the difference of two trees')
    .option('--upper <dir>', 'an overlay upper directory (strata’s or the kernel’s)')
    .option('--lower <dir|layer.tar>', 'a lower of the upper, bottom first (repeatable)', collect)
    .option('--from <dir|layer.tar>', 'the tree before')
    .option('--to <dir|layer.tar>', 'the tree after')
    .option('--exact', 'compare contents where size and time tie')
    .option('--userxattr', 'overlay markers in the user.* namespace')
    .requiredOption('-o, --output <layer>', 'where to write it (- for stdout)')
    .addOption(compressionOption())
    .addOption(epochOption())
    .action(async (o: { upper?: string; lower?: string[]; from?: string; to?: string; exact?: boolean; userxattr?: boolean; output: string; compression: Compression; sourceDateEpoch?: number }) => {
      const target = { output: outputPath(o.output), compression: o.compression, sourceDateEpoch: epoch(o.sourceDateEpoch) };
      if (o.upper !== undefined) {
        if (o.from !== undefined || o.to !== undefined) throw new UsageError('diff takes --upper or --from/--to, not both');
        return runDiffUpper(o.upper, o.lower ?? [], o.userxattr ?? false, target);
      }
      if (o.from !== undefined && o.to !== undefined) return runDiffTrees(o.from, o.to, o.exact ?? false, target);
      throw new UsageError('diff needs --upper <dir>, or --from and --to');
    });

  cli
    .command('flatten')
    .description('layers (bottom first) folded into one')
    .argument('<layers...>')
    .requiredOption('-o, --output <layer>', 'where to write it (- for stdout)')
    .addOption(compressionOption())
    .addOption(epochOption())
    .action((layers: string[], o: { output: string; compression: Compression; sourceDateEpoch?: number }) =>
      runFlatten(layers, { output: outputPath(o.output), compression: o.compression, sourceDateEpoch: epoch(o.sourceDateEpoch) }),
    );

  // A layer command's line is parsed without the root's commands (snapshot, image, container, registry,
  // build), whose parsers commander would otherwise build first: 2-3 ms of a fresh process, for the shortest
  // commands there are. Any other first word (an option, help, a root command, a typo) gets them all.
  const layerCommand = cli.commands.some((command) => command.name() === firstWord);
  if (!layerCommand) {
    registerSnapshotCommands(cli);
    registerImageCommands(cli);
    registerContainerCommands(cli);
    registerRegistryCommands(cli);
    registerBuildCommands(cli);
  }
  return { cli, layerCommand };
}

let ranCommand: string | undefined;
/** Set once the command line turned out to start with a layer command. */
let ranLayerCommand = false;

/** @strata/core as the command bundle carries it: the launcher hands it to the bundle of the root libraries. */
export * as strataCore from '@strata/core';

/** The command that ran (`image import`), once its action started: the launcher keys its code cache by it. */
export function commandName(): string | undefined {
  return ranCommand;
}

/** Runs the command line and sets the exit code: 2 for usage errors, 1 for failures, one line on stderr. */
async function run(argv: string[]): Promise<void> {
  try {
    const { cli, layerCommand } = program(argv[0] ?? '');
    ranLayerCommand = layerCommand;
    cli.hook('preAction', (_root, action) => {
      const names: string[] = [];
      for (let command: Command | null = action; command?.parent; command = command.parent) names.unshift(command.name());
      ranCommand = names.join(' ');
    });
    await cli.parseAsync(argv, { from: 'user' });
  } catch (error: unknown) {
    if (error instanceof CommanderError) {
      // Help and --version exit 0; everything else the parser refused is a usage error (already printed).
      process.exitCode = error.exitCode === 0 ? 0 : 2;
    } else if (error instanceof UsageError) {
      printError(`strata: ${sanitize(error.message)}\n`);
      process.exitCode = 2;
    } else {
      printError(`${formatError(error)}\n`);
      process.exitCode = 1;
    }
  }
}

// Should the event loop ever drain while the command is still pending, Node would exit with 0, a silent,
// successful-looking exit: this makes it a failure instead (13, as Node uses for an unsettled top-level await).
let settled = false;
process.on('exit', () => {
  if (!settled) {
    printError('strata: internal error: exited before the command finished\n');
    process.exitCode = 13;
  }
});
void run(process.argv.slice(2)).finally(() => {
  settled = true;
  // A layer command is done when it settles: its layer written and renamed into place, its threads joined,
  // its output written through `print` and `printError` at once. Ending the process here spares Node's
  // teardown of the heap the job grew (2-8 ms of a layer command). Not while a stream still holds output
  // (a descriptor left non-blocking), and not for the root's commands, which end as Node ends them, once
  // their libraries have let go of everything (the metadata database, connections, child processes).
  if (ranLayerCommand && !outputPending()) process.exit();
});
