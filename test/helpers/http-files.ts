/**
 * Files served over HTTP on 127.0.0.1 by a process of their own, for builders that fetch URLs while the
 * test waits on them synchronously (buildah through execFileSync would hold a server in the test's own
 * event loop, and wait for it forever).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** A served file: its bytes (base64 in transit) and, when given, its Last-Modified. */
export interface ServedFile {
  readonly body: Buffer;
  readonly lastModified?: string;
}

const SERVER = `
const { createServer } = require('node:http');
const files = JSON.parse(require('node:fs').readFileSync(process.argv[1], 'utf8'));
const server = createServer((req, res) => {
  const file = files[new URL(req.url, 'http://x').pathname];
  if (file === undefined) return void res.writeHead(404).end();
  const body = Buffer.from(file.body, 'base64');
  res.writeHead(200, { 'content-length': body.length, ...(file.lastModified ? { 'last-modified': file.lastModified } : {}) }).end(body);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

/** Serves `files` (by URL path) until `close`; `origin` is `http://127.0.0.1:<port>`. */
export async function serveFiles(files: Record<string, ServedFile>, manifest: string): Promise<{ origin: string; close: () => void }> {
  writeFileSync(manifest, JSON.stringify(Object.fromEntries(Object.entries(files).map(([path, f]) => [path, { body: f.body.toString('base64'), lastModified: f.lastModified }]))));
  return startServer(SERVER, manifest);
}

/** Runs a server script (which prints its port) in a process of its own. */
async function startServer(script: string, argument: string): Promise<{ origin: string; close: () => void }> {
  const child: ChildProcess = spawn(process.execPath, ['-e', script, argument], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the test's server exited (${code})`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
  return { origin: `http://127.0.0.1:${port.trim()}`, close: () => void child.kill() };
}

const DIRECTORY_SERVER = `
const { createServer } = require('node:http');
const { readFile } = require('node:fs');
const { join, normalize } = require('node:path');
const root = process.argv[1];
const server = createServer((req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
  if (path.includes('..')) return void res.writeHead(403).end();
  readFile(join(root, path), (error, body) => {
    if (error) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

/** Serves the files under `dir` as they are (what a git "dumb http" remote is) until `close`. */
export function serveDirectory(dir: string): Promise<{ origin: string; close: () => void }> {
  return startServer(DIRECTORY_SERVER, dir);
}
