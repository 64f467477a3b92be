/**
 * The libraries of the commands that open a root (images, snapshots, registries, builds), bundled apart
 * from the command (scripts/bundle.mjs) as dist/strata-root.cjs: the layer commands, which need none of
 * them, then read, decode and deserialise a bundle of less than a third of the size. The launcher runs this
 * one when the command first imports one of these packages, and hands it the command bundle's @strata/core,
 * so the process still has one copy of each class. Each library is initialised when first asked for, as
 * in the one bundle before: `image ls` runs none of the registry's or the builder's module code.
 */
module.exports = {
  get images() {
    return require('@strata/images');
  },
  get snapshotter() {
    return require('@strata/snapshotter');
  },
  get registry() {
    return require('@strata/registry');
  },
  get build() {
    return require('@strata/build');
  },
};
