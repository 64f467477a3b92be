/**
 * @strata/snapshotter: containerd's snapshot model on an embedded database, with kernel overlay mounts where
 * the host allows them and strata's userspace views everywhere else.
 */
export type {
  Snapshotter,
  Kind,
  Info,
  InfoUpdate,
  Usage,
  SnapshotOptions,
  CommitOptions,
  LayerOutput,
  DriverName,
  FsckProblem,
  FsckReport,
} from './snapshotter.js';
export { openSnapshotter, canMountOverlay, type OpenOptions } from './open.js';
export { parseFilter, matchesAny, type Filter, type FieldLookup } from './filters.js';
export { MAX_KEY_BYTES, MAX_LABEL_BYTES } from './names.js';
