/**
 * A proxy that injects faults between a client and a real registry: each request is matched against the
 * rules in order, and the first with tries left does its fault instead of (or on top of) a faithful
 * forward. Everything it saw is kept for assertions.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type Fault =
  /** Answer this status (with `Retry-After` when given), not asking the registry. */
  | { kind: 'status'; status: number; retryAfter?: string }
  /** Forward the headers and half the body, then reset the connection. */
  | { kind: 'drop-mid' }
  /** Forward the headers and half the body, then close the connection cleanly (a body cut short). */
  | { kind: 'short' }
  /** Forward the headers, then send nothing more. */
  | { kind: 'stall' }
  /** Forward everything with one byte of the body changed. */
  | { kind: 'flip' }
  /** Forward without the client's `Range` (the registry answers 200 with the whole blob). */
  | { kind: 'ignore-range' }
  /** Forward the request, then reset the connection instead of answering (the registry did the work). */
  | { kind: 'lose-response' }
  /** Answer 307 to this URL. */
  | { kind: 'redirect'; location: (path: string) => string };

export interface Rule {
  method?: string;
  /** Matches the request path (query included). */
  path: RegExp;
  fault: Fault;
  /** How many requests it applies to (default 1). */
  times?: number;
}

export interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  fault?: Fault['kind'];
}

export class FaultProxy {
  readonly seen: Seen[] = [];
  rules: Rule[] = [];
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly server: Server,
    /** `127.0.0.1:<port>`. */
    readonly host: string,
  ) {}

  static async start(upstream: string): Promise<FaultProxy> {
    let self: FaultProxy;
    const server = createServer((req, res) => self.#handle(upstream, req, res));
    server.on('connection', (socket) => {
      self.#sockets.add(socket);
      socket.on('close', () => self.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new FaultProxy(server, `127.0.0.1:${(server.address() as { port: number }).port}`);
    return self;
  }

  #take(req: IncomingMessage): Fault | undefined {
    for (const rule of this.rules) {
      if ((rule.times ?? 1) <= 0) continue;
      if (rule.method !== undefined && rule.method !== req.method) continue;
      if (!rule.path.test(req.url ?? '')) continue;
      rule.times = (rule.times ?? 1) - 1;
      return rule.fault;
    }
    return undefined;
  }

  #handle(upstream: string, req: IncomingMessage, res: ServerResponse): void {
    const fault = this.#take(req);
    this.seen.push({ method: req.method!, path: req.url!, headers: req.headers, ...(fault ? { fault: fault.kind } : {}) });
    if (fault?.kind === 'status') {
      req.resume();
      res.writeHead(fault.status, { 'content-length': '0', ...(fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {}) }).end();
      return;
    }
    if (fault?.kind === 'redirect') {
      req.resume();
      res.writeHead(307, { location: fault.location(req.url!), 'content-length': '0' }).end();
      return;
    }
    // The Host header stays the proxy's: the registry builds upload locations from it, so they lead back here.
    const headers = { ...req.headers };
    if (fault?.kind === 'ignore-range') delete headers.range;
    const forward = request({ host: upstream.split(':')[0], port: Number(upstream.split(':')[1]), method: req.method, path: req.url, headers }, (up) => {
      if (fault?.kind === 'lose-response') {
        up.resume();
        up.on('end', () => req.socket.destroy());
        return;
      }
      res.writeHead(up.statusCode!, up.headers);
      const length = Number(up.headers['content-length']);
      let sent = 0;
      up.on('data', (chunk: Buffer) => {
        if (fault === undefined || fault.kind === 'ignore-range') {
          res.write(chunk);
          return;
        }
        const half = Math.floor(length / 2);
        if (fault.kind === 'flip') {
          if (sent <= half && half < sent + chunk.length) chunk[half - sent] = chunk[half - sent]! ^ 0xff;
          res.write(chunk);
        } else if (sent < half) {
          res.write(chunk.subarray(0, Math.min(chunk.length, half - sent)));
          if (sent + chunk.length >= half) {
            up.destroy();
            if (fault.kind === 'drop-mid') setTimeout(() => req.socket.resetAndDestroy(), 20);
            else if (fault.kind === 'short') setTimeout(() => req.socket.end(), 20);
            // stall: nothing more, ever
          }
        }
        sent += chunk.length;
      });
      up.on('end', () => {
        if (fault === undefined || fault.kind === 'flip' || fault.kind === 'ignore-range') res.end();
      });
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  }

  /** Requests seen matching `method` and `path`. */
  requests(method: string, path: RegExp): Seen[] {
    return this.seen.filter((s) => s.method === method && path.test(s.path));
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
