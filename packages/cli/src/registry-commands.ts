/**
 * `strata pull`, `strata push`, `strata login`, `strata logout` and `strata image ls-remote`: images to and
 * from registries, with Docker's shapes. Secrets come from stdin only and are never printed.
 */
import { Option, type Command } from 'commander';
import type { PushResult, RegistryOptions } from '@strata/registry';
import { print, sanitize, UsageError } from './format.js';
import { readStdin } from './stdin.js';
import { humanBytes, transferProgress } from './progress.js';
import { platformChoice, withImages } from './root.js';

interface ConnectionOptions {
  plainHttp?: boolean;
  caFile?: string;
}

const plainHttpOption = () => new Option('--plain-http', 'speak plain http to the registry (always so for localhost and 127.0.0.1)');
const caFileOption = () => new Option('--ca-file <pem>', 'trust this CA for the registry, besides the system’s');
const quietOption = () => new Option('-q, --quiet', 'no progress');
const compressionOption = () =>
  new Option('--compression <kind>', 'what plain (uncompressed) layers become on the way, as docker push and skopeo send them: gzip, zstd, or none (as stored)').choices(['gzip', 'zstd', 'none']).default('gzip');

/** What a push did, one line, as `push` and `build --push` print it. */
export function pushedLine(result: PushResult): string {
  return `Pushed ${sanitize(result.name)}@${result.digest}: ${result.uploaded} blob(s) uploaded (${humanBytes(result.bytes)}), ${result.mounted} mounted, ${result.existed} already there\n`;
}

function connection(o: ConnectionOptions): RegistryOptions {
  return { ...(o.plainHttp ? { plainHttp: true } : {}), ...(o.caFile !== undefined ? { caFile: o.caFile } : {}) };
}

/** A registry host as the user wrote it, without a scheme or path (`https://r.example/` → `r.example`). */
function registryHost(text: string): string {
  const host = text.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  if (host === '' || /[\s@]/.test(host)) throw new UsageError(`${text} is not a registry host`);
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}


export function registerRegistryCommands(cli: Command): void {
  cli
    .command('pull')
    .description('pull an image from a registry, named by the reference it was pulled by')
    .argument('<ref>')
    .option('--platform <os/arch[/variant]>', 'the platform to take from a multi-platform image (default: this host)')
    .option('--all-platforms', 'take every platform')
    .option('--unpack', 'unpack the image once pulled')
    .addOption(plainHttpOption())
    .addOption(caFileOption())
    .addOption(quietOption())
    .action((ref: string, o: ConnectionOptions & { platform?: string; allPlatforms?: boolean; unpack?: boolean; quiet?: boolean }, command: Command) =>
      withImages(command, async (images) => {
        const { pullImage } = await import('@strata/registry');
        const platform = await platformChoice(o);
        const shown = transferProgress({ quiet: o.quiet ?? false });
        let result;
        try {
          result = await pullImage(images, ref, { ...connection(o), ...(platform ? { platform } : {}), ...(o.unpack ? { unpack: true } : {}), ...(o.quiet ? {} : { onProgress: shown.onProgress }) });
        } finally {
          shown.stop();
        }
        const refetched = result.refetched > 0 ? `, ${humanBytes(result.refetched)} fetched again` : '';
        print(`Pulled ${sanitize(result.name)}@${result.target.digest}: ${result.fetched} blob(s) fetched (${humanBytes(result.bytes)}), ${result.present} present${refetched}\n`);
        if (result.chainID !== undefined) print(`Unpacked ${sanitize(result.name)}: ${result.chainID}\n`);
      }),
    );

  cli
    .command('push')
    .description('push an image to a registry: to its own name, or to <ref>')
    .argument('<image>', 'a name or ID of the root')
    .argument('[ref]', 'where to push it (default: the image’s name)')
    .option('--platform <os/arch[/variant]>', 'push only this platform of a multi-platform image')
    .addOption(compressionOption())
    .addOption(plainHttpOption())
    .addOption(caFileOption())
    .addOption(quietOption())
    .action((image: string, ref: string | undefined, o: ConnectionOptions & { platform?: string; quiet?: boolean; compression: 'gzip' | 'zstd' | 'none' }, command: Command) =>
      withImages(command, async (images) => {
        const { pushImage } = await import('@strata/registry');
        const platform = await platformChoice(o);
        const shown = transferProgress({ quiet: o.quiet ?? false });
        let result;
        try {
          result = await pushImage(images, image, ref, { ...connection(o), ...(platform ? { platform } : {}), ...(o.compression !== 'none' ? { compression: o.compression } : {}), ...(o.quiet ? {} : { onProgress: shown.onProgress }) });
        } finally {
          shown.stop();
        }
        print(pushedLine(result));
      }),
    );

  cli
    .command('login')
    .description('check credentials against a registry and keep them in strata’s login file (mode 0600)')
    .argument('<registry>')
    .requiredOption('-u, --username <name>')
    .option('--password-stdin', 'read the password from stdin')
    .addOption(plainHttpOption())
    .addOption(caFileOption())
    .action(async (text: string, o: ConnectionOptions & { username: string; passwordStdin?: boolean }) => {
      if (!o.passwordStdin) throw new UsageError('give the password on stdin, with --password-stdin (never on the command line)');
      const host = registryHost(text);
      const password = (await readStdin('the password (--password-stdin)', 64 * 1024)).replace(/\r?\n$/, '');
      if (password === '') throw new UsageError('no password on stdin');
      const { Registry, saveLogin } = await import('@strata/registry');
      const registry = new Registry(host, { ...connection(o), credentials: async () => ({ username: o.username, password }) });
      try {
        await registry.ping(); // a registry that needs them checks the credentials here
      } finally {
        await registry.close();
      }
      saveLogin(host, { username: o.username, password });
      print('Login Succeeded\n');
    });

  cli
    .command('logout')
    .description('forget a registry’s credentials from strata’s login file')
    .argument('<registry>')
    .action(async (text: string) => {
      const host = registryHost(text);
      const { removeLogin } = await import('@strata/registry');
      if (!removeLogin(host)) throw new UsageError(`not logged in to ${host}`);
      print(`Removing login credentials for ${host}\n`);
    });

  const image = cli.commands.find((c) => c.name() === 'image');
  if (image === undefined) throw new Error('the image command is registered first');
  image
    .command('ls-remote')
    .description('list the tags of a repository in a registry')
    .argument('<repository>', 'registry/repository (a tag or digest is ignored)')
    .option('--json', 'as one JSON array')
    .addOption(plainHttpOption())
    .addOption(caFileOption())
    .action(async (text: string, o: ConnectionOptions & { json?: boolean }) => {
      const { parseReference } = await import('@strata/images');
      const { Registry } = await import('@strata/registry');
      const ref = parseReference(text);
      const registry = new Registry(ref.domain, connection(o));
      try {
        const tags = await registry.tags(ref.path);
        print(o.json ? `${JSON.stringify(tags)}\n` : tags.map((t) => `${sanitize(t)}\n`).join(''));
      } finally {
        await registry.close();
      }
    });
}
