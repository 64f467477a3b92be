/**
 * `strata snapshot …`: the snapshotter of one root from the command line, with ctr's
 * shape (`ctr snapshots …`). Listings take `--json` (one object per line); errors are typed as everywhere.
 */
import type { Command } from 'commander';
import { mountCommand, type Compression } from '@strata/core';
import type { Info } from '@strata/snapshotter';
import { print, sanitize, UsageError } from './format.js';
import { collect, labels, table, withSnapshotter } from './root.js';

function json(info: Info): string {
  return JSON.stringify({ key: info.name, kind: info.kind, parent: info.parent ?? null, labels: info.labels, created: info.created.toISOString(), updated: info.updated.toISOString() });
}

export function registerSnapshotCommands(cli: Command): void {
  const snapshot = cli.command('snapshot').description('snapshots of the root: containerd’s model (prepare, view, commit, remove, walk)');

  for (const [verb, description] of [
    ['prepare', 'an active snapshot on a committed parent (none: an empty base)'],
    ['view', 'a read-only view of a committed snapshot'],
  ] as const) {
    snapshot
      .command(verb)
      .description(description)
      .argument('<key>')
      .argument('[parent]')
      .option('--label <k=v>', 'a label (repeatable)', collect)
      .action((key: string, parent: string | undefined, o: { label?: string[] }, command: Command) =>
        withSnapshotter(command, async (sn) => void (await sn[verb](key, parent, { labels: labels(o.label) }))),
      );
  }

  snapshot
    .command('commit')
    .description('commit the active snapshot <key> as <name>')
    .argument('<name>')
    .argument('<key>')
    .option('--label <k=v>', 'a label (repeatable)', collect)
    .action((name: string, key: string, o: { label?: string[] }, command: Command) =>
      withSnapshotter(command, async (sn) => void (await sn.commit(name, key, { labels: labels(o.label) }))),
    );

  snapshot
    .command('rm')
    .description('remove snapshots (children first)')
    .argument('<keys...>')
    .action((keys: string[], _o: unknown, command: Command) =>
      withSnapshotter(command, async (sn) => {
        for (const key of keys) await sn.remove(key);
      }),
    );

  snapshot
    .command('ls')
    .description('list snapshots (KEY PARENT KIND), those matching any --filter')
    .option('--json', 'one JSON object per snapshot')
    .option('--filter <expr>', 'containerd filter syntax, e.g. kind==active or labels."a.b"==v (repeatable: any may match)', collect)
    .action((o: { json?: boolean; filter?: string[] }, command: Command) =>
      withSnapshotter(command, async (sn) => {
        const infos: Info[] = [];
        await sn.walk((info) => void infos.push(info), ...(o.filter ?? []));
        infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        if (o.json) print(infos.map((i) => `${json(i)}\n`).join(''));
        else print(table([['KEY', 'PARENT', 'KIND'], ...infos.map((i) => [sanitize(i.name), sanitize(i.parent ?? ''), i.kind])]));
      }),
    );

  snapshot
    .command('info')
    .description('what a snapshot is')
    .argument('<key>')
    .option('--json', 'as one JSON object')
    .action((key: string, o: { json?: boolean }, command: Command) =>
      withSnapshotter(command, async (sn) => {
        const info = await sn.stat(key);
        if (o.json) print(`${json(info)}\n`);
        else {
          const lines = [`key ${sanitize(info.name)}`, `kind ${info.kind}`, `parent ${sanitize(info.parent ?? '')}`, `created ${info.created.toISOString()}`, `updated ${info.updated.toISOString()}`];
          for (const [k, v] of Object.entries(info.labels)) lines.push(`label ${sanitize(k)}=${sanitize(v)}`);
          print(`${lines.join('\n')}\n`);
        }
      }),
    );

  snapshot
    .command('label')
    .description('set labels (k=v) or remove them (k=)')
    .argument('<key>')
    .argument('<labels...>')
    .action((key: string, pairs: string[], _o: unknown, command: Command) =>
      withSnapshotter(command, async (sn) => {
        const given: Record<string, string> = {};
        const paths: string[] = [];
        for (const pair of pairs) {
          const at = pair.indexOf('=');
          if (at <= 0) throw new UsageError(`a label is key=value, or key= to remove it: ${pair}`);
          const k = pair.slice(0, at);
          const v = pair.slice(at + 1);
          if (v !== '') given[k] = v;
          paths.push(`labels.${k}`);
        }
        const info = await sn.update({ name: key, labels: given }, paths);
        print(Object.entries(info.labels).map(([k, v]) => `${sanitize(k)}=${sanitize(v)}\n`).join(''));
      }),
    );

  snapshot
    .command('usage')
    .description('disk usage of snapshots’ own layers (all, or one)')
    .argument('[key]')
    .option('--json', 'one JSON object per snapshot')
    .action((key: string | undefined, o: { json?: boolean }, command: Command) =>
      withSnapshotter(command, async (sn) => {
        const keys: string[] = [];
        if (key !== undefined) keys.push(key);
        else await sn.walk((info) => void keys.push(info.name));
        const rows: Array<[string, number, number]> = [];
        for (const k of keys.sort()) {
          const u = await sn.usage(k);
          rows.push([k, u.size, u.inodes]);
        }
        if (o.json) print(rows.map(([k, size, inodes]) => `${JSON.stringify({ key: k, size, inodes })}\n`).join(''));
        else print(table([['KEY', 'SIZE', 'INODES'], ...rows.map(([k, s, i]) => [sanitize(k), String(s), String(i)])]));
      }),
    );

  snapshot
    .command('mounts')
    .description('print the mount(8) command that mounts a snapshot at <target> (as ctr does)')
    .argument('<target>')
    .argument('<key>')
    .action((target: string, key: string, _o: unknown, command: Command) =>
      withSnapshotter(command, async (sn) => void print(`${mountCommand(await sn.mounts(key), target)}\n`)),
    );

  snapshot
    .command('mount')
    .description('mount a snapshot at <target> with the kernel')
    .argument('<key>')
    .argument('<target>')
    .action((key: string, target: string, _o: unknown, command: Command) => withSnapshotter(command, (sn) => sn.mount(key, target)));

  snapshot
    .command('unmount')
    .description('unmount <target>')
    .argument('<target>')
    .action((target: string, _o: unknown, command: Command) => withSnapshotter(command, (sn) => sn.unmount(target)));

  snapshot
    .command('diff')
    .description('the change of a snapshot (active, or committed against its parent) as a layer')
    .argument('<key>')
    .requiredOption('-o, --output <layer>', 'where to write it')
    .option('--compression <kind>', 'none, gzip or zstd', 'none')
    .action((key: string, o: { output: string; compression: Compression }, command: Command) =>
      withSnapshotter(command, async (sn) => {
        if (!['none', 'gzip', 'zstd'].includes(o.compression)) throw new UsageError('--compression must be none, gzip or zstd');
        const d = await sn.diff(key, { path: o.output, compression: o.compression });
        print(`diffID ${d.diffID}\ndigest ${d.digest}\nsize ${d.size}\n`);
      }),
    );

  snapshot
    .command('cleanup')
    .description('remove what interrupted operations left behind')
    .action((_o: unknown, command: Command) => withSnapshotter(command, (sn) => sn.cleanup()));
}
