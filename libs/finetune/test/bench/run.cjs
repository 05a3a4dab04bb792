// Runs a TypeScript bench of this library from the sources (passed to node with -r, so the
// data-parallel worker threads, which inherit execArgv, get the same hooks):
//   node -r ./libs/finetune/test/bench/run.cjs libs/finetune/test/bench/train-speed.ts [options]
'use strict';
require('../../../../tools/test-support/register-ts.cjs');
