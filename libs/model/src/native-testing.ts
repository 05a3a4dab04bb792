import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Whether `npm ci`'s native step (tools/scripts/install-native.mjs) built tfjs-node here: it stamps
 * the package's deps/ only after the built binding loaded and computed. Tests that compare the
 * native backend with wasm run where this holds (CI's machines).
 */
export function nativeBuildInstalled(): boolean {
  try {
    const pkg = createRequire(__filename).resolve('@tensorflow/tfjs-node/package.json');
    return existsSync(join(dirname(pkg), 'deps', 'deit-native.json'));
  } catch {
    return false;
  }
}
