#!/usr/bin/env node
// The contract checks CI runs: buf lint, no breaking change against the recorded baseline image
// (proto/baseline.binpb; refresh it with `npm run proto:baseline` when a change is meant to ship),
// and generated TypeScript and the reflection descriptor set (proto/descriptor-set.binpb) identical to a
// fresh `npm run proto:gen`.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const proto = join(root, 'proto');
const buf = join(root, 'node_modules', '.bin', 'buf');
const run = (cmd, args, cwd = proto) => execFileSync(cmd, args, { cwd, stdio: 'inherit' });

console.log('buf lint');
run(buf, ['lint']);
console.log('buf breaking --against baseline.binpb');
run(buf, ['breaking', '--against', 'baseline.binpb']);
console.log('buf generate (must reproduce libs/proto/src/generated exactly)');
run(buf, ['generate']);
run(buf, ['build', '--as-file-descriptor-set', '-o', 'descriptor-set.binpb']);
const drift = execFileSync(
  'git',
  ['status', '--porcelain', '--', 'libs/proto/src/generated', 'proto/descriptor-set.binpb'],
  { cwd: root },
)
  .toString()
  .trim();
if (drift) {
  console.error(`generated code differs from proto/:\n${drift}\nrun npm run proto:gen and commit the result`);
  process.exit(1);
}
console.log('proto: ok');
