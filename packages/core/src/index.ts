/**
 * @strata/core: the layer engine under container images. The public API, by concept; everything else in
 * this package is internal and may change.
 */

// Errors: one class per condition, each with a literal `code`; fs-shaped surfaces throw Node errno errors.
export {
  StrataError,
  LayerFormatError,
  ImageFormatError,
  UnsafePathError,
  LimitExceededError,
  UnsupportedError,
  DigestMismatchError,
  InvalidArgumentError,
  NotFoundError,
  AlreadyExistsError,
  FailedPreconditionError,
  UnauthenticatedError,
  PermissionDeniedError,
  UnavailableError,
  RegistryError,
  isStrataError,
  isNotFound,
  isAlreadyExists,
  type StrataErrorCode,
} from './errors.js';

// The entry model and layer paths.
export type { Entry, EntryType, Timestamp, Change } from './entry.js';
export { cleanEntryName, cleanLayerPath, compareTarOrder, ROOT } from './path.js';
/** Go's `path.Match` patterns (COPY sources, `reference=` filters). */
export { pathMatcher, type PathMatcher } from './path-pattern.js';
/** Text a layer controls, made safe for messages and terminals. */
export { quote, sanitize } from './quote.js';
export { callerAsRoot, containerOwner, mapEntryOwner, processIdMap, toContainerId, toHostId, type IdMap, type IdMapping } from './idmap.js';
/** Owners a rootless unpack could not give, kept in `user.rootlesscontainers` xattrs as umoci keeps them. */
export { decodeRootlessOwner, encodeRootlessOwner, ROOTLESS_OWNER_XATTR, type RecordedOwner } from './rootless-owner.js';

// Deletions: OCI whiteout names and overlayfs markers.
export {
  classifyWhiteout,
  whiteoutPathFor,
  opaqueMarkerPathFor,
  opaqueXattr,
  isOverlayXattr,
  type WhiteoutKind,
  type OverlayXattrNamespace,
} from './whiteout.js';

// Layer blobs: read, digest, apply, write.
export type { ByteInput } from './blob/input.js';
export { detectCompression, detectFileCompression, type Compression } from './blob/compression.js';
export { writeBlob, type BlobDigests, type WriteBlobOptions } from './blob/write-blob.js';
export { createSha256, PARALLEL_HASH_THRESHOLD, sha256OfFile, type Sha256Stream } from './blob/sha256.js';
export { BufferPool } from './blob/buffer-pool.js';
export { digestBlob, decodeInput as decodeBlob, type DecodedDigests, type DecodedInput, type DecodeOptions } from './blob/decode.js';
export { readLayer, type ReadLayerOptions, type ReadLimits, type LayerEntry, type LayerReader } from './layer/read-layer.js';
export type { EntryContent } from './tar/reader.js';
export { isHole } from './tar/sparse.js';
export { decodeName, encodeName, fsPath, hasEscapes } from './name-bytes.js';
export { digestLayer, chainID, chainIDs, type LayerDigests } from './layer/digests.js';
export {
  applyLayer,
  isApplyIncomplete,
  INCOMPLETE_XATTR,
  type ApplyOptions,
  type ApplyLayout,
  type ApplyResult,
  type OwnerRecord,
} from './apply/apply-layer.js';
export { writeEntries, layerMediaType, type LayerDescriptor, type WriteLayerOptions } from './layer/write-layer.js';
export type { WriteItem, ContentSource } from './tar/writer.js';
export { packDirectory, type PackDirectoryOptions } from './pack.js';
export { mergedListing } from './listing.js';

// Layer trees and their union: read-only layers, the merged view, the writable (container) layer.
export type { LayerTree, LayerNode, NodeStat, NodeType, ContentReader } from './tree/layer-tree.js';
export { HostLayer, type HostLayerOptions, type WhiteoutForm } from './tree/host-layer.js';
export { MemoryLayer, type MemoryEntry } from './tree/indexed-layer.js';
export { TarLayer, type TarLayerOptions } from './tree/tar-layer.js';
export { DirectoryScan, walkHostDirectory, type HostWalkOptions } from './tree/host-walk.js';
export { MergedView, type MergedNode } from './union/merged-view.js';
export {
  WritableLayer,
  LayerFileHandle,
  type WritableLayerOptions,
  type LayerStats,
  type LayerDirent,
  type TypeChecks,
} from './cow/writable-layer.js';

// Host helpers: kernel mounts of layer directories (privileged), disk usage, extended attributes.
export { syncFile } from './host/sync.js';
export { writeAll } from './host/write-all.js';
export { readChunks, type ChunkRange } from './host/read-chunks.js';
export { removeTree } from './host/remove-tree.js';
export { processAlive } from './host/process.js';
// The event loop's turns that strata's long jobs take (a slice of 5 ms each): for loops of an embedder's own
// beside them, such as a builder's copy, to give way in the same line.
export { turn } from './turns.js';
export { eachLimited } from './each-limited.js';
export { mountOverlay, mountBind, mountAll, mountCommand, unmount, diskUsage, type Mount } from './host/mounts.js';
export { getXattr, setXattr, removeXattr, lstatBatch, startWriteback, openRoot, openDirAt, closeFd, alignedBuffer, STAT, type LstatBatch } from './native.js';

// Changes: from an upper directory or two trees, and as a layer.
export { diffUpper, type DiffUpperOptions } from './diff/diff-upper.js';
export { diffTrees, type DiffTreesOptions } from './diff/diff-trees.js';
export { writeChanges, type ContentChange, type WriteChangesOptions } from './diff/changes.js';
export { flatten, type FlattenOptions } from './diff/flatten.js';
export { squash, type SquashOptions } from './diff/squash.js';
