/**
 * Registers tfjs-core's gradient functions, which the package's CommonJS bundle (what `require` and
 * Node load) does not contain. The only copy is the ES-module tree under `dist/`, whose relative
 * imports omit file extensions (`./gradients/Abs_grad`), so plain Node can load it neither with
 * `require` nor with `import`. A tiny resolve hook (Node ≥ 20.6 `module.register`) adds the `.js`
 * for imports inside @tensorflow packages only, then the tree is imported natively.
 *
 * That loads a second copy of tfjs-core's modules, which is harmless: the engine, the kernel and
 * gradient registries live on the global object and are shared by both copies (the test runner loads
 * tfjs the same mixed way), so the registered gradients are the ones `tf.variableGrads` finds.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const RESOLVE_HOOK = `
export async function resolve(specifier, context, next) {
  if (/^\\.\\.?\\//.test(specifier) && !/\\.[cm]?js$/.test(specifier) && (context.parentURL ?? '').includes('/@tensorflow/')) {
    try {
      return await next(specifier + '.js', context);
    } catch {
      return next(specifier + '/index.js', context);
    }
  }
  return next(specifier, context);
}
`;

// The same import evaluated by Node itself, for builds whose compiler turned the literal `import()`
// below into `require()` (swc's CommonJS output does unless `ignoreDynamic` is set).
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- a constant string, not eval of data
const nativeImport = new Function('specifier', 'return import(specifier)') as (
  specifier: string,
) => Promise<unknown>;

let registered: Promise<void> | undefined;

/** Idempotent; resolves once every tfjs-core gradient is registered. */
export function registerGradients(): Promise<void> {
  registered ??= load().catch((error: unknown) => {
    registered = undefined;
    throw error;
  });
  return registered;
}

/** True when gradients are available (e.g. registered here, or by a bundle such as @tensorflow/tfjs). */
export function gradientsRegistered(): boolean {
  return tf.getGradient('Neg') !== undefined && tf.getGradient('BatchMatMul') !== undefined;
}

async function load(): Promise<void> {
  if (gradientsRegistered()) return;
  register(`data:text/javascript,${encodeURIComponent(RESOLVE_HOOK)}`);
  try {
    // A literal specifier: the test runner resolves it through its own module graph.
    await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  } catch (literalError) {
    const entry = createRequire(__filename).resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
    try {
      await nativeImport(pathToFileURL(entry).href);
    } catch {
      throw literalError;
    }
  }
  if (!gradientsRegistered())
    throw new Error(
      'tfjs-core gradients did not register (a different tfjs-core version on the global object?)',
    );
}
