/**
 * `strata build --ssh ID=KEYFILE[,KEYFILE…]`: key files given where an agent's socket could be, as `docker
 * buildx build --ssh default=$HOME/.ssh/id_ed25519` takes them. strata forwards agents, so it starts one of its
 * own (OpenSSH's `ssh-agent`, its socket in a directory of mode 0700) holding those keys for the build, and
 * stops it after.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FailedPreconditionError } from '@strata/core';

/** An agent of the build's own: its socket, and what stops it. */
export interface KeyAgent {
  readonly socket: string;
  close(): void;
}

/** Starts an agent holding `keys` (paths of private keys without a passphrase). Throws FAILED_PRECONDITION. */
export async function agentWithKeys(keys: readonly string[]): Promise<KeyAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-ssh-'));
  const socket = join(dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  const close = () => {
    agent.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const started = await new Promise<boolean>((resolve) => {
      agent.once('error', () => resolve(false));
      void (async () => {
        for (let i = 0; i < 200 && agent.exitCode === null; i++) {
          if (existsSync(socket)) return resolve(true);
          await sleep(25);
        }
        resolve(false);
      })();
    });
    if (!started) throw new FailedPreconditionError('--ssh with key files needs OpenSSH\'s ssh-agent (apt-get install openssh-client)');
    for (const key of keys) {
      // No terminal and no askpass: a key with a passphrase fails here rather than waiting for one.
      const added = spawnSync('ssh-add', ['-q', key], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SSH_AUTH_SOCK: socket }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
      if (added.status !== 0) {
        throw new FailedPreconditionError(`--ssh: could not load the key ${key} (${added.stderr?.toString().trim() || `ssh-add exit status ${added.status}`}); one with a passphrase must be in an agent: ssh-add it and pass the agent's socket`);
      }
    }
    return { socket, close };
  } catch (error) {
    close();
    throw error;
  }
}
