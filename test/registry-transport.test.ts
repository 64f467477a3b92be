/**
 * The transport's uploads from a source that fills one buffer again for each chunk (`readChunks`, as a push
 * reads its blobs): every chunk must be in the connection before the next is read, through a receiver that
 * reads slowly, and a receiver that answers without reading must end the upload and close the source.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readChunks } from '@strata/core';
import { Transport } from '../packages/registry/src/transport.js';
import { openOn } from './helpers/descriptors.js';

const work = mkdtempSync(join(tmpdir(), 'strata-transport-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A server on 127.0.0.1 answering each request with `handle`; closed after `use`. */
async function withServer<T>(handle: (req: IncomingMessage, res: ServerResponse) => void, use: (origin: string) => Promise<T>): Promise<T> {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await use(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('transport uploads', () => {
  const blob = randomBytes(9 * 1024 * 1024 + 77);
  const path = join(work, 'blob');
  writeFileSync(path, blob);
  const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

  it('sends each chunk of a source that reuses its buffer whole, to a receiver that reads slowly', async () => {
    const received = await withServer(
      (req, res) => {
        const hash = createHash('sha256');
        let size = 0;
        req.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          size += chunk.length;
          // Reads a piece, then nothing for a while: the connection's buffers fill and the sender waits.
          req.pause();
          setTimeout(() => req.resume(), 2);
        });
        req.on('end', () => res.end(JSON.stringify({ digest: hash.digest('hex'), size })));
      },
      async (origin) => {
        const response = await new Transport().send({ method: 'PUT', url: new URL('/upload', origin), headers: { 'content-length': String(blob.length) }, body: readChunks(path) });
        const chunks: Buffer[] = [];
        for await (const chunk of response.body) chunks.push(chunk as Buffer);
        return { status: response.status, ...(JSON.parse(Buffer.concat(chunks).toString()) as { digest: string; size: number }) };
      },
    );
    expect(received).toEqual({ status: 200, digest: sha256(blob), size: blob.length });
  });

  it('ends an upload the receiver answers without reading, and closes its source', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(413, { connection: 'close' }).end();
        res.socket?.destroySoon();
      },
      async (origin) => {
        const answer = await new Transport({ attempts: 1 })
          .send({ method: 'PUT', url: new URL('/upload', origin), headers: { 'content-length': String(blob.length) }, body: readChunks(path) })
          .then((response) => response.status, (error: { code?: string }) => error.code);
        // The answer, or the connection reset under the body's writes: either way the upload is over.
        expect([413, 'ECONNRESET', 'EPIPE']).toContain(answer);
        for (let waited = 0; openOn(path) > 0 && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
      },
    );
    expect(openOn(path)).toBe(0);
  });
});
