// `node context-hash.mjs <dir> [runs]`: the build context checksum pass (every regular file under <dir> read
// and hashed, 16 files in flight, 1 MiB buffers, as @strata/build does) with sha256 (Node's OpenSSL) and with
// xxh64 (xxhash-wasm, the user's pick), on a warm page cache; prints each one's median seconds and MB/s.
// What chose the checksum the build cache uses.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import xxhash from 'xxhash-wasm';

const [dir, runsText = '3'] = process.argv.slice(2);
const files = [];
let bytes = 0;
(function walk(d) {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.isFile()) files.push(p);
  }
})(dir);

const { create64 } = await xxhash();
const algorithms = {
  sha256: () => {
    const h = createHash('sha256');
    return { update: (b) => h.update(b), digest: () => h.digest('hex') };
  },
  xxh64: () => {
    const h = create64();
    return { update: (b) => h.update(b), digest: () => h.digest().toString(16) };
  },
};

async function pass(make) {
  let next = 0;
  let total = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      const buffer = Buffer.allocUnsafe(1024 * 1024);
      while (next < files.length) {
        const handle = await open(files[next++], 'r');
        const h = make();
        for (;;) {
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
          if (bytesRead === 0) break;
          h.update(buffer.subarray(0, bytesRead));
          total += bytesRead;
        }
        h.digest();
        await handle.close();
      }
    }),
  );
  return total;
}

await pass(algorithms.sha256); // warms the page cache
for (const [name, make] of Object.entries(algorithms)) {
  const times = [];
  for (let i = 0; i < Number(runsText); i++) {
    const t = performance.now();
    bytes = await pass(make);
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  console.log(`${name}: ${median.toFixed(3)} s for ${files.length} files, ${(bytes / 1e6).toFixed(0)} MB (${(bytes / 1e6 / median).toFixed(0)} MB/s)`);
}
