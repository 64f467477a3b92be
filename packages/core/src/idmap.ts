/**
 * Id maps: how a host's file owners appear inside a user namespace, as the OCI runtime spec writes them
 * (`linux.uidMappings`). A rootless build writes every file as its caller, whom its containers see as root:
 * written through a map, its layers carry the owners its containers saw, not the host's.
 */
import { UnsupportedError } from './errors.js';
import type { Entry } from './entry.js';
import { quote } from './quote.js';
import { baseName } from './path.js';
import { WHITEOUT_PREFIX } from './whiteout.js';
import { decodeRootlessOwner, ROOTLESS_OWNER_XATTR } from './rootless-owner.js';

/** One range of ids: `size` host ids from `hostID` are the namespace's ids from `containerID`. */
export interface IdMapping {
  readonly containerID: number;
  readonly hostID: number;
  readonly size: number;
}

/** The ranges for user and group ids. */
export interface IdMap {
  readonly uids: readonly IdMapping[];
  readonly gids: readonly IdMapping[];
}

/** The map of a rootless caller: its own user and group are root's, and no other id exists. */
export function callerAsRoot(uid: number, gid: number): IdMap {
  return { uids: [{ containerID: 0, hostID: uid, size: 1 }], gids: [{ containerID: 0, hostID: gid, size: 1 }] };
}

/**
 * This process's map as strata's rootless model has it: without root, the caller is root in its containers
 * (`callerAsRoot` of the effective ids); as root, there is none.
 */
export function processIdMap(): IdMap | undefined {
  if (typeof process.geteuid !== 'function' || process.geteuid() === 0) return undefined;
  return callerAsRoot(process.geteuid(), process.getegid!());
}

/** The namespace's id for host id `id`, or undefined when the map has none. */
export function toContainerId(mappings: readonly IdMapping[], id: number): number | undefined {
  for (const m of mappings) if (id >= m.hostID && id < m.hostID + m.size) return m.containerID + (id - m.hostID);
  return undefined;
}

/** The host's id for the namespace's id `id`, or undefined when the map has none. */
export function toHostId(mappings: readonly IdMapping[], id: number): number | undefined {
  for (const m of mappings) if (id >= m.containerID && id < m.containerID + m.size) return m.hostID + (id - m.containerID);
  return undefined;
}

/**
 * The owner the namespace sees for a file the host has as `uid:gid`, with `record` the file's
 * `user.rootlesscontainers` xattr if it has one (see `ROOTLESS_OWNER_XATTR`): the owner a rootless unpack
 * could not give is the record's, as umoci's rootless repack reads it. Undefined when the map lacks a host
 * id; throws UNSUPPORTED for a record that is no owner record.
 */
export function containerOwner(uid: number, gid: number, record: Uint8Array | undefined, map: IdMap, path: string): { uid: number; gid: number } | undefined {
  const mappedUid = toContainerId(map.uids, uid);
  const mappedGid = toContainerId(map.gids, gid);
  if (mappedUid === undefined || mappedGid === undefined) return undefined;
  if (record === undefined) return { uid: mappedUid, gid: mappedGid };
  const recorded = decodeRootlessOwner(record, path);
  return { uid: recorded.uid ?? mappedUid, gid: recorded.gid ?? mappedGid };
}

/**
 * `entry` with its owner as the namespace sees it (`containerOwner`), its owner record left out of the
 * entry: a file a rootless root holds for uid 100 is uid 100's in the layer. Throws UNSUPPORTED for an owner
 * outside the map (the namespace has no name for it: the kernel shows such files as the overflow id, which
 * would silently change an owner) and for a record that is no owner record.
 */
export function mapEntryOwner(entry: Entry, map: IdMap): Entry {
  // Whiteouts and opaque markers are made by the writer (root's, as every layer has them), not read from the host.
  if (baseName(entry.path).startsWith(WHITEOUT_PREFIX)) return entry;
  const record = entry.xattrs.size === 0 ? undefined : entry.xattrs.get(ROOTLESS_OWNER_XATTR);
  const owner = containerOwner(entry.uid, entry.gid, record, map, entry.path);
  if (owner === undefined) {
    throw new UnsupportedError(`${quote(entry.path)} belongs to ${entry.uid}:${entry.gid}, which the id map does not map`, { path: entry.path });
  }
  if (record === undefined) return owner.uid === entry.uid && owner.gid === entry.gid ? entry : { ...entry, ...owner };
  const xattrs = new Map(entry.xattrs);
  xattrs.delete(ROOTLESS_OWNER_XATTR);
  return { ...entry, ...owner, xattrs };
}
