/**
 * node:crypto, loaded on first use: its two dozen internal modules cost a process several milliseconds to
 * load, and a layer command whose hashing runs on the addon's threads never needs it.
 */
let cryptoModule: typeof import('node:crypto') | undefined;
export const crypto = (): typeof import('node:crypto') => (cryptoModule ??= process.getBuiltinModule('node:crypto'));
