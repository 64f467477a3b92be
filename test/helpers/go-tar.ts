/**
 * Go's archive/tar as an oracle: the reader under containerd and moby, which strata means to read layers as
 * (see `packages/core/src/tar/reader.ts`). A small lister is built once with the machine's Go toolchain
 * (Debian's golang-go, standard library only, nothing fetched) and prints what `tar.Reader` makes of an
 * archive. Go's own test corpus of tricky archives ships with it (`goTarCorpus`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EntryType } from '@strata/core';

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
  /** A GNU sparse file (type `S`, or PAX `GNU.sparse.*` records). */
  sparse: boolean;
  /** Name, link name, user and group name are all valid UTF-8. */
  utf8: boolean;
  /** Bytes Go reads as the entry's content, and their sha256 (hex); not read for a sparse file. */
  read: number;
  sha256: string;
}

export interface GoListing {
  entries: GoEntry[];
  /** Go's error, after the entries it read; empty when it read to the end. */
  error: string;
}

const LISTER = String.raw`package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

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
		sparse := h.Typeflag == tar.TypeGNUSparse
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				xattrs[k[len("SCHILY.xattr."):]] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			if strings.HasPrefix(k, "GNU.sparse.") {
				sparse = true
			}
		}
		hash := sha256.New()
		var n int64
		if !sparse { // its holes would be read as gigabytes of zeros; strata refuses sparse files anyway
			n, err = io.Copy(hash, r)
		}
		if err != nil {
			failure = err.Error()
			break
		}
		entries = append(entries, map[string]interface{}{
			"name": h.Name, "typeflag": string([]byte{h.Typeflag}), "size": h.Size, "mode": h.Mode,
			"uid": h.Uid, "gid": h.Gid, "sec": h.ModTime.Unix(), "nsec": h.ModTime.Nanosecond(),
			"linkname": h.Linkname, "uname": h.Uname, "gname": h.Gname, "devmajor": h.Devmajor, "devminor": h.Devminor,
			"xattrs": xattrs, "sparse": sparse,
			"utf8": utf8.ValidString(h.Name) && utf8.ValidString(h.Linkname) && utf8.ValidString(h.Uname) && utf8.ValidString(h.Gname),
			"read": n, "sha256": hex.EncodeToString(hash.Sum(nil)),
		})
	}
	out, _ := json.Marshal(map[string]interface{}{"entries": entries, "error": failure})
	os.Stdout.Write(out)
}
`;

let built: string | undefined;

/** Go's environment for a build that writes only under `dir` and fetches nothing. */
function goEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, HOME: dir, GOCACHE: join(dir, 'cache'), GOPATH: join(dir, 'gopath'), GOPROXY: 'off', GOFLAGS: '', GO111MODULE: 'off' };
}

/** Builds the lister once per process (a few seconds). */
function lister(): string {
  if (built !== undefined && existsSync(built)) return built;
  const dir = mkdtempSync(join(tmpdir(), 'strata-go-tar-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'main.go'), LISTER);
  const binary = join(dir, 'go-tar-list');
  execFileSync('go', ['build', '-o', binary, join(dir, 'src', 'main.go')], { env: goEnv(dir), stdio: ['ignore', 'ignore', 'pipe'] });
  built = binary;
  return binary;
}

/** What Go's archive/tar reads from the uncompressed tar at `path`. */
export function goList(path: string): GoListing {
  return JSON.parse(execFileSync(lister(), [path], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })) as GoListing;
}

/** The directory of Go's own archive/tar test archives, as the toolchain ships it. */
export function goTarCorpus(): string {
  const root = execFileSync('go', ['env', 'GOROOT'], { encoding: 'utf8' }).trim();
  return join(root, 'src', 'archive', 'tar', 'testdata');
}

/**
 * Go's entry name as a layer path (no `.` or empty components, no trailing slash, a leading `/` from the
 * layer root, as containerd reads it); undefined when unsafe (`..`).
 */
export function goLayerPath(name: string): string | undefined {
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) return undefined;
  return parts.length === 0 ? '.' : parts.join('/');
}

const LINKS_AND_SPECIALS: Record<string, EntryType | undefined> = { '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '6': 'fifo' };

/**
 * Go's type flags (TypeReg, TypeCont, TypeDir, TypeGNUDumpDir, TypeLink, TypeSymlink, TypeChar, TypeBlock,
 * TypeFifo) as entry types: written out here, not taken from the reader under test.
 */
export function goEntryType(flag: string): EntryType | undefined {
  if (flag === '0' || flag === '7') return 'file';
  if (flag === '5' || flag === 'D') return 'directory';
  return LINKS_AND_SPECIALS[flag];
}
