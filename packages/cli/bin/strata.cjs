#!/usr/bin/env node
// The `strata` command. The build bundles it into dist/strata.cjs (scripts/bundle.mjs); this stub exists
// before the build, so that installing the workspace can link the bin.
require('../dist/strata.cjs');
