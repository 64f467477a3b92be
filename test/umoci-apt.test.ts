/**
 * A real container change through a real image tool: the upper left by `apt-get install python3 curl` over
 * a debootstrap minbase, as strata's `diffUpper` writes it and as `umoci repack` writes the same change.
 * Both layers go on the same base image and `umoci unpack` must give the same tree, directory times
 * included: directories the container only created and deleted files in (/tmp, /var/lib/dpkg/updates)
 * carry the time the container left them, as umoci's (and containerd's, and moby's) layers carry it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffUpper, HostLayer, writeChanges } from '@strata/core';
import { aptChange, type AptChange } from '../benchmarks/inputs.js';
import { needs } from './helpers/oracle.js';
import { snapshotTree, type NodeRecord } from './helpers/snapshot.js';

/** Differences between two trees: exact but for times, which may differ by under a second (umoci writes whole seconds). */
function compare(want: Map<string, NodeRecord>, got: Map<string, NodeRecord>): string[] {
  const out: string[] = [];
  for (const [path, a] of want) {
    const b = got.get(path);
    if (b === undefined) {
      out.push(`missing ${path}`);
      continue;
    }
    const { mtimeNs: ta, ...ra } = a;
    const { mtimeNs: tb, ...rb } = b;
    if (JSON.stringify(ra) !== JSON.stringify(rb)) out.push(`differs ${path}: ${JSON.stringify(ra)} vs ${JSON.stringify(rb)}`);
    const gap = BigInt(ta ?? '0') - BigInt(tb ?? '0');
    if (gap >= 1_000_000_000n || gap <= -1_000_000_000n) out.push(`time of ${path} (${a.type}): ${ta} vs ${tb}`);
  }
  for (const path of got.keys()) if (!want.has(path)) out.push(`extra ${path}`);
  return out.slice(0, 30);
}

describe.skipIf(!needs('root', 'umoci', 'overlay', 'debootstrap'))('the apt-install change through umoci', () => {
  let work: string;
  let change: AptChange;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-umoci-apt-'));
    change = aptChange(); // built once per machine (debootstrap, then apt-get in a chroot), then cached
  }, 20 * 60_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("umoci unpacks strata's layer to the tree of umoci's own repack, directory times included", async () => {
    const layout = join(work, 'image');
    const umoci = (...args: string[]) => execFileSync('umoci', args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
    const copyInto = (from: string, bundle: string) => {
      execFileSync('sh', ['-c', 'rm -rf "$1"/rootfs/* && cp -a "$2"/. "$1"/rootfs/', 'sh', bundle, from]);
    };
    umoci('init', '--layout', layout);
    umoci('new', '--image', `${layout}:base`);
    umoci('unpack', '--image', `${layout}:base`, join(work, 'b-base'));
    copyInto(change.lower, join(work, 'b-base'));
    umoci('repack', '--image', `${layout}:base`, join(work, 'b-base'));

    // umoci's layer: the merged tree after the install, repacked over a fresh unpack of the base.
    umoci('unpack', '--image', `${layout}:base`, join(work, 'b-next'));
    copyInto(change.merged, join(work, 'b-next'));
    umoci('repack', '--image', `${layout}:with-umoci`, join(work, 'b-next'));

    // strata's layer: the kernel's upper read back by diffUpper, added to the same base.
    const ours = join(work, 'strata-layer.tar');
    await writeChanges(diffUpper([new HostLayer(change.lower)], change.upper), ours);
    umoci('raw', 'add-layer', '--image', `${layout}:base`, '--tag', 'with-strata', ours);

    umoci('unpack', '--image', `${layout}:with-umoci`, join(work, 'u'));
    umoci('unpack', '--image', `${layout}:with-strata`, join(work, 's'));
    const options = { ignoreXattr: (name: string) => name.startsWith('trusted.overlay.') };
    const theirs = snapshotTree(join(work, 'u', 'rootfs'), options);
    const mine = snapshotTree(join(work, 's', 'rootfs'), options);
    expect(theirs.size).toBeGreaterThan(5000);
    expect(compare(theirs, mine)).toEqual([]);
  });
});
