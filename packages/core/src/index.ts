/**
 * @strata/core: layer-relative paths, the entry model, whiteout encodings, the layer tarball codec,
 * digests and safe apply.
 */
export * from './errors.js';
export * from './entry.js';
export * from './path.js';
export * from './whiteout.js';
export { readXattrs, getXattr, setXattr, removeXattr, mknod, lutimens } from './native.js';
export { type Compression, detectCompression, layerMediaType } from './tar/compression.js';
export { type ByteInput, type LayerDigests, type DecodedInput, type DecodeOptions, decodeInput, digestLayer, chainID } from './tar/digest.js';
export { type Sha256Stream, createSha256 } from './tar/sha256.js';
export { type ReadLimits, type ReadLayerOptions, type LayerEntry, type LayerReader, readLayer } from './tar/reader.js';
export { type ContentSource, type WriteItem, type WriteTarOptions, TarWriter, writeTar } from './tar/writer.js';
export { type LayerDescriptor, type WriteLayerOptions, writeLayer } from './tar/write-layer.js';
export { type HostWalkOptions, walkHostDirectory } from './tree/host-walk.js';
export { type ApplyFormat, type ApplyOptions, type ApplyResult, type OwnerRecord, INCOMPLETE_XATTR, applyLayer, isApplyIncomplete } from './apply.js';
export { mergedListing } from './listing.js';
export { type PackDirectoryOptions, packDirectory } from './pack.js';
export { type WriteItemsOptions, writeItems } from './tar/write-items.js';
export { type NodeType, type LayerNode, type NodeStat, type LayerTree, type ContentReader, lookupNode } from './tree/layer-tree.js';
export { type HostLayerOptions, HostLayer } from './tree/host-layer.js';
export { type MemoryEntry, TarLayer, MemoryLayer } from './tree/indexed-layer.js';
export { type MergedNode, MergedView } from './union/merged-view.js';
export { type WritableLayerOptions, type LayerStats, type LayerDirent, type TypeChecks, WritableLayer, LayerFileHandle } from './cow/writable-layer.js';
export { type ContentChange, type WriteChangesOptions, changeItems, writeChanges } from './diff/changes.js';
export { type DiffUpperOptions, diffUpper } from './diff/diff-upper.js';
export { type DiffTreesOptions, diffTrees } from './diff/diff-trees.js';
export { type FlattenOptions, flatten } from './diff/flatten.js';
export { type SquashOptions, squash, walkMerged } from './diff/squash.js';
