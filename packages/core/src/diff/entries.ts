/**
 * Small pieces every producer of change sets shares: layer metadata as a tar entry, the content source of a
 * merged view's file, deletion markers, and hardlink sets written once then linked.
 */
import type { Entry } from '../entry.js';
import { HostLayer } from '../tree/host-layer.js';
import { TarLayer } from '../tree/tar-layer.js';
import type { NodeStat } from '../tree/layer-tree.js';
import type { ContentSource } from '../tar/writer.js';
import type { MergedView } from '../union/merged-view.js';
import { isOverlayXattr } from '../whiteout.js';

/**
 * What a diff says of a socket it leaves out (a socket has no tar form; Docker leaves them out too). One that
 * `replaced` something of the base becomes a deletion, so the replaced entry does not show through.
 */
export function socketWarning(replaced: boolean): string {
  return `skipping socket: sockets have no tar form${replaced ? '; what it replaced is deleted' : ''}`;
}

/** A layer's metadata as a tar entry: overlay-private xattrs dropped. Not for sockets (no tar form; callers skip them). */
export function entryFromStat(stat: NodeStat): Entry {
  // Built field by field (one object shape for every entry, no rest-spread copy), and the xattr map is
  // shared unless overlay markers have to come out of it: diffs make one of these per entry walked.
  const entry: { -readonly [K in keyof Entry]: Entry[K] } = {
    path: stat.path,
    type: stat.type === 'socket' ? 'fifo' : stat.type,
    mode: stat.mode,
    uid: stat.uid,
    gid: stat.gid,
    size: stat.size,
    mtime: stat.mtime,
    xattrs: withoutOverlayXattrs(stat.xattrs),
  };
  if (stat.linkname !== undefined) entry.linkname = stat.linkname;
  if (stat.devmajor !== undefined) entry.devmajor = stat.devmajor;
  if (stat.devminor !== undefined) entry.devminor = stat.devminor;
  if (stat.uname !== undefined) entry.uname = stat.uname;
  if (stat.gname !== undefined) entry.gname = stat.gname;
  return entry;
}

function withoutOverlayXattrs(xattrs: ReadonlyMap<string, Uint8Array>): ReadonlyMap<string, Uint8Array> {
  if (xattrs.size === 0) return xattrs;
  for (const name of xattrs.keys()) {
    if (isOverlayXattr(name)) return new Map([...xattrs].filter(([key]) => !isOverlayXattr(key)));
  }
  return xattrs;
}

/**
 * How to read a file of a view: a host path (a directory layer's file, or the range of a tarball layer's
 * file), which the writer copies straight into the output; else the layer's stream.
 */
export function contentOf(view: MergedView, path: string): ContentSource {
  const layer = view.layers[view.lookup(path)!.layer]!;
  if (layer instanceof HostLayer) return { kind: 'path', path: layer.hostPath(path) };
  const range = layer instanceof TarLayer ? layer.contentRange(path) : undefined;
  if (range !== undefined) return { kind: 'path', path: range.path, offset: range.offset };
  return { kind: 'stream', stream: layer.read(path) };
}

/** Deletion markers carry no time of their own: a fixed one keeps layers reproducible. */
const MARKER_TIME = { sec: 0, nsec: 0 };

/** An empty entry at `path`: the form of `.wh.` whiteouts and `.wh..wh..opq` markers. */
export function markerEntry(path: string): Entry {
  return { path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: MARKER_TIME, xattrs: new Map() };
}

/** Names sharing content: the first to be written carries it, later ones become hardlinks to it. */
export class HardlinkSets {
  readonly #first = new Map<string, string>();

  /** For a name of the set `key`: the name to link to, or undefined when this is the first (it carries the content). */
  claim(key: string | undefined, path: string): string | undefined {
    if (key === undefined) return undefined;
    const first = this.#first.get(key);
    if (first === undefined) this.#first.set(key, path);
    return first;
  }
}

/** `entry` as a hardlink to `linkname`. */
export function asHardlink(entry: Entry, linkname: string): Entry {
  return { ...entry, type: 'hardlink', size: 0, linkname };
}
