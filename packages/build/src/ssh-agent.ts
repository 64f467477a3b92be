/**
 * `RUN --mount=type=ssh`: a socket of the step's own, in its bundle, that forwards each connection to an SSH
 * agent the build was given, as BuildKit forwards one through its session: the step gets the agent's
 * answers, never the agent's own socket, and the socket goes with the step.
 */
import { chmodSync, chownSync, statSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';

/** A forwarding socket; `release` closes it and every connection through it. */
export interface ForwardedAgent {
  readonly path: string;
  release(): void;
}

/** Listens at `path` (mode and owner as given), forwarding to the agent at `agent`. Throws when `agent` is no socket. */
export async function forwardAgent(agent: string, path: string, owner: { readonly mode: number; readonly uid: number; readonly gid: number }): Promise<ForwardedAgent> {
  if (!statSync(agent, { throwIfNoEntry: false })?.isSocket()) throw new Error(`${JSON.stringify(agent)} is not an SSH agent's socket`);
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(agent);
    const close = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('error', close);
      socket.on('close', close);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  try {
    chownSync(path, owner.uid, owner.gid);
    chmodSync(path, owner.mode);
  } catch (error) {
    server.close();
    throw error;
  }
  return {
    path,
    release: () => {
      server.close();
      for (const socket of open) socket.destroy();
    },
  };
}
