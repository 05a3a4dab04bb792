import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import swcModule from 'unplugin-swc';
import { defineConfig, type ViteUserConfig } from 'vitest/config';

const workspaceRoot = import.meta.dirname;
// Loaded from a CommonJS-compiled config the default export arrives wrapped once more.
const swc = (swcModule as unknown as { default?: typeof swcModule }).default ?? swcModule;

/**
 * The `@deit-serve/*` aliases from tsconfig.base.json, so that the type-checker and the test runner
 * agree on one source of truth.
 */
function workspaceAliases(): { find: RegExp; replacement: string }[] {
  const tsconfig = JSON.parse(readFileSync(join(workspaceRoot, 'tsconfig.base.json'), 'utf8')) as {
    compilerOptions: { paths: Record<string, string[]> };
  };
  // Exact matches: `@deit-serve/model` must not swallow `@deit-serve/model/testing`.
  return Object.entries(tsconfig.compilerOptions.paths).map(([name, [target]]) => ({
    find: new RegExp(`^${name.replace(/[/.-]/g, '\\$&')}$`),
    replacement: join(workspaceRoot, target ?? ''),
  }));
}

/**
 * One vitest configuration for every project. SWC compiles the sources because NestJS needs
 * `emitDecoratorMetadata`, which esbuild does not implement.
 */
export function projectTestConfig(
  projectRoot: string,
  overrides: { testTimeout?: number } = {},
): ViteUserConfig {
  return defineConfig({
    root: projectRoot,
    plugins: [
      swc.vite({
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
          target: 'es2022',
          keepClassNames: true,
        },
      }),
    ],
    resolve: { alias: workspaceAliases() },
    test: {
      include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
      environment: 'node',
      // Per-project JSON reports at the workspace root: tools/scripts/test.mjs sums them for CI.
      reporters: ['default', 'json'],
      // Named by the project's path: apps/zoo and libs/zoo share a folder name.
      outputFile: {
        json: join(
          workspaceRoot,
          'reports',
          'vitest',
          `${relative(workspaceRoot, projectRoot).replaceAll('/', '-')}.json`,
        ),
      },
      pool: 'forks',
      testTimeout: overrides.testTimeout ?? 30_000,
      hookTimeout: 60_000,
    },
  });
}
