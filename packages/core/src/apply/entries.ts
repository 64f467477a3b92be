/**
 * Creating one entry of a layer in the target: files, directories, symlinks, hardlinks, devices and fifos,
 * with owner, mode, xattrs and times. What the host refuses of an entry's metadata is a policy decision
 * made here, in one place (see `EntryWriter.setXattrs`).
 */
import { LayerFormatError, UnsafePathError, UnsupportedError } from '../errors.js';
import type { Entry } from '../entry.js';
import { specialTypeBits } from '../mode.js';
import { ROOT } from '../path.js';
import { quote } from '../quote.js';
import { turn } from '../turns.js';
import { isOverlayXattr } from '../whiteout.js';
import { encodeRootlessOwner, ROOTLESS_OWNER_XATTR } from '../rootless-owner.js';
import type { EntryContent } from '../tar/reader.js';
import type { Deletions } from './deletions.js';
import type { ApplyState } from './state.js';
import type { ApplyTarget, HostKind, Owner } from './target.js';

const EMPTY = new Uint8Array(0);

/** Errno codes with which a file system refuses an xattr it does not take (namespace, value, size, type). */
const REFUSED_XATTR = new Set(['EPERM', 'EOPNOTSUPP', 'ENOTSUP', 'EINVAL', 'ENOSPC', 'E2BIG', 'ERANGE', 'EACCES']);

/** How owners and devices are treated, and where warnings go. */
export interface EntryPolicy {
  /**
   * `apply`: chown every entry. `record`: leave the caller's owner and report the layer's. `xattr`: as
   * `record`, and keep each owner other than root in the `user.rootlesscontainers` xattr.
   */
  readonly owners: 'apply' | 'record' | 'xattr';
  readonly devices: 'create' | 'skip' | 'refuse';
  /** What a refusal of a device adds (why, and the way round), when the caller did not ask for it. */
  readonly devicesRefused?: string;
  readonly warn: (message: string, path: string) => void;
  /**
   * True when a new entry with this owner would get it without a chown: the target started empty, is not
   * setgid, and the owner is the caller's (a rootless apply of a layer made by the same user).
   */
  readonly ownerIsDefault: (entry: Entry) => boolean;
}

/** An owner the layer asked for and a rootless apply reported instead of applying. */
export interface OwnerRecord {
  path: string;
  type: Entry['type'];
  uid: number;
  gid: number;
}

export class EntryWriter {
  readonly ownerRecords: OwnerRecord[] = [];
  readonly #clear: (path: string, kind: HostKind) => boolean;

  constructor(
    readonly target: ApplyTarget,
    readonly state: ApplyState,
    readonly deletions: Deletions,
    readonly policy: EntryPolicy,
  ) {
    this.#clear = (path, kind) => deletions.clearForDirectory(path, kind);
  }

  /** Resolves entry path `path` and makes its parent directories: the resolved path. */
  place(path: string): string {
    return this.target.place(path, this.#clear);
  }

  /** The owner to give `entry`, or undefined when there is nothing to change (recorded instead, rootless). */
  #ownerFor(entry: Entry): Owner {
    if (this.policy.owners !== 'apply') {
      if (entry.uid !== 0 || entry.gid !== 0) this.ownerRecords.push({ path: entry.path, type: entry.type, uid: entry.uid, gid: entry.gid });
      return undefined;
    }
    return this.policy.ownerIsDefault(entry) ? undefined : entry;
  }

  /**
   * The entry's xattrs, after its owner (a chown clears `security.capability`). Overlay markers are dropped:
   * a layer cannot forge them. With `owners: 'xattr'`, an owner other than root is recorded in
   * `user.rootlesscontainers` (and a layer's own record dropped). An xattr the target's file system refuses
   * (a namespace it does not know, `user.*` on a symlink or device, an invalid capability, a value too
   * large) is skipped with a warning, as GNU tar does; any other failure fails the apply.
   */
  #setXattrs(path: string, entry: Entry): void {
    const recording = this.policy.owners === 'xattr';
    const ownerRecord = recording ? encodeRootlessOwner(entry.uid, entry.gid, entry.path) : undefined;
    if (entry.xattrs.size === 0 && ownerRecord === undefined) return;
    for (const [name, value] of entry.xattrs) {
      if (isOverlayXattr(name)) {
        this.policy.warn(`dropping overlay xattr ${quote(name)}: a layer cannot set overlayfs markers`, entry.path);
        continue;
      }
      if (name === ROOTLESS_OWNER_XATTR && recording) {
        // umoci's rootless unpack drops it too: here the record is the entry's owner, not the layer's word.
        this.policy.warn(`dropping the layer's ${quote(name)} xattr: a rootless apply records the entry's own owner there`, entry.path);
        continue;
      }
      this.#setXattr(path, entry, name, value);
    }
    if (ownerRecord !== undefined) this.#setXattr(path, entry, ROOTLESS_OWNER_XATTR, ownerRecord);
  }

  #setXattr(path: string, entry: Entry, name: string, value: Uint8Array): void {
    try {
      this.target.setXattr(path, name, value);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (!REFUSED_XATTR.has(code)) throw error;
      this.policy.warn(`xattr ${quote(name)} not set: the file system refused it (${code})`, entry.path);
    }
  }

  /** An existing directory given to root: the owner record an earlier apply left on it goes. */
  #clearOwnerRecord(path: string, entry: Entry): void {
    if (this.policy.owners === 'xattr' && entry.uid === 0 && entry.gid === 0) this.target.removeXattr(path, ROOTLESS_OWNER_XATTR);
  }

  /** The layer's entry for the root directory: owner and xattrs now, mode and times at the end. */
  root(entry: Entry): void {
    if (entry.type !== 'directory') throw new LayerFormatError('the layer root must be a directory', { path: ROOT });
    const owner = this.#ownerFor(entry);
    if (owner !== undefined) this.target.setAttrs(ROOT, { owner });
    this.#clearOwnerRecord(ROOT, entry);
    this.#setXattrs(ROOT, entry);
    this.state.directories.set(ROOT, entry);
  }

  /**
   * Puts `entry` at resolved path `path`, replacing what stands there (the last entry for a path wins). A
   * promise only while a file's content streams in: everything else, small files included, is done on return
   * (thousands of entries a layer, each spared its promises).
   */
  create(entry: Entry, body: EntryContent, path: string): Promise<void> | undefined {
    const existing = this.target.kind(path);
    this.state.replaced(path, existing !== undefined);
    if (entry.type === 'directory') {
      this.#directory(entry, path, existing);
      return undefined;
    }
    if (existing !== undefined) this.target.remove(path, existing);
    switch (entry.type) {
      case 'file':
        return this.#file(entry, body, path);
      case 'symlink':
        this.target.symlink(path, entry.linkname!);
        // Times with the owner: xattrs set after them (a chown would clear a capability) leave mtime alone.
        this.target.setAttrs(path, { owner: this.#ownerFor(entry), mtime: entry.mtime });
        this.#setXattrs(path, entry);
        break;
      case 'hardlink': {
        // A tar hardlink names an entry of its own layer, which may still be to come: until the layer has
        // put its target in place, link at the end, to the layer's entry if it came, else to what was below.
        // A target path that cannot be resolved yet (a symlink loop a later entry may replace) waits too; at
        // the end it is resolved again, and refused if it still cannot be.
        const linkTarget = this.#resolvedNow(entry.linkname!);
        if (linkTarget === undefined || !this.state.isTouched(linkTarget) || !this.#link(entry, path)) this.state.links.set(path, entry);
        break;
      }
      case 'char':
      case 'block':
      case 'fifo': {
        if (entry.type !== 'fifo' && this.policy.devices !== 'create') {
          if (this.policy.devices === 'refuse') {
            throw new UnsupportedError(`device nodes are not permitted here: ${quote(entry.path)}${this.policy.devicesRefused ?? ''}`, { path: entry.path });
          }
          this.#skipDevice(entry, path, `${entry.type} device ${entry.devmajor ?? 0}:${entry.devminor ?? 0} not made`);
          break;
        }
        this.target.mknod(path, specialTypeBits(entry.type), 0o600, entry.devmajor ?? 0, entry.devminor ?? 0);
        this.target.setAttrs(path, { owner: this.#ownerFor(entry), mode: entry.mode, mtime: entry.mtime });
        this.#setXattrs(path, entry);
        break;
      }
    }
    return undefined;
  }

  #directory(entry: Entry, path: string, existing: HostKind | undefined): void {
    if (existing !== 'directory') {
      if (existing !== undefined) this.target.remove(path, existing);
      this.target.mkdir(path, 0o700); // its mode at the end: until then the apply must be able to write in it
      // Deleted and re-created, or made where a deletion stood: nothing below may show through.
      if (existing === 'whiteout' || this.state.whitedOut.has(path)) this.deletions.recreated(path);
    } else {
      this.#clearOwnerRecord(path, entry);
    }
    const owner = this.#ownerFor(entry);
    if (owner !== undefined) this.target.setAttrs(path, { owner });
    this.#setXattrs(path, entry);
    this.state.directories.set(path, entry);
  }

  /**
   * A parent directory the layer does not name, made where the layers below have it (overlay layout): it
   * gets their directory's owner, xattrs, mode and times, as the kernel's copy-up would, so the merged view
   * shows the directory as it was.
   */
  implicitDirectory(path: string, below: Entry): void {
    if (this.policy.owners === 'apply' && !this.policy.ownerIsDefault(below)) this.target.setAttrs(path, { owner: below });
    // The host's xattrs, not a layer's (overlay markers already left out), an owner record included: copied as they are.
    for (const [name, value] of below.xattrs) this.#setXattr(path, below, name, value);
    this.state.directories.set(path, below);
  }

  /** A file: when the reader holds all its content (most files), created and finished in one native call. */
  #file(entry: Entry, body: EntryContent, path: string): Promise<void> | undefined {
    const whole = body.takeBuffered();
    if (whole === undefined) return this.#streamedFile(entry, body, path);
    this.target.writeFile(path, whole, entry.mode, this.#ownerFor(entry), entry.mtime);
    this.#setXattrs(path, entry); // xattrs leave mtime alone
    return undefined;
  }

  /**
   * A file whose content is not all in the reader's current chunk, written as it comes in. Never empty: an
   * empty file's content is always held.
   */
  async #streamedFile(entry: Entry, body: EntryContent, path: string): Promise<void> {
    const chunks = body[Symbol.asyncIterator]();
    const first = await chunks.next();
    const owner = this.#ownerFor(entry);
    await this.target.writeFileFrom(path, chunks, first.done === true ? EMPTY : first.value, entry.mode, owner, entry.mtime);
    this.#setXattrs(path, entry);
  }

  /** `path` resolved in the target as it stands, or undefined when it cannot be (UNSAFE_PATH) for now. */
  #resolvedNow(path: string): string | undefined {
    try {
      return this.target.resolve(path);
    } catch (error) {
      if (error instanceof UnsafePathError) return undefined;
      throw error;
    }
  }

  /**
   * A device the policy leaves out (`devices: 'skip'`): nothing stands at `path` (what stood there went when
   * the entry replaced it) and nothing below shows through; links to it are left out too.
   */
  #skipDevice(entry: Entry, path: string, what: string): void {
    this.deletions.absent(path);
    this.state.skippedDevices.add(path);
    this.policy.warn(`${what}: devices are skipped here`, entry.path);
  }

  /**
   * Links hardlink `entry` at `path` to what its target names now: false when nothing (linkable) is there.
   * A link to a skipped device is skipped with it.
   */
  #link(entry: Entry, path: string): boolean {
    const target = this.target.resolve(entry.linkname!);
    const kind = this.target.kind(target);
    if (kind === undefined || kind === 'whiteout') {
      if (this.state.skippedDevices.size === 0 || !this.state.skippedDevices.has(target)) return false;
      this.#skipDevice(entry, path, `hardlink to the skipped device ${quote(entry.linkname!)} not made`);
      return true;
    }
    if (kind === 'directory') throw new LayerFormatError(`hardlink to a directory: ${quote(entry.path)} -> ${quote(entry.linkname!)}`, { path: entry.path });
    if (target === path) throw new LayerFormatError(`hardlink to itself: ${quote(entry.path)}`, { path: entry.path });
    this.target.link(target, path);
    return true;
  }

  /**
   * The deferred work, once every entry is in place: hardlinks whose target came later (in rounds, so that
   * a chain `a -> b -> c` with `c` last resolves), then directory modes and times. Paths a later entry
   * replaced were dropped from both (see `ApplyState`).
   */
  async finish(): Promise<void> {
    const pending = this.state.links;
    for (let progress = true; progress && pending.size > 0; ) {
      progress = false;
      for (const [path, entry] of pending) {
        if (this.target.kind(path) !== undefined) {
          pending.delete(path); // cannot happen: a later entry at this path dropped the link
          continue;
        }
        if (this.#link(entry, path)) {
          pending.delete(path);
          progress = true;
        }
      }
    }
    for (const entry of pending.values()) {
      throw new LayerFormatError(`hardlink target not found: ${quote(entry.path)} -> ${quote(entry.linkname!)}`, { path: entry.path });
    }
    // A layer has thousands of directories: the loop takes its turns (see `turn`) like the entries did.
    for (const [path, entry] of this.state.directories) {
      this.target.setAttrs(path, { mode: entry.mode, mtime: entry.mtime });
      const wait = turn();
      if (wait) await wait;
    }
  }
}
