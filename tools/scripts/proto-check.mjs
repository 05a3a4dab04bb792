#!/usr/bin/env node
// The contract checks CI runs: buf lint; no breaking change in our own contracts against the recorded
// baseline image (proto/baseline.binpb; refresh it with `npm run proto:baseline` when a change is
// meant to ship); the vendored schemas in proto/third_party equal their published sources; and the
// generated TypeScript (libs/proto, libs/model's ONNX codec) and the reflection descriptor set
// (proto/descriptor-set.binpb) identical to a fresh `npm run proto:gen`.
//
//   node tools/scripts/proto-check.mjs             the checks
//   node tools/scripts/proto-check.mjs --baseline  rewrite proto/baseline.binpb from our contracts
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const proto = join(root, 'proto');
const buf = join(root, 'node_modules', '.bin', 'buf');
const run = (cmd, args, cwd = proto) => execFileSync(cmd, args, { cwd, stdio: 'inherit' });

// Our contracts: every folder of proto/ but third_party, whose modules are vendored (see proto/buf.yaml).
// buf compares one module with the baseline image, so breaking and the baseline are limited to these.
const ours = readdirSync(proto, { withFileTypes: true })
  .filter((e) => e.isDirectory() && e.name !== 'third_party')
  .flatMap((e) => ['--path', e.name]);

if (process.argv.includes('--baseline')) {
  run(buf, ['build', '--exclude-source-info', ...ours, '-o', 'baseline.binpb']);
  console.log('proto/baseline.binpb written');
  process.exit(0);
}

console.log('buf lint');
run(buf, ['lint']);
console.log('buf breaking --against baseline.binpb');
run(buf, ['breaking', '--against', 'baseline.binpb', ...ours]);

console.log('vendored OIP schema equals a fresh rendering of its wheel');
run('node', [join(proto, 'third_party', 'oip', 'generate.mjs'), '--check'], root);
console.log('vendored onnx.proto equals the file of the release its README names');
const onnxReadme = readFileSync(join(proto, 'third_party', 'onnx', 'README.md'), 'utf8');
const recorded = /\| onnx\.proto sha256 \| `([0-9a-f]{64})` \|/.exec(onnxReadme)?.[1];
const actual = createHash('sha256')
  .update(readFileSync(join(proto, 'third_party', 'onnx', 'onnx.proto')))
  .digest('hex');
if (recorded !== actual) {
  console.error(`proto/third_party/onnx/onnx.proto has sha256 ${actual}; its README records ${recorded}`);
  process.exit(1);
}

console.log('npm run proto:gen (must reproduce the generated code exactly)');
run('npm', ['run', '--silent', 'proto:gen'], root);
const generated = ['libs/proto/src/generated', 'libs/model/src/onnx/generated', 'proto/descriptor-set.binpb'];
const drift = execFileSync('git', ['status', '--porcelain', '--', ...generated], { cwd: root })
  .toString()
  .trim();
if (drift) {
  console.error(`generated code differs from proto/:\n${drift}\nrun npm run proto:gen and commit the result`);
  process.exit(1);
}
console.log('proto: ok');
