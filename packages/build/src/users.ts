/**
 * `USER` and `--chown` names resolved as a container resolves them: through the image's own `/etc/passwd`
 * and `/etc/group`, read inside the container's tree (never the host's).
 */
import type { WritableLayer } from '@strata/core';

export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  /** The groups that list the user by name. */
  readonly additionalGids: number[];
  readonly home: string | undefined;
}

/** The lines of a colon-separated database file, or none when the image lacks it. */
async function database(layer: WritableLayer, path: string): Promise<string[][]> {
  try {
    const text = (await layer.readFile(path, 'utf8')) as string;
    return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

/**
 * Resolves `user[:group]` (names or numbers). A name's group is its primary one (`user:` too). A number
 * alone is, for `USER`, the passwd entry's group where there is one (else 0), as a runtime gives it; for
 * `--chown` (`chown`), its own number as the group, as Docker, BuildKit and buildah give it. Throws Error
 * naming what is missing.
 */
export async function resolveUser(layer: WritableLayer, spec: string, { chown = false }: { chown?: boolean } = {}): Promise<ResolvedUser> {
  const [userPart = '', groupPart] = spec.split(':', 2);
  const passwd = await database(layer, '/etc/passwd');
  const groups = await database(layer, '/etc/group');
  let uid: number;
  let gid: number | undefined;
  let name: string | undefined;
  let home: string | undefined;
  const entry = /^\d+$/.test(userPart) ? passwd.find((f) => f[2] === userPart) : passwd.find((f) => f[0] === userPart);
  if (/^\d+$/.test(userPart)) uid = Number(userPart);
  else if (entry) uid = Number(entry[2]);
  else throw new Error(`user ${JSON.stringify(userPart)} is not in the image's /etc/passwd`);
  if (entry) {
    name = entry[0];
    gid = Number(entry[3]);
    home = entry[5];
  }
  if (chown && /^\d+$/.test(userPart)) gid = uid;
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const group = groups.find((f) => f[0] === groupPart);
      if (!group) throw new Error(`group ${JSON.stringify(groupPart)} is not in the image's /etc/group`);
      gid = Number(group[2]);
    }
  }
  const additionalGids = name === undefined || groupPart !== undefined ? [] : groups.filter((f) => (f[3] ?? '').split(',').includes(name!)).map((f) => Number(f[2]));
  return { uid, gid: gid ?? 0, additionalGids, home };
}
