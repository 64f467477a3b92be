/**
 * @strata/images: images on a strata root. The public API, by concept; everything else in this package is
 * internal and may change.
 */

// The whole: a root's images, containers and content, and the operations on them.
export {
  Images,
  openImages,
  type ImageSummary,
  type ListOptions,
  type UsageSummary,
  type ImageDetails,
  type HistoryStep,
  type RemoveResult,
  type PruneOptions,
  type LabelFilter,
  type CommitOptions,
  type SquashOptions,
  type ImageFsckProblem,
  type ImageFsckReport,
} from './images.js';

// Content: blobs by digest, resumable verified ingests; leases; collection.
export { ContentStore, ContentWriter, type ContentInfo, type IngestStatus, type Expected, type WriterOptions, type SealedBlob, type StagedDocuments } from './content.js';
export { Leases, DEFAULT_LEASE_TTL_MS, type Lease, type LeaseResource, type LeaseResourceType } from './leases.js';
export { collectGarbage, GC_ROOT, type GcResult } from './gc.js';

// Image and container records.
export { ImageStore, type Image } from './image-store.js';
export { ContainerStore, type Container } from './container-store.js';

// Moving images in and out, and into snapshots.
export { importImages, type ImportOptions, type ImportResult, type ImportedImage } from './import.js';
export { exportImages, familiarName, type ExportFormat, type ExportOptions, type ExportImage, type ExportResult } from './export.js';
export { sourceDateEpoch, createdAt, layerLabels, layerDescriptor, stageImageDocuments, writeImageDocuments, foldHistory, type StagedImage } from './new-image.js';
export { unpackImage, UNCOMPRESSED_LABEL, UNCOMPRESSED_SIZE_LABEL, type UnpackOptions, type UnpackResult, type UnpackedLayer } from './unpack.js';

// Documents, media types, platforms, references.
export {
  parseIndex,
  parseManifest,
  parseConfig,
  parseDescriptor,
  MAX_DOCUMENT_BYTES,
  type Descriptor,
  type Index,
  type Manifest,
  type ImageConfig,
  type History,
  type Platform,
} from './documents.js';
export * as mediaTypes from './media-types.js';
export { platformImage, platformImages, layersOf, readIndex, readManifest, readConfig, type PlatformImage, type BlobReader } from './graph.js';
export { hostPlatform, parsePlatform, formatPlatform, chooseManifests, isAttestation, platformMatches, type PlatformChoice } from './platform.js';
export { parseReference, normalizeReference, formatReference, nameForms, type Reference } from './reference.js';
export { compressLayers, type LayerCompression } from './compress-layers.js';
