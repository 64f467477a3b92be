/**
 * How the built packages load together: @strata/snapshotter imports @strata/core from its own install (one
 * copy of each class at run time), and even two copies of core, side by side, agree on `instanceof`.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function run(script: string): Record<string, unknown> {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('../', import.meta.url).pathname,
    encoding: 'utf8',
    env: { ...process.env, NODE_EXTRA_CA_CERTS: '' },
  });
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe('packaging', () => {
  it("an error the snapshotter throws is an instance of core's classes, as the caller imported them", () => {
    const out = run(`
      import * as core from '@strata/core';
      import { openSnapshotter } from '@strata/snapshotter';
      const error = await openSnapshotter('/tmp/unused', { driver: 'zfs' }).catch((e) => e);
      process.stdout.write(JSON.stringify({
        code: error.code,
        invalid: error instanceof core.InvalidArgumentError,
        strata: error instanceof core.StrataError,
        notFound: error instanceof core.NotFoundError,
        predicate: core.isStrataError(error),
      }));
    `);
    expect(out).toEqual({ code: 'INVALID_ARGUMENT', invalid: true, strata: true, notFound: false, predicate: true });
  });

  it('two copies of core loaded side by side agree on instanceof', () => {
    const out = run(`
      import { createRequire } from 'node:module';
      import { pathToFileURL } from 'node:url';
      const entry = createRequire(import.meta.url + '/').resolve('@strata/core/package.json').replace(/package\\.json$/, 'dist/strata-core.js');
      const a = await import(pathToFileURL(entry).href + '?copy=a');
      const b = await import(pathToFileURL(entry).href + '?copy=b');
      const error = new a.LayerFormatError('from copy a');
      process.stdout.write(JSON.stringify({
        distinct: a.LayerFormatError !== b.LayerFormatError,
        same: error instanceof b.LayerFormatError,
        base: error instanceof b.StrataError,
        other: error instanceof b.UnsafePathError,
        plain: new Error('x') instanceof b.StrataError,
      }));
    `);
    expect(out).toEqual({ distinct: true, same: true, base: true, other: false, plain: false });
  });
});
