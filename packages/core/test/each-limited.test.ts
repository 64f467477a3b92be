import { describe, expect, it } from 'vitest';
import { eachLimited } from '../src/each-limited.js';

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

describe('eachLimited', () => {
  it('runs every item once, with its index, never more than the limit at a time', async () => {
    const items = Array.from({ length: 25 }, (_, i) => `item-${i}`);
    const seen: Array<[string, number]> = [];
    let running = 0;
    let most = 0;
    await eachLimited(items, 3, async (item, index) => {
      running++;
      most = Math.max(most, running);
      await tick();
      seen.push([item, index]);
      running--;
    });
    expect(most).toBe(3);
    expect(seen.sort((a, b) => a[1] - b[1])).toEqual(items.map((item, i) => [item, i]));
  });

  it('the first failure stops new work and is thrown once the work already started has settled', async () => {
    const started: number[] = [];
    let settled = 0;
    const run = eachLimited(Array.from({ length: 10 }, (_, i) => i), 2, async (i) => {
      started.push(i);
      await tick();
      settled++;
      if (i === 0) throw new Error('first');
      if (i === 1) throw new Error('second');
    });
    await expect(run).rejects.toThrow('first');
    expect(started).toEqual([0, 1]);
    expect(settled).toBe(2);
  });
});
