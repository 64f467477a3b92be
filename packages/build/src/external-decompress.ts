/**
 * The archive formats ADD unpacks that Node cannot read (bzip2 and xz), through the system's `bzip2` and `xz`,
 * as BuildKit's unpack (moby's archive package) runs `xz` itself: recognised by their magic numbers, read as
 * a stream (the tool's stdout, fed from the file as it drains), a failure being the tool's message.
 */
import { spawn } from 'node:child_process';
import { LayerFormatError, UnsupportedError } from '@strata/core';

export type ExternalFormat = 'bzip2' | 'xz';

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const BZIP2_BLOCK = Buffer.from([0x31, 0x41, 0x59, 0x26, 0x53, 0x59]);

/** The format `head` (a file's first bytes) starts with, if it is one of these. */
export function externalFormat(head: Uint8Array): ExternalFormat | undefined {
  const bytes = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (bytes.subarray(0, 6).equals(XZ_MAGIC)) return 'xz';
  if (bytes.subarray(0, 3).toString('latin1') === 'BZh' && bytes[3]! >= 0x31 && bytes[3]! <= 0x39 && bytes.subarray(4, 10).equals(BZIP2_BLOCK)) return 'bzip2';
  return undefined;
}

const TOOL: Readonly<Record<ExternalFormat, { command: string; apt: string }>> = { xz: { command: 'xz', apt: 'xz-utils' }, bzip2: { command: 'bzip2', apt: 'bzip2' } };

function missing(format: ExternalFormat): UnsupportedError {
  return new UnsupportedError(`unpacking a ${format} archive needs ${TOOL[format].command} (apt-get install ${TOOL[format].apt})`);
}

/** `chunks` inflated by the tool, as a stream. Throws UNSUPPORTED without the tool, LAYER_FORMAT with its message on bad input. */
export async function* inflate(format: ExternalFormat, chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const child = spawn(TOOL[format].command, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const errors: Buffer[] = [];
  child.stderr.on('data', (chunk: Buffer) => errors.push(chunk));
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', (error) => reject((error as NodeJS.ErrnoException).code === 'ENOENT' ? missing(format) : error));
    child.once('close', (code) => resolve(code ?? 1));
  });
  exited.catch(() => {}); // seen below
  // Fed as the tool drains its input, in the background; an early exit (bad data) ends the feeding.
  const feeding = (async () => {
    try {
      for await (const chunk of chunks) {
        if (!child.stdin.write(chunk)) await new Promise<void>((resolve) => child.stdin.once('drain', resolve).once('close', resolve));
        if (child.stdin.destroyed) return;
      }
    } finally {
      child.stdin.end();
    }
  })();
  child.stdin.on('error', () => {}); // EPIPE after the tool gave up: its exit status says why
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    await feeding;
    const code = await exited;
    if (code !== 0) throw new LayerFormatError(`${TOOL[format].command}: ${Buffer.concat(errors).toString().trim() || `exit status ${code}`}`);
  } finally {
    if (child.exitCode === null) child.kill();
  }
}
