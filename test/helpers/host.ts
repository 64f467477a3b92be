/**
 * The host syscalls Node lacks (from @strata/core's addon), for tests that build fixtures: not part of the
 * package's public API, so imported from its source.
 */
export { getXattr, lutimens, mknod, readXattrs, removeXattr, setXattr } from '../../packages/core/src/native.js';
export { S_IFBLK, S_IFCHR, S_IFIFO } from '../../packages/core/src/mode.js';
