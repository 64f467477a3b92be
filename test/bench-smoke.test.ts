/**
 * The benchmark harness on tiny inputs, so it cannot rot: every benchmark runs once and reports a ratio.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { needs } from './helpers/oracle.js';

describe.skipIf(!needs('root', 'gnu-tar', 'openssl', 'overlay', 'umoci', 'skopeo', 'containerd', 'docker-registry', 'buildah', 'debootstrap'))('benchmark harness', () => {
  it('runs every benchmark on tiny inputs and reports strata/peer ratios', () => {
    const out = mkdtempSync(join(tmpdir(), 'strata-bench-smoke-'));
    try {
      const root = join(import.meta.dirname, '..');
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'benchmarks/run.ts', '--tiny', '--out', out], { cwd: root, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as { results: Array<{ name: string; ratios: Record<string, number>; notes: string[] }> };
      expect(report.results.map((x) => x.name)).toEqual([
        ...['apply', 'apply-embedded', 'apply-first-layer', 'apply-stdin', ...['pack', 'digest'].flatMap((job) => [job, `${job}-embedded`, `${job}-first-layer`])].map((n) => `${n}/zoneinfo`),
        ...['lookup-1-layers', 'lookup-8-layers', 'lookup-64-layers', 'lookup-128-layers', 'readdir-10k-8-layers', 'copy-up-100MB', 'readfile-walk'].map((n) => `${n}/zoneinfo`),
        ...['diff-upper', 'diff-upper-embedded', 'diff-upper-first-layer', 'diff-trees', 'flatten-5', 'diff-upper-base-growth'],
        ...['snapshot-prepare-commit', 'snapshot-usage', 'snapshot-stat-walk'],
        ...['image-import-unpack', 'image-export-docker', 'commit', 'commit-embedded', 'commit-gzip', 'gc-100-images'],
        'apply-concurrent',
        'pack-concurrent',
        ...['registry-push', 'registry-pull', 'registry-pull-on-base', 'registry-push-embedded', 'registry-pull-embedded'],
        ...['build-cold', 'build-cached', 'build-one-change'],
      ]);
      for (const result of report.results) for (const ratio of Object.values(result.ratios)) expect(ratio).toBeGreaterThan(0);
      // The floors a target is checked against: apply's CPU floor, and for the writers the hash floor beside it.
      const notes = (name: string) => report.results.find((x) => x.name === name)!.notes;
      for (const name of ['apply', 'apply-embedded', 'apply-first-layer'].map((n) => `${n}/zoneinfo`)) {
        expect(notes(name).filter((n) => n.startsWith('CPU floor: `tar -x & sha256` takes '))).toHaveLength(1);
      }
      for (const name of [...['pack', 'pack-embedded', 'pack-first-layer'].map((n) => `${n}/zoneinfo`), 'diff-upper', 'diff-upper-embedded', 'diff-upper-first-layer']) {
        expect(notes(name).filter((n) => n.startsWith('CPU floor: `tar -c` and `sha256 alone` take '))).toHaveLength(1);
        expect(notes(name).filter((n) => /^Hash floor: `sha256 alone` .* takes \d+\.\d{3} s, \d+\.\d ms of it its own start/.test(n))).toHaveLength(1);
      }
      // Node's start beside the commands that Node runs, and only there.
      const nodeStart = /^Node's start: `node -e 0` takes \d+\.\d{3} s, \d+\.\d{2}× `[^`]+`, before a command's first line; strata's command beyond it took -?\d+\.\d{3} s/;
      for (const name of [...['apply', 'pack', 'digest'].map((n) => `${n}/zoneinfo`), 'diff-upper', 'commit', 'registry-push', 'build-cold']) {
        expect(notes(name).filter((n) => nodeStart.test(n)), name).toHaveLength(1);
      }
      for (const name of [...['apply', 'pack', 'digest'].flatMap((n) => [`${n}-embedded`, `${n}-first-layer`]).map((n) => `${n}/zoneinfo`), 'diff-upper-embedded', 'diff-upper-first-layer', 'commit-embedded']) {
        expect(notes(name).filter((n) => n.startsWith("Node's start")), name).toHaveLength(0);
      }
      expect(readFileSync(join(out, 'latest.md'), 'utf8')).toContain('| strata / peer |');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 15 * 60_000); // every benchmark once, registries, daemons and builds: about four minutes, more on a busy machine
});
