/**
 * The `user.rootlesscontainers` xattr: where a rootless unpack keeps an owner it cannot give (umoci's, as
 * rootlesscontainers.io defines it). Its value is a protobuf message `Resource { uint32 uid = 1; uint32 gid
 * = 2; }`; 0xFFFFFFFF in a field means "the file's own", which umoci writes for a root owner so that only
 * the other half is recorded, and a file owned 0:0 carries no record at all.
 */
import { UnsupportedError } from './errors.js';
import { quote } from './quote.js';

export const ROOTLESS_OWNER_XATTR = 'user.rootlesscontainers';

/** The field value that stands for the file's own id. */
const OWN_ID = 0xffffffff;

/** An owner as a record holds it: undefined where it says "the file's own". */
export interface RecordedOwner {
  readonly uid: number | undefined;
  readonly gid: number | undefined;
}

/** The xattr's value for owner `uid:gid`, or undefined for root's (which needs no record). */
export function encodeRootlessOwner(uid: number, gid: number, path: string): Uint8Array | undefined {
  if (uid === 0 && gid === 0) return undefined;
  for (const id of [uid, gid]) {
    if (!Number.isInteger(id) || id < 0 || id >= OWN_ID) throw new UnsupportedError(`${quote(path)} belongs to ${uid}:${gid}, which a rootless owner record cannot hold`, { path });
  }
  const bytes: number[] = [];
  field(bytes, 1, uid === 0 ? OWN_ID : uid);
  field(bytes, 2, gid === 0 ? OWN_ID : gid);
  return Uint8Array.from(bytes);
}

/** A varint field of a protobuf message. */
function field(out: number[], number: number, value: number): void {
  out.push(number << 3);
  for (; value >= 0x80; value = Math.floor(value / 0x80)) out.push((value % 0x80) | 0x80);
  out.push(value);
}

/**
 * The owner `value` records. A field the message leaves out is 0, as proto3 reads it; fields it does not
 * know are skipped. Throws UNSUPPORTED, naming `path`, for bytes that are no such message.
 */
export function decodeRootlessOwner(value: Uint8Array, path: string): RecordedOwner {
  const malformed = () => new UnsupportedError(`${quote(path)}: its ${ROOTLESS_OWNER_XATTR} xattr is not a rootless owner record`, { path });
  let uid = 0;
  let gid = 0;
  let at = 0;
  const varint = (): number => {
    let result = 0;
    for (let scale = 1; at < value.length && scale <= 2 ** 63; scale *= 0x80) {
      const byte = value[at++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result;
    }
    throw malformed();
  };
  while (at < value.length) {
    const key = varint();
    const wireType = key % 8;
    const number = Math.floor(key / 8);
    if (number === 0 || ((number === 1 || number === 2) && wireType !== 0)) throw malformed();
    if (wireType === 0) {
      const n = varint();
      if (number === 1 || number === 2) {
        if (n > OWN_ID) throw malformed(); // a uint32 field: larger values are no owner
        if (number === 1) uid = n;
        else gid = n;
      }
    } else if (wireType === 1 || wireType === 5) {
      at += wireType === 1 ? 8 : 4;
    } else if (wireType === 2) {
      const length = varint(); // read before `at` is: the read moves it
      at += length;
    } else {
      throw malformed();
    }
    if (at > value.length) throw malformed();
  }
  return { uid: uid === OWN_ID ? undefined : uid, gid: gid === OWN_ID ? undefined : gid };
}
