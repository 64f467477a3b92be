/**
 * What the images suites share: a fresh root per test, opened before and closed (and removed) after.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import type { DriverName } from '@strata/snapshotter';
import { openImages, type Images } from '../src/index.js';

/** A scratch directory and the images of a root inside it (`<dir>/root`), new for each test of the suite. */
export interface ImagesRoot {
  readonly dir: string;
  readonly images: Images;
}

export function imagesRoot(prefix: string, driver: DriverName = 'userspace'): ImagesRoot {
  const state = {} as { dir: string; images: Images };
  beforeEach(async () => {
    state.dir = mkdtempSync(join(tmpdir(), prefix));
    state.images = await openImages(join(state.dir, 'root'), { driver });
  });
  afterEach(async () => {
    await state.images.close();
    rmSync(state.dir, { recursive: true, force: true });
  });
  return state;
}
