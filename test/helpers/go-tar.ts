/**
 * Go's archive/tar as an oracle: the reader under containerd and moby, which strata means to read layers as
 * (see `packages/core/src/tar/reader.ts`). A small lister is built once with the machine's Go toolchain
 * (Debian's golang-go, standard library only, nothing fetched) and prints what `tar.Reader` makes of an
 * archive. Go's own test corpus of tricky archives ships with it (`goTarCorpus`).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { EntryType } from '@strata/core';
import { goProgram, goRoot } from './go-program.js';

export interface GoEntry {
  name: string;
  /** The type flag as Go returns it (Go turns the old `\0` into `0` or `5`). */
  typeflag: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  sec: number;
  nsec: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.*` records, values in base64. */
  xattrs: Record<string, string>;
  /**
   * `LIBARCHIVE.xattr.*` records, which Go's reader keeps among the PAX records but does not take for xattrs:
   * names percent-decoded and values base64-decoded here, as libarchive writes them, values again in base64.
   */
  libarchiveXattrs: Record<string, string>;
  /** Name, link name, user and group name are all valid UTF-8. */
  utf8: boolean;
  /** The bytes of name, link name, user and group name, in base64 (JSON shows bytes that are not UTF-8 as U+FFFD). */
  bytes: { name: string; linkname: string; uname: string; gname: string };
  /** Bytes Go reads as the entry's content (a sparse file's holes as zeros), and their `ContentPrint`. */
  read: number;
  print: string;
}

export interface GoListing {
  entries: GoEntry[];
  /** Go's error, after the entries it read; empty when it read to the end. */
  error: string;
}

const LISTER = String.raw`package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"
)

const block = 1 << 20

var zeros = make([]byte, block)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// contentPrint reads r to its end: the bytes read, and the sha256 of each block that is not all zeros,
// after its index (ContentPrint in go-tar.ts).
func contentPrint(r io.Reader) (int64, string, error) {
	hash := sha256.New()
	buf := make([]byte, block)
	var n int64
	for {
		// A block at a time; not io.ReadFull, which would hide the reader's own io.ErrUnexpectedEOF.
		m := 0
		var err error
		for m < block && err == nil {
			var k int
			k, err = r.Read(buf[m:])
			m += k
		}
		if m > 0 && !bytes.Equal(buf[:m], zeros[:m]) {
			var index [8]byte
			binary.BigEndian.PutUint64(index[:], uint64(n/block))
			hash.Write(index[:])
			hash.Write(buf[:m])
		}
		n += int64(m)
		if err == io.EOF {
			return n, hex.EncodeToString(hash.Sum(nil)), nil
		}
		if err != nil {
			return n, "", err
		}
	}
}

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	r := tar.NewReader(f)
	entries := []map[string]interface{}{}
	failure := ""
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			failure = err.Error()
			break
		}
		xattrs := map[string]string{}
		libarchiveXattrs := map[string]string{}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				xattrs[k[len("SCHILY.xattr."):]] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			if strings.HasPrefix(k, "LIBARCHIVE.xattr.") {
				name, nameErr := url.PathUnescape(k[len("LIBARCHIVE.xattr."):])
				value, valueErr := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
				if nameErr == nil && valueErr == nil {
					libarchiveXattrs[name] = base64.StdEncoding.EncodeToString(value)
				}
			}
		}
		n, print, err := contentPrint(r)
		if err != nil {
			failure = err.Error()
			break
		}
		entries = append(entries, map[string]interface{}{
			"name": h.Name, "typeflag": string([]byte{h.Typeflag}), "size": h.Size, "mode": h.Mode,
			"uid": h.Uid, "gid": h.Gid, "sec": h.ModTime.Unix(), "nsec": h.ModTime.Nanosecond(),
			"linkname": h.Linkname, "uname": h.Uname, "gname": h.Gname, "devmajor": h.Devmajor, "devminor": h.Devminor,
			"xattrs": xattrs, "libarchiveXattrs": libarchiveXattrs,
			"utf8": utf8.ValidString(h.Name) && utf8.ValidString(h.Linkname) && utf8.ValidString(h.Uname) && utf8.ValidString(h.Gname),
			"bytes": map[string]string{"name": b64(h.Name), "linkname": b64(h.Linkname), "uname": b64(h.Uname), "gname": b64(h.Gname)},
			"read": n, "print": print,
		})
	}
	out, _ := json.Marshal(map[string]interface{}{"entries": entries, "error": failure})
	os.Stdout.Write(out)
}
`;

/** What Go's archive/tar reads from the uncompressed tar at `path`. */
export function goList(path: string): GoListing {
  return JSON.parse(execFileSync(goProgram('go-tar-list', LISTER), [path], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })) as GoListing;
}

/** The directory of Go's own archive/tar test archives, as the toolchain ships it. */
export function goTarCorpus(): string {
  return join(goRoot(), 'src', 'archive', 'tar', 'testdata');
}

/**
 * The bytes a strata name stands for, worked out here and not by the code under test: UTF-8, and a lone
 * U+DC80..U+DCFF (the escape of a byte that is not UTF-8) as that byte.
 */
export function nameBytes(text: string): Buffer {
  const parts: Buffer[] = [];
  for (const char of text) {
    const c = char.charCodeAt(0);
    parts.push(char.length === 1 && c >= 0xdc80 && c <= 0xdcff ? Buffer.of(c - 0xdc00) : Buffer.from(char, 'utf8'));
  }
  return Buffer.concat(parts);
}

/** Go's name as a binary string (a byte a character), for comparing names that are not UTF-8 byte for byte. */
export const goBinary = (base64: string): string => Buffer.from(base64, 'base64').toString('latin1');
/** strata's name as a binary string (see `goBinary`). */
export const strataBinary = (text: string): string => nameBytes(text).toString('latin1');

/**
 * Go's entry name as a layer path (no `.` or empty components, no trailing slash, a leading `/` from the
 * layer root, as containerd reads it); undefined when unsafe (`..`).
 */
export function goLayerPath(name: string): string | undefined {
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) return undefined;
  return parts.length === 0 ? '.' : parts.join('/');
}

const BLOCK = 1024 * 1024;
const ZEROS = new Uint8Array(BLOCK);

/**
 * A digest of content that does not hash holes: the sha256 of each 1 MiB block that is not all zeros,
 * after its index (8 bytes, big-endian), and the number of bytes. So a sparse file of gigabytes of holes
 * is compared by what it holds, in the time its data takes to read, whatever size its chunks come in.
 */
export class ContentPrint {
  readonly #hash = createHash('sha256');
  readonly #block = new Uint8Array(BLOCK); // zeros but where the current block holds data
  #filled = 0;
  #data = false;
  bytes = 0;

  update(chunk: Uint8Array): void {
    for (let at = 0; at < chunk.length; ) {
      const piece = chunk.subarray(at, at + Math.min(chunk.length - at, BLOCK - this.#filled));
      if (Buffer.compare(piece, ZEROS.subarray(0, piece.length)) !== 0) {
        this.#block.set(piece, this.#filled);
        this.#data = true;
      }
      this.#filled += piece.length;
      this.bytes += piece.length;
      at += piece.length;
      if (this.#filled === BLOCK) this.#flush();
    }
  }

  #flush(): void {
    if (this.#data) {
      const index = Buffer.alloc(8);
      index.writeBigUInt64BE(BigInt(Math.floor((this.bytes - 1) / BLOCK)));
      this.#hash.update(index).update(this.#block.subarray(0, this.#filled));
      this.#block.fill(0);
    }
    this.#filled = 0;
    this.#data = false;
  }

  digest(): string {
    this.#flush();
    return this.#hash.digest('hex');
  }
}

const LINKS_AND_SPECIALS: Record<string, EntryType | undefined> = { '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '6': 'fifo' };

/**
 * Go's type flags (TypeReg, TypeCont, TypeDir, TypeGNUDumpDir, TypeLink, TypeSymlink, TypeChar, TypeBlock,
 * TypeFifo) as entry types: written out here, not taken from the reader under test.
 */
export function goEntryType(flag: string): EntryType | undefined {
  // TypeGNUSparse too: a file, as GNU tar, bsdtar and Python extract it (containerd and moby refuse the flag).
  if (flag === '0' || flag === '7' || flag === 'S') return 'file';
  if (flag === '5' || flag === 'D') return 'directory';
  return LINKS_AND_SPECIALS[flag];
}
