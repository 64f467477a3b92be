/**
 * Real registries for the tests and benchmarks: Debian's `docker-registry` (the distribution project's
 * server), started on 127.0.0.1 with a config written here, in one of three modes: anonymous, htpasswd
 * basic auth, or token auth against a small token server run here (RS256 tokens signed with a key whose
 * self-signed certificate the registry trusts). Its access log is kept for assertions.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';

export type RegistryAuth = 'none' | 'basic' | 'token';

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const base64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/** A token server for distribution's token auth: checks basic credentials, grants what is asked. */
class TokenServer {
  readonly requests: { scope: string[]; user: string | undefined }[] = [];

  private constructor(
    readonly server: Server,
    readonly url: string,
  ) {}

  static async start(dir: string, users: Record<string, string>): Promise<{ server: TokenServer; certPath: string }> {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyPath = join(dir, 'token.key');
    writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const certPath = join(dir, 'token.crt');
    execFileSync('openssl', ['req', '-new', '-x509', '-key', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=strata-test-token-issuer'], { stdio: 'ignore' });
    const certDer = Buffer.from(readFileSync(certPath, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const port = await freePort();
    let self: TokenServer;
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
      const auth = req.headers.authorization;
      let user: string | undefined;
      if (auth?.startsWith('Basic ')) {
        const [name, password] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
        if (users[name!] !== password) {
          res.writeHead(401).end();
          return;
        }
        user = name;
      }
      const scopes = url.searchParams.getAll('scope');
      self.requests.push({ scope: scopes, user });
      if (user === undefined) {
        res.writeHead(401).end(); // this registry has no anonymous access
        return;
      }
      const access = scopes.map((s) => {
        const [type, ...rest] = s.split(':');
        const actions = rest.pop()!.split(',');
        return { type, name: rest.join(':'), actions };
      });
      const now = Math.floor(Date.now() / 1000);
      const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
      const claims = { iss: 'strata-test', sub: user, aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
      const signing = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
      const signature = createSign('RSA-SHA256').update(signing).sign(privateKey);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${signing}.${base64url(signature)}`, expires_in: 300 }));
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    self = new TokenServer(server, `http://127.0.0.1:${port}/token`);
    return { server: self, certPath };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A running docker-registry. */
export class TestRegistry {
  readonly #process: ChildProcess;
  readonly #log: string;
  readonly #token: TokenServer | undefined;

  private constructor(
    process: ChildProcess,
    /** `127.0.0.1:<port>`: what references name. */
    readonly host: string,
    readonly auth: RegistryAuth,
    log: string,
    token: TokenServer | undefined,
    /** The user and password the registry accepts (basic and token modes). */
    readonly user = 'strata',
    readonly password = 'test-password',
  ) {
    this.#process = process;
    this.#log = log;
    this.#token = token;
  }

  static async start(dir: string, auth: RegistryAuth = 'none'): Promise<TestRegistry> {
    mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const user = 'strata';
    const password = 'test-password';
    const lines = ['version: 0.1', 'log:', '  level: info', '  accesslog:', '    disabled: false', 'storage:', `  filesystem:`, `    rootdirectory: ${join(dir, 'data')}`, '  delete:', '    enabled: true', 'http:', `  addr: 127.0.0.1:${port}`, `  secret: ${randomBytes(16).toString('hex')}`];
    let token: TokenServer | undefined;
    if (auth === 'basic') {
      const htpasswd = join(dir, 'htpasswd');
      writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', user, password]));
      lines.push('auth:', '  htpasswd:', '    realm: strata-test', `    path: ${htpasswd}`);
    } else if (auth === 'token') {
      const started = await TokenServer.start(dir, { [user]: password });
      token = started.server;
      lines.push('auth:', '  token:', `    realm: ${token.url}`, '    service: strata-test-registry', '    issuer: strata-test', `    rootcertbundle: ${started.certPath}`);
    }
    writeFileSync(join(dir, 'config.yml'), `${lines.join('\n')}\n`);
    const log = join(dir, 'registry.log');
    const fd = openSync(log, 'w');
    const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    process.once('exit', () => child.kill('SIGKILL'));
    const registry = new TestRegistry(child, `127.0.0.1:${port}`, auth, log, token, user, password);
    for (let waited = 0; ; waited += 50) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited at start-up:\n${readFileSync(log, 'utf8').slice(-2000)}`);
      if (await listening(port)) return registry;
      if (waited > 20_000) throw new Error('docker-registry did not listen within 20 s');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The registry's log so far (its access log lines included). */
  log(): string {
    return readFileSync(this.#log, 'utf8');
  }

  /** Request lines of the access log (`METHOD path status`), in order. */
  requests(): string[] {
    const out: string[] = [];
    for (const line of this.log().split('\n')) {
      const m = /"(GET|HEAD|POST|PUT|PATCH|DELETE) ([^ "]+) HTTP\/[\d.]+" (\d{3})/.exec(line);
      if (m) out.push(`${m[1]} ${m[2]} ${m[3]}`);
    }
    return out;
  }

  /** Token requests the token server saw (token mode). */
  tokenRequests(): { scope: string[]; user: string | undefined }[] {
    return this.#token?.requests ?? [];
  }

  /** skopeo's flags for this registry as a source or destination. */
  skopeoFlags(side: 'src' | 'dest'): string[] {
    return [`--${side}-tls-verify=false`, ...(this.auth === 'none' ? [] : [`--${side}-creds`, `${this.user}:${this.password}`])];
  }

  async stop(): Promise<void> {
    this.#process.kill('SIGTERM');
    await this.#token?.close();
  }
}
