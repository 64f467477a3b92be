/**
 * Domain errors: one class per condition, each with a literal `code` that callers can test without
 * `instanceof`. Filesystem-shaped operations throw Node-style errno errors instead (see `fsError`).
 */

/** Stable codes of strata's domain errors. */
export type StrataErrorCode =
  | 'LAYER_FORMAT'
  | 'IMAGE_FORMAT'
  | 'UNSAFE_PATH'
  | 'LIMIT_EXCEEDED'
  | 'UNSUPPORTED'
  | 'DIGEST_MISMATCH'
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'UNAVAILABLE'
  | 'REGISTRY';

interface StrataErrorOptions {
  /** The layer-relative path the error is about, when there is one. */
  path?: string;
  cause?: unknown;
}

/** Marks strata's errors across copies of this module (a bundle beside the package, two installs). */
const BRAND = Symbol.for('@strata/core:error');

/**
 * Base of every domain error; never thrown itself. `instanceof` holds across copies of @strata/core loaded
 * side by side (each class tests a shared brand and its code, not its own identity), so a caller that
 * imports the package and a library that bundled another copy agree on what an error is.
 */
export abstract class StrataError extends Error {
  abstract readonly code: StrataErrorCode;
  readonly path: string | undefined;
  constructor(message: string, options: StrataErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.path = options.path;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** The code instances of this class carry; undefined for the base. */
  static readonly code: StrataErrorCode | undefined = undefined;

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null || (value as { [BRAND]?: unknown })[BRAND] !== true) return false;
    const code = (this as { code?: StrataErrorCode | undefined }).code;
    return code === undefined || (value as StrataError).code === code;
  }
}

/** The archive is not a well-formed layer: bad header, checksum, truncation, size disagreement, bad whiteout. */
export class LayerFormatError extends StrataError {
  static override readonly code = 'LAYER_FORMAT' as const;
  readonly code = 'LAYER_FORMAT' as const;
  override readonly name = 'LayerFormatError';
}

/** An image or an image archive is malformed: its layout, index, manifest, config or docker-save structure. */
export class ImageFormatError extends StrataError {
  static override readonly code = 'IMAGE_FORMAT' as const;
  readonly code = 'IMAGE_FORMAT' as const;
  override readonly name = 'ImageFormatError';
}

/** An entry would reach outside its root: `..`, absolute names, escaping symlinks or hardlinks. */
export class UnsafePathError extends StrataError {
  static override readonly code = 'UNSAFE_PATH' as const;
  readonly code = 'UNSAFE_PATH' as const;
  override readonly name = 'UnsafePathError';
}

/** A configured bound was crossed (entries, bytes, path or xattr sizes): the defence against tar bombs. */
export class LimitExceededError extends StrataError {
  static override readonly code = 'LIMIT_EXCEEDED' as const;
  readonly code = 'LIMIT_EXCEEDED' as const;
  override readonly name = 'LimitExceededError';
}

/** Valid input that strata refuses rather than mishandle (xz/bzip2 layers, devices when barred, a sparse file read in place). */
export class UnsupportedError extends StrataError {
  static override readonly code = 'UNSUPPORTED' as const;
  readonly code = 'UNSUPPORTED' as const;
  override readonly name = 'UnsupportedError';
}

/** Content did not hash to the digest it was promised to have. */
export class DigestMismatchError extends StrataError {
  static override readonly code = 'DIGEST_MISMATCH' as const;
  readonly code = 'DIGEST_MISMATCH' as const;
  override readonly name = 'DigestMismatchError';
}

/** The caller passed something unusable. */
export class InvalidArgumentError extends StrataError {
  static override readonly code = 'INVALID_ARGUMENT' as const;
  readonly code = 'INVALID_ARGUMENT' as const;
  override readonly name = 'InvalidArgumentError';
}

/** A named object does not exist. */
export class NotFoundError extends StrataError {
  static override readonly code = 'NOT_FOUND' as const;
  readonly code = 'NOT_FOUND' as const;
  override readonly name = 'NotFoundError';
}

/** A named object exists already. */
export class AlreadyExistsError extends StrataError {
  static override readonly code = 'ALREADY_EXISTS' as const;
  readonly code = 'ALREADY_EXISTS' as const;
  override readonly name = 'AlreadyExistsError';
}

/** The operation is valid in general but not in the current state. */
export class FailedPreconditionError extends StrataError {
  static override readonly code = 'FAILED_PRECONDITION' as const;
  readonly code = 'FAILED_PRECONDITION' as const;
  override readonly name = 'FailedPreconditionError';
}

/** A registry wants credentials it was not given, or refused the ones it was given. */
export class UnauthenticatedError extends StrataError {
  static override readonly code = 'UNAUTHENTICATED' as const;
  readonly code = 'UNAUTHENTICATED' as const;
  override readonly name = 'UnauthenticatedError';
}

/** A registry knows who is asking and refuses the operation (403, or a token without the scope). */
export class PermissionDeniedError extends StrataError {
  static override readonly code = 'PERMISSION_DENIED' as const;
  readonly code = 'PERMISSION_DENIED' as const;
  override readonly name = 'PermissionDeniedError';
}

/** A registry could not be reached or kept failing (connection errors, timeouts, 429 and 5xx) after every retry. */
export class UnavailableError extends StrataError {
  static override readonly code = 'UNAVAILABLE' as const;
  readonly code = 'UNAVAILABLE' as const;
  override readonly name = 'UnavailableError';
}

/** A registry answered outside the distribution protocol (an unexpected status or header), or with an error of its own. */
export class RegistryError extends StrataError {
  static override readonly code = 'REGISTRY' as const;
  readonly code = 'REGISTRY' as const;
  override readonly name = 'RegistryError';
}

function codeOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/** True for strata's NOT_FOUND and for Node's ENOENT. */
export function isNotFound(error: unknown): boolean {
  const code = codeOf(error);
  return code === 'NOT_FOUND' || code === 'ENOENT';
}

/** True for strata's ALREADY_EXISTS and for Node's EEXIST. */
export function isAlreadyExists(error: unknown): boolean {
  const code = codeOf(error);
  return code === 'ALREADY_EXISTS' || code === 'EEXIST';
}

/** True for an error carrying one of strata's domain codes. */
export function isStrataError(error: unknown): error is StrataError {
  return error instanceof StrataError;
}

/** A Node-shaped errno error (`code`, `syscall`, `path`), for the fs-like surfaces. */
export function fsError(code: string, syscall: string, path: string, message?: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${code}: ${message ?? code}, ${syscall} '${path}'`);
  error.code = code;
  error.syscall = syscall;
  error.path = path;
  return error;
}
