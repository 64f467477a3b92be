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
export { openSnapshotter, openRoot, canMountOverlay, type OpenOptions, type Root } from './open.js';
export type { Metadata, Table, TableKey, SnapshotEntry } from './metadata.js';
export { parseFilter, matchesAny, type Filter, type FieldLookup } from './filters.js';
export { MAX_KEY_BYTES, MAX_LABEL_BYTES, checkLabels, updateLabels } from './names.js';
