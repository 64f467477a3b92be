/**
 * `strata image …`, `strata container …`, `strata unpack`, `strata commit`, `strata gc` and `strata fsck`:
 * the images of one root, with Docker's and ctr's shapes. Listings take `--json` (one object per line);
 * long work shows progress on a terminal.
 */
import { rmSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { Compression } from '@strata/core';
import type { GcResult, ImageDetails, Images, PlatformChoice } from '@strata/images';
import { print, sanitize, UsageError } from './format.js';
import { humanBytes, progress } from './progress.js';
import { LIST_FILTERS, parseImageFilters, PRUNE_FILTERS } from './image-filters.js';
import { createdSince, dockerSize, formatRows, goTime, terminalSafe } from './row-format.js';
import { collect, labels, platformChoice, table, withImages, type PlatformOptions } from './root.js';
import { archiveToStdout, spoolStdin } from './stdin.js';

const compressionOption = (fallback: Compression) => new Option('--compression <kind>', 'none, gzip or zstd').choices(['none', 'gzip', 'zstd']).default(fallback);
const quietOption = () => new Option('-q, --quiet', 'no progress');

function dateOf(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function shortId(digest: string): string {
  return digest.slice('sha256:'.length, 'sha256:'.length + 12);
}

/**
 * `--format` (spelt `flags`), which the command's other forms of output (`--json`, or those `others` names)
 * cannot be given with: commander refuses the pair as a usage mistake.
 */
function formatOption(description: string, others = ['json'], flags = '--format <format>'): Option {
  return new Option(flags, description).conflicts(others);
}

/** `docker images`' column headers, by field. */
const IMAGE_HEADERS = { ID: 'IMAGE ID', Repository: 'REPOSITORY', Tag: 'TAG', Digest: 'DIGEST', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE' };

/** `docker system df`'s column headers, by field. */
const DF_HEADERS = { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' };

/** `docker ps`' column headers, by field, and strata's for its own. */
const CONTAINER_HEADERS = { Names: 'NAMES', Image: 'IMAGE', CreatedAt: 'CREATED AT', RunningFor: 'CREATED', Labels: 'LABELS', State: 'STATE', Snapshot: 'SNAPSHOT' };

/** `docker history`'s column headers, by field. */
const HISTORY_HEADERS = { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' };

/** `text` cut to `width` characters, its last an ellipsis, as docker cuts a table's long cells. */
function ellipsis(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join('')}\u2026`;
}

/**
 * An image as `docker image inspect` shows it, for `--format`: its ID, names as tags and digests, the
 * config's fields, platform and layers (docker's own keys, with the OCI config's `config` as `Config`).
 */
function dockerInspect(d: ImageDetails, nameForms: (name: string) => string[]): Record<string, unknown> {
  const names = d.names.map((name) => repositoryAndTag(name, nameForms));
  const { config } = d;
  return {
    Id: d.digest,
    RepoTags: names.filter((n) => n.Tag !== '<none>').map((n) => `${n.Repository}:${n.Tag}`),
    RepoDigests: [...new Set(names.map((n) => `${n.Repository}@${d.digest}`))],
    Parent: '',
    Comment: '',
    Created: config.created ?? '',
    DockerVersion: '',
    Author: config.author ?? '',
    Config: config.config ?? {},
    Architecture: config.architecture,
    ...(config.variant !== undefined ? { Variant: config.variant } : {}),
    Os: config.os,
    ...(config['os.version'] !== undefined ? { OsVersion: config['os.version'] } : {}),
    Size: d.layers.reduce((sum, layer) => sum + layer.size, 0),
    RootFS: { Type: 'layers', Layers: config.rootfs.diff_ids },
  };
}

/**
 * An image name as `docker images` splits it: the familiar repository, and the tag (`<none>` for none).
 * `nameForms` is the images library's, loaded with the root (the command's bundle loads no library first).
 */
function repositoryAndTag(name: string | undefined, nameForms: (name: string) => string[]): { Repository: string; Tag: string } {
  if (name === undefined) return { Repository: '<none>', Tag: '<none>' };
  const [familiar, repository] = nameForms(name).map(sanitize);
  const tag = familiar!.startsWith(`${repository!}:`) ? familiar!.slice(repository!.length + 1).replace(/@.*$/, '') : '<none>';
  return { Repository: repository!, Tag: tag };
}

function reportGc(freed: GcResult, json: boolean): void {
  if (json) {
    print(`${JSON.stringify(freed)}\n`);
    return;
  }
  print(`freed ${freed.blobs.length} blob(s), ${freed.snapshots.length} snapshot(s), ${freed.ingests} ingest(s): ${humanBytes(freed.bytes)}\n`);
  for (const e of freed.errors) process.stderr.write(`strata: gc: ${sanitize(e)}\n`);
  if (freed.errors.length > 0) process.exitCode = 1;
}

async function unpackWithProgress(images: Images, ref: string, platform: PlatformChoice | undefined, quiet: boolean): Promise<string | undefined> {
  const bar = progress(`unpack ${ref}`, { quiet });
  try {
    // Without progress, unpack reads each layer file directly (no counting stream in between).
    const result = await images.unpack(ref, { ...(platform ? { platform } : {}), ...(quiet ? {} : { onProgress: (done: number, total: number) => bar.update(done, total) }) });
    return result.chainID;
  } finally {
    bar.stop();
  }
}

export function registerImageCommands(cli: Command): void {
  const image = cli.command('image').description('images of the root: import, export, list, tag, remove, squash');

  image
    .command('import')
    .description('import an OCI layout directory, an OCI archive or a docker save archive (plain or compressed); - reads an archive from stdin')
    .argument('<source>')
    .option('--name <ref>', 'the name (one image), or the repository for tag-only names (several)')
    .option('--platform <os/arch[/variant]>', 'the platform to take from a multi-platform image (default: this host)')
    .option('--all-platforms', 'take every platform')
    .option('--unpack', 'unpack what was imported (host platform unless told)')
    .addOption(quietOption())
    .action((source: string, o: PlatformOptions & { name?: string; unpack?: boolean; quiet?: boolean }, command: Command) =>
      withImages(command, async (images) => {
        const platform = await platformChoice(o);
        // `-`: an archive on stdin (`strata image export … -o - | strata image import -`, as docker save | docker
        // load), spooled into the root first: an archive is read out of order.
        const spooled = source === '-' ? images.content.temporaryPath() : undefined;
        const bar = progress(`import ${source}`, { quiet: o.quiet ?? false });
        let result;
        try {
          if (spooled !== undefined) await spoolStdin('the archive to import (-)', spooled);
          result = await images.import(spooled ?? source, { ...(o.name ? { name: o.name } : {}), ...(platform ? { platform } : {}), ...(o.quiet ? {} : { onProgress: (done: number, total: number | undefined) => bar.update(done, total) }) });
        } finally {
          bar.stop();
          if (spooled !== undefined) rmSync(spooled, { force: true });
        }
        for (const i of result.images) print(i.name !== undefined ? `Loaded image: ${sanitize(i.name)}\n` : `Loaded image ID: ${i.target.digest}\n`);
        if (o.unpack) {
          const unpackPlatform = platform && 'platform' in platform ? platform : undefined;
          for (const i of result.images) {
            const chain = await unpackWithProgress(images, i.name ?? i.target.digest, unpackPlatform, o.quiet ?? false);
            print(`Unpacked ${sanitize(i.name ?? i.target.digest)}: ${chain ?? '(no layers)'}\n`);
          }
        }
      }),
    );

  image
    .command('export')
    .description('export images to an OCI layout directory, an OCI archive or a docker save archive')
    .argument('<refs...>')
    .requiredOption('-o, --output <path>', 'where to write it (- : an archive to stdout)')
    .addOption(new Option('--format <format>', 'oci (a directory), oci-archive or docker').choices(['oci', 'oci-archive', 'docker']).default('oci-archive'))
    .option('--platform <os/arch[/variant]>', 'export only this platform')
    .option('--all-platforms', 'every platform the store holds')
    .addOption(quietOption())
    .action((refs: string[], o: PlatformOptions & { output: string; format: 'oci' | 'oci-archive' | 'docker'; quiet?: boolean }, command: Command) =>
      withImages(command, async (images) => {
        const platform = await platformChoice(o);
        const toStdout = o.output === '-';
        if (toStdout && o.format === 'oci') throw new UsageError('-o -: an OCI layout is a directory; export --format oci-archive or docker to stdout');
        const stdoutArchive = toStdout ? archiveToStdout('-o -') : undefined;
        const bar = progress(`export ${o.output}`, { quiet: o.quiet ?? false });
        try {
          // The progress bar is on stderr.
          const output = stdoutArchive ?? o.output;
          await images.export(refs, output, { format: o.format, ...(platform ? { platform } : {}), onProgress: (done, total) => bar.update(done, total) });
        } finally {
          bar.stop();
        }
      }),
    );

  image
    .command('ls')
    .description('list images (NAME ID SIZE CREATED), newest first; dangling ones show as <none>')
    .addOption(new Option('--json', 'one JSON object per image: name, digest, size, created, recorded, dangling').conflicts('quiet'))
    .addOption(formatOption("docker's: a Go template per image ({{.Repository}}:{{.Tag}}; fields ID, Repository, Tag, Digest, CreatedSince, CreatedAt, Size), json, or table [TEMPLATE]", ['json', 'quiet']))
    .option('-q, --quiet', 'only the IDs (whole), each once')
    .option('--digests', 'show each image’s digest too')
    .option('--no-trunc', 'whole IDs in the table and --format')
    .option('--dangling', 'only dangling images (--filter dangling=true)')
    .option('--filter <filter>', 'dangling=true|false, label=<key>[=<value>], label!=<key>[=<value>], before=<image>, since=<image>, reference=<pattern>, until=<time> (repeatable)', collect)
    .action((o: { json?: boolean; format?: string; quiet?: boolean; digests?: boolean; trunc: boolean; dangling?: boolean; filter?: string[] }, command: Command) =>
      withImages(command, async (images) => {
        const filters = parseImageFilters([...(o.dangling ? ['dangling=true'] : []), ...(o.filter ?? [])], LIST_FILTERS);
        const list = images.list(filters);
        const id = (digest: string) => (o.trunc ? shortId(digest) : digest);
        if (o.quiet) {
          print([...new Set(list.map((i) => `${i.digest}\n`))].join('')); // whole, as earlier versions printed them
          return;
        }
        if (o.json) {
          print(list.map((i) => `${JSON.stringify({ name: i.name ?? null, digest: i.digest, size: i.size, created: i.created ? dateOf(i.created) : null, recorded: dateOf(i.recorded), dangling: i.dangling })}\n`).join(''));
          return;
        }
        if (o.format !== undefined) {
          const { nameForms } = await import('@strata/images');
          const rows = list.map((i) => ({ ID: id(i.digest), ...repositoryAndTag(i.name, nameForms), Digest: i.digest, CreatedSince: createdSince(i.created), CreatedAt: i.created ? goTime(i.created) : 'N/A', Size: dockerSize(i.size) }));
          const columns = o.digests ? '{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}' : '{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
          // The template is the caller's own (its tabs and newlines wanted); only the names came from outside.
          print(formatRows(o.format, { rows, headers: IMAGE_HEADERS, table: columns, type: 'image' }));
          return;
        }
        const header = ['NAME', ...(o.digests ? ['DIGEST'] : []), 'ID', 'SIZE', 'CREATED'];
        print(table([header, ...list.map((i) => [sanitize(i.name ?? '<none>'), ...(o.digests ? [i.digest] : []), id(i.digest), humanBytes(i.size), i.created ? dateOf(i.created) : '-'])]));
      }),
    );

  image
    .command('inspect')
    .description('what an image is: its manifest, config and platform')
    .argument('<ref>')
    .option('--platform <os/arch[/variant]>', 'the platform of a multi-platform image')
    .option('--json', 'as one JSON object')
    .addOption(formatOption("a Go template over docker's image inspect fields (Id, RepoTags, RepoDigests, Created, Author, Config, Architecture, Os, Size, RootFS), or json", ['json'], '-f, --format <template>'))
    .action((ref: string, o: PlatformOptions & { json?: boolean; format?: string }, command: Command) =>
      withImages(command, async (images) => {
        const platform = await platformChoice(o);
        const d = images.inspect(ref, platform);
        if (o.format !== undefined) {
          if (o.format.startsWith('table')) throw new UsageError('--format: inspect writes no table (a template, or json)');
          const { nameForms } = await import('@strata/images');
          print(formatRows(o.format, { rows: [terminalSafe(dockerInspect(d, nameForms)) as Record<string, unknown>], headers: {}, table: '' }));
          return;
        }
        if (o.json) {
          print(`${JSON.stringify({ names: d.names, digest: d.digest, mediaType: d.mediaType, manifest: d.manifest.digest, platform: d.platform, configDigest: d.configDigest, config: d.config, layers: d.layers, unpacked: d.unpacked ?? null })}\n`);
          return;
        }
        const lines = [
          ...d.names.map((n) => `name ${sanitize(n)}`),
          `digest ${d.digest}`,
          `media-type ${d.mediaType}`,
          `manifest ${d.manifest.digest}`,
          `platform ${d.platform}`,
          `config ${d.configDigest}`,
          `created ${sanitize(String(d.config.created ?? ''))}`,
          `layers ${d.layers.length}`,
          `unpacked ${d.unpacked ?? 'no'}`,
        ];
        print(`${lines.join('\n')}\n`);
      }),
    );

  image
    .command('history')
    .description('the steps that made an image, newest first')
    .argument('<ref>')
    .option('--json', 'one JSON object per step')
    .addOption(formatOption("docker's: a Go template per step (fields ID, CreatedSince, CreatedAt, CreatedBy, Size, Comment), json, or table [TEMPLATE]"))
    .option('--no-trunc', 'whole IDs and steps in --format')
    .action((ref: string, o: { json?: boolean; format?: string; trunc: boolean }, command: Command) =>
      withImages(command, async (images) => {
        const steps = images.history(ref);
        if (o.format !== undefined) {
          const id = images.inspect(ref).digest;
          const rows = steps.map((s, i) => {
            const created = s.created === undefined ? undefined : new Date(s.created);
            const known = created !== undefined && !Number.isNaN(created.getTime());
            const by = s.created_by?.replaceAll('\t', ' ') ?? '';
            return {
              // Only the top step is an image of its own; docker shows the others as <missing>.
              ID: i > 0 ? '<missing>' : o.trunc ? shortId(id) : id,
              CreatedSince: known ? createdSince(created) : 'N/A',
              CreatedAt: known ? created.toISOString().replace(/\.\d{3}Z$/, 'Z') : 'N/A',
              CreatedBy: sanitize(o.trunc ? ellipsis(by, 45) : by),
              Size: dockerSize(s.size),
              Comment: sanitize(s.comment ?? ''),
            };
          });
          print(formatRows(o.format, { rows, headers: HISTORY_HEADERS, table: '{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}', type: 'history step' }));
          return;
        }
        if (o.json) {
          print(steps.map((s) => `${JSON.stringify({ created: s.created ?? null, createdBy: s.created_by ?? '', comment: s.comment ?? '', author: s.author ?? '', emptyLayer: s.empty_layer ?? false, layer: s.layer ?? null, size: s.size })}\n`).join(''));
          return;
        }
        const cell = (text: string) => sanitize(text.length > 60 ? `${text.slice(0, 57)}...` : text);
        print(table([['CREATED', 'SIZE', 'CREATED BY', 'COMMENT'], ...steps.map((s) => [sanitize(s.created ?? ''), humanBytes(s.size), cell(s.created_by ?? ''), cell(s.comment ?? '')])]));
      }),
    );

  image
    .command('tag')
    .description('name an image (by name or ID) also <name>')
    .argument('<source>')
    .argument('<name>')
    .action((source: string, name: string, _o: unknown, command: Command) => withImages(command, async (images) => void images.tag(source, name)));

  image
    .command('rm')
    .description('remove images by name or ID (Docker’s rules), then collect what nothing holds')
    .argument('<refs...>')
    .option('-f, --force', 'untag images containers use (their content stays until the containers go), and IDs with several names')
    .action((refs: string[], o: { force?: boolean }, command: Command) =>
      withImages(command, async (images) => {
        const removed = images.removeImages(refs, { force: o.force ?? false });
        for (const name of removed.untagged) print(`Untagged: ${sanitize(name)}\n`);
        for (const digest of removed.deleted) print(`Deleted: ${digest}\n`);
        reportGc(await images.gc(), false);
      }),
    );

  image
    .command('prune')
    .description('remove dangling images (with --all, every image) no container uses, then collect what nothing holds')
    .option('-a, --all', 'every image no container uses, not only dangling ones')
    .option('--filter <filter>', 'until=<time> (24h, Unix seconds, a date), label=<key>[=<value>], label!=<key>[=<value>] (repeatable)', collect)
    .action((o: { all?: boolean; filter?: string[] }, command: Command) =>
      withImages(command, async (images) => {
        const { until, labels } = parseImageFilters(o.filter ?? [], PRUNE_FILTERS);
        const removed = images.prune({ all: o.all ?? false, ...(until ? { until } : {}), ...(labels ? { labels } : {}) });
        for (const name of removed.untagged) print(`Untagged: ${sanitize(name)}\n`);
        for (const digest of removed.deleted) print(`Deleted: ${digest}\n`);
        reportGc(await images.gc(), false);
      }),
    );

  image
    .command('squash')
    .description('fold an image’s layers (all, or those above --base) into one, as <new-ref>')
    .argument('<ref>')
    .argument('<new-ref>')
    .option('--base <ref>', 'keep this image’s layers and fold only those above them')
    .addOption(compressionOption('gzip'))
    .action((ref: string, name: string, o: { base?: string; compression: Compression }, command: Command) =>
      withImages(command, async (images) => {
        const made = await images.squash(ref, name, { ...(o.base ? { base: o.base } : {}), compression: o.compression });
        print(`${sanitize(made.name)} ${made.target.digest} (${made.folded} layer(s) folded into ${made.layer.digest})\n`);
      }),
    );
}

export function registerContainerCommands(cli: Command): void {
  cli
    .command('unpack')
    .description('unpack an image into snapshots named by chainID; prints the top chainID')
    .argument('<ref>')
    .option('--platform <os/arch[/variant]>', 'the platform of a multi-platform image')
    .addOption(quietOption())
    .action((ref: string, o: PlatformOptions & { quiet?: boolean }, command: Command) =>
      withImages(command, async (images) => {
        const platform = await platformChoice(o);
        if (platform && 'all' in platform) throw new UsageError('unpack takes one platform');
        const chain = await unpackWithProgress(images, ref, platform, o.quiet ?? false);
        print(`${chain ?? ''}\n`);
      }),
    );

  const container = cli.command('container').description('containers: a writable snapshot on an image');

  container
    .command('create')
    .description('make a container from an image (unpacking it first if needed)')
    .argument('<image>')
    .argument('<name>')
    .option('--platform <os/arch[/variant]>', 'the platform of a multi-platform image')
    .option('--label <k=v>', 'a label (repeatable)', collect)
    .action((ref: string, name: string, o: PlatformOptions & { label?: string[] }, command: Command) =>
      withImages(command, async (images) => {
        const platform = await platformChoice(o);
        if (platform && 'all' in platform) throw new UsageError('a container runs one platform');
        const c = await images.createContainer(ref, name, { ...(platform ? { platform } : {}), labels: labels(o.label) });
        print(`${sanitize(c.name)}\n`);
      }),
    );

  container
    .command('ls')
    .description('list containers (NAME IMAGE SNAPSHOT CREATED)')
    .option('--json', 'one JSON object per container')
    .addOption(formatOption("as docker ps takes it: a Go template per container (fields Names, Image, CreatedAt, RunningFor, Labels, State: mounted or created, Snapshot), json, or table [TEMPLATE]"))
    .action((o: { json?: boolean; format?: string }, command: Command) =>
      withImages(command, async (images) => {
        const list = images.containers.list();
        if (o.format !== undefined) {
          const rows = [];
          for (const c of list) {
            const state = (await images.mountPoints(c.name)).length > 0 ? 'mounted' : 'created';
            const labels = Object.entries(c.labels).map(([k, v]) => `${k}=${v}`).sort().join(',');
            rows.push({ Names: sanitize(c.name), Image: sanitize(c.image), CreatedAt: goTime(c.created), RunningFor: createdSince(c.created), Labels: sanitize(labels), State: state, Snapshot: sanitize(c.snapshot) });
          }
          print(formatRows(o.format, { rows, headers: CONTAINER_HEADERS, table: '{{.Names}}\t{{.Image}}\t{{.RunningFor}}\t{{.State}}', type: 'container' }));
          return;
        }
        if (o.json) {
          print(list.map((c) => `${JSON.stringify({ name: c.name, image: c.image, imageDigest: c.target.digest, snapshot: c.snapshot, chainID: c.chainID, created: dateOf(c.created), labels: c.labels })}\n`).join(''));
          return;
        }
        print(table([['NAME', 'IMAGE', 'SNAPSHOT', 'CREATED'], ...list.map((c) => [sanitize(c.name), sanitize(c.image), sanitize(c.snapshot), dateOf(c.created)])]));
      }),
    );

  container
    .command('rm')
    .description('remove containers and their snapshots')
    .argument('<names...>')
    .option('-f, --force', 'unmount mounted ones first')
    .action((names: string[], o: { force?: boolean }, command: Command) =>
      withImages(command, async (images) => {
        for (const name of names) await images.removeContainer(name, { force: o.force ?? false });
      }),
    );

  container
    .command('mount')
    .description('mount a container’s tree at <target> with the kernel')
    .argument('<name>')
    .argument('<target>')
    .action((name: string, target: string, _o: unknown, command: Command) => withImages(command, (images) => images.mountContainer(name, target)));

  container
    .command('unmount')
    .description('unmount <target>')
    .argument('<target>')
    .action((target: string, _o: unknown, command: Command) => withImages(command, (images) => images.snapshotter.unmount(target)));

  container
    .command('diff')
    .description('a container’s change as a layer')
    .argument('<name>')
    .requiredOption('-o, --output <layer>', 'where to write it')
    .addOption(compressionOption('none'))
    .action((name: string, o: { output: string; compression: Compression }, command: Command) =>
      withImages(command, async (images) => {
        const d = await images.diffContainer(name, { path: o.output, compression: o.compression });
        print(`diffID ${d.diffID}\ndigest ${d.digest}\nsize ${d.size}\n`);
      }),
    );

  cli
    .command('commit')
    .description('a container’s change as a new image (docker commit); prints its ID')
    .argument('<container>')
    .argument('<ref>')
    .option('-m, --message <text>', 'the history comment')
    .option('--author <name>', 'the author')
    .addOption(compressionOption('gzip'))
    .action((name: string, ref: string, o: { message?: string; author?: string; compression: Compression }, command: Command) =>
      withImages(command, async (images) => {
        const made = await images.commit(name, ref, { ...(o.message !== undefined ? { message: o.message } : {}), ...(o.author !== undefined ? { author: o.author } : {}), compression: o.compression });
        print(`${made.target.digest}\n`);
      }),
    );

  cli
    .command('gc')
    .description('collect what no image, container, lease or gc.root label holds')
    .option('--json', 'what was freed, as one JSON object')
    .action((o: { json?: boolean }, command: Command) => withImages(command, async (images) => reportGc(await images.gc(), o.json ?? false)));

  cli
    .command('df')
    .description('the space images, containers and the build cache take (docker system df)')
    .option('--json', 'one JSON object per line: type, total, active, size, reclaimable')
    .addOption(formatOption("docker system df's: a Go template per line (fields Type, TotalCount, Active, Size, Reclaimable), json, or table [TEMPLATE]"))
    .action((o: { json?: boolean; format?: string }, command: Command) =>
      withImages(command, async (images) => {
        const { BuildCache } = await import('@strata/build');
        const usage = await images.diskUsage();
        const rows = [
          { type: 'Images', ...usage.images },
          { type: 'Containers', ...usage.containers },
          { type: 'Build Cache', ...(await new BuildCache(images).usage()) },
        ];
        if (o.format !== undefined) {
          // As docker writes them: sizes to four digits, the share reclaimable in whole percent (none for the build cache).
          const share = (r: (typeof rows)[number]) => (r.size > 0 && r.type !== 'Build Cache' ? ` (${Math.floor((r.reclaimable * 100) / r.size)}%)` : '');
          const lines = rows.map((r) => ({ Type: r.type, TotalCount: String(r.total), Active: String(r.active), Size: dockerSize(r.size, 4), Reclaimable: `${dockerSize(r.reclaimable, 4)}${share(r)}` }));
          print(formatRows(o.format, { rows: lines, headers: DF_HEADERS, table: '{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}', type: 'disk usage' }));
          return;
        }
        if (o.json) {
          print(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
          return;
        }
        const percent = (r: (typeof rows)[number]) => (r.size > 0 ? ` (${Math.round((r.reclaimable / r.size) * 100)}%)` : '');
        print(table([['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'], ...rows.map((r) => [r.type, String(r.total), String(r.active), humanBytes(r.size), `${humanBytes(r.reclaimable)}${percent(r)}`])]));
      }),
    );

  cli
    .command('fsck')
    .description('check the root: snapshots against the database, images and containers against their content')
    .option('--content', 'also re-hash every blob')
    .option('--repair', 'fix what can be fixed safely (corrupt blobs are deleted)')
    .option('--json', 'the report as one JSON object')
    .action((o: { content?: boolean; repair?: boolean; json?: boolean }, command: Command) =>
      withImages(command, async (images) => {
        const report = await images.fsck({ content: o.content ?? false, repair: o.repair ?? false });
        // One list of problems, the snapshotter's and the images', each naming what it concerns.
        const problems = [
          ...report.snapshots.problems.map((p) => ({ kind: p.kind, subject: p.key ?? p.path ?? '', detail: p.detail, repaired: p.repaired })),
          ...report.problems.map((p) => ({ kind: p.kind, subject: p.subject, detail: p.detail, repaired: p.repaired })),
        ];
        if (o.json) {
          const { snapshots, blobs, verified, images: count, ok } = { ...report, snapshots: report.snapshots.snapshots };
          print(`${JSON.stringify({ ok, snapshots, blobs, verified, images: count, problems })}\n`);
        } else {
          const lines = problems.map((p) => `${p.repaired ? 'repaired' : 'problem'} ${p.kind} ${sanitize(p.subject)}: ${sanitize(p.detail)}`);
          const left = problems.filter((p) => !p.repaired).length;
          lines.push(`${report.snapshots.snapshots} snapshot(s), ${report.blobs} blob(s)${o.content ? ` (${report.verified} re-hashed)` : ''}, ${report.images} image(s): ${problems.length} problem(s), ${left} left`);
          print(`${lines.join('\n')}\n`);
        }
        if (!report.ok) process.exitCode = 1;
      }),
    );
}
