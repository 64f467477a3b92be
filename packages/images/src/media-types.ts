/**
 * The media types of image content, OCI's and Docker's schema 2, and what each kind of blob is.
 */

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
export const OCI_LAYOUT_VERSION = '1.0.0';

export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const DOCKER_FOREIGN_LAYER = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';

const INDEXES = new Set([OCI_INDEX, DOCKER_MANIFEST_LIST]);
const MANIFESTS = new Set([OCI_MANIFEST, DOCKER_MANIFEST]);
const CONFIGS = new Set([OCI_CONFIG, DOCKER_CONFIG]);

/** The kinds of image content. */
export type BlobKind = 'index' | 'manifest' | 'config' | 'layer' | 'unknown';

/** What a blob of `mediaType` is. */
export function kindOf(mediaType: string): BlobKind {
  if (INDEXES.has(mediaType)) return 'index';
  if (MANIFESTS.has(mediaType)) return 'manifest';
  if (CONFIGS.has(mediaType)) return 'config';
  if (layerCompressionOf(mediaType) !== undefined) return 'layer';
  return 'unknown';
}

/**
 * The compression of a layer media type (OCI's `+gzip`/`+zstd` suffixes, Docker's `.gzip`, and the
 * non-distributable and foreign variants), or undefined when `mediaType` is not a layer.
 */
export function layerCompressionOf(mediaType: string): 'none' | 'gzip' | 'zstd' | undefined {
  const base = mediaType.replace('.nondistributable', '');
  if (base === OCI_LAYER || base === DOCKER_LAYER) return 'none';
  if (base === OCI_LAYER_GZIP || base === DOCKER_LAYER_GZIP || base === DOCKER_FOREIGN_LAYER) return 'gzip';
  if (base === OCI_LAYER_ZSTD) return 'zstd';
  return undefined;
}

/** True for layers that registries and exports must not carry (fetched from their own URLs, if at all). */
export function isForeignLayer(mediaType: string): boolean {
  return mediaType.includes('.nondistributable') || mediaType === DOCKER_FOREIGN_LAYER;
}
