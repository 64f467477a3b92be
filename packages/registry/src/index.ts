/**
 * @strata/registry: the OCI distribution protocol for strata's images. The public API, by concept;
 * everything else in this package is internal and may change.
 */

// Moving images: pull into a root, push from it.
export { pullImage, type PullOptions, type PullResult, type TransferEvent } from './pull.js';
export { sourceLabel } from './sources.js';
export { pushImage, type PushOptions, type PushResult } from './push.js';

// One registry, its protocol and its transport.
export { Registry, isLocalHost, MANIFEST_TYPES, type RegistryOptions, type FetchedManifest, type UploadSession } from './registry.js';
export { type TransportOptions, type RetryPolicy, type RetryEvent } from './transport.js';

// Plain HTTP(S) downloads over the same transport (a Dockerfile's ADD <url>).
export { download, parseDownloadDigest, redactUrl, type Download, type DownloadOptions, type Validators } from './download.js';

// Credentials and authentication.
export { credentialsFrom, saveLogin, removeLogin, defaultAuthFile, defaultDockerConfig, type Credentials, type CredentialSource } from './credentials.js';
export { parseChallenges, type Challenge } from './auth.js';
