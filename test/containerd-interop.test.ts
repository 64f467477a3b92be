/**
 * Interop with containerd: for one change made through a kernel overlay, the layer containerd's own
 * snapshot diff writes (its walking differ over the mounted snapshots) and the layer strata's diffUpper
 * writes from the upper alone, applied to the same base, give the same tree (as far as containerd's layer
 * says: it keeps whole seconds and no xattr but security.capability), and strata's gives the kernel's
 * merged view exactly.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, linkSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer, diffUpper, HostLayer, writeChanges } from '@strata/core';
import { setXattr } from './helpers/host.js';
import { Containerd } from './helpers/containerd.js';
import { needs } from './helpers/oracle.js';
import { diffSnapshots, snapshotTree } from './helpers/snapshot.js';

describe.skipIf(!needs('root', 'overlay', 'containerd'))('interop with containerd', () => {
  let work: string;
  let containerd: Containerd | undefined;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-containerd-'));
  });
  afterAll(() => {
    containerd?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("containerd's snapshot diff and strata's diffUpper of the same kernel-made change give identical trees", async () => {
    const base = join(work, 'base');
    cpSync('/usr/share/zoneinfo', join(base, 'zoneinfo'), { recursive: true, verbatimSymlinks: true });
    mkdirSync(join(base, 'etc/old'), { recursive: true });
    writeFileSync(join(base, 'etc/old/conf'), 'old\n');
    writeFileSync(join(base, 'etc/keep'), 'keep\n');
    writeFileSync(join(base, 'etc/file-then-dir'), 'file\n');
    mkdirSync(join(base, 'wiped/sub'), { recursive: true });
    writeFileSync(join(base, 'wiped/sub/gone'), 'gone\n');
    writeFileSync(join(base, 'pair-a'), 'paired\n');
    linkSync(join(base, 'pair-a'), join(base, 'pair-b'));

    // The change, made through the kernel: its upper is what both diffs start from.
    const [upper, workdir, mnt] = ['upper', 'work', 'mnt'].map((d) => join(work, d)) as [string, string, string];
    for (const d of [upper, workdir, mnt]) mkdirSync(d);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base},upperdir=${upper},workdir=${workdir}`, mnt]);
    let merged;
    try {
      writeFileSync(join(mnt, 'zoneinfo/UTC'), 'changed content\n');
      chmodSync(join(mnt, 'etc/keep'), 0o600);
      rmSync(join(mnt, 'etc/old'), { recursive: true });
      unlinkSync(join(mnt, 'etc/file-then-dir'));
      mkdirSync(join(mnt, 'etc/file-then-dir'));
      writeFileSync(join(mnt, 'etc/file-then-dir/inside'), 'inside\n');
      rmSync(join(mnt, 'wiped'), { recursive: true }); // deleted and made again: opaque
      mkdirSync(join(mnt, 'wiped'));
      writeFileSync(join(mnt, 'wiped/fresh'), 'fresh\n');
      mkdirSync(join(mnt, 'new/deep'), { recursive: true });
      writeFileSync(join(mnt, 'new/deep/file'), 'new\n');
      symlinkSync('../etc/keep', join(mnt, 'new/link'));
      linkSync(join(mnt, 'new/deep/file'), join(mnt, 'new/hard'));
      writeFileSync(join(mnt, 'new/xattr'), 'x\n');
      setXattr(join(mnt, 'new/xattr'), 'user.test', Buffer.from([0, 1, 2, 0xff]));
      writeFileSync(join(mnt, 'pair-a'), 'one name of a hardlink pair changed\n');
      renameSync(join(mnt, 'zoneinfo/GMT'), join(mnt, 'zoneinfo/GMT-moved'));
      rmSync(join(mnt, 'zoneinfo/Europe'), { recursive: true });
      merged = snapshotTree(mnt, { ignoreDirMtime: true });
    } finally {
      execFileSync('umount', [mnt]);
    }

    const ours = join(work, 'strata.tar');
    await writeChanges(diffUpper([new HostLayer(base)], upper), ours);
    containerd = await Containerd.start(join(work, 'containerd'));
    const theirs = join(work, 'containerd.tar');
    containerd.diff(containerd.stageChange(base, upper), theirs);

    const [a, b] = [join(work, 'with-containerd'), join(work, 'with-strata')];
    for (const target of [a, b]) execFileSync('cp', ['-a', base, target]);
    await applyLayer(theirs, a);
    await applyLayer(ours, b);
    // Directory times come from each tool's own walk. containerd's layer also carries whole-second times and,
    // of the xattrs, only security.capability: compared with those left out, the two trees agree...
    const lenient = { ignoreDirMtime: true, mtimeInSeconds: true, ignoreXattr: (name: string) => name !== 'security.capability' };
    expect(diffSnapshots(snapshotTree(a, lenient), snapshotTree(b, lenient))).toEqual([]);
    // ...and strata's reproduces the kernel's merged view with everything else, to the nanosecond.
    expect(diffSnapshots(merged, snapshotTree(b, { ignoreDirMtime: true }))).toEqual([]);
  });
});
