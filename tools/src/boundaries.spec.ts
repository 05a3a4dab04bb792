import { ESLint } from 'eslint';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectGraph, workspaceRoot } from './workspace';

/**
 * The module-boundary rule is only worth something if it fires: lint deliberate violations written
 * into real project folders and expect @nx/enforce-module-boundaries to reject them.
 */
async function boundaryErrors(relativePath: string, code: string): Promise<string[]> {
  const file = join(workspaceRoot, relativePath);
  writeFileSync(file, code);
  try {
    const eslint = new ESLint({ cwd: workspaceRoot });
    const [result] = await eslint.lintFiles([file]);
    return (result?.messages ?? [])
      .filter((m) => m.ruleId === '@nx/enforce-module-boundaries')
      .map((m) => m.message);
  } finally {
    rmSync(file, { force: true });
  }
}

describe('@nx/enforce-module-boundaries is live', () => {
  beforeAll(() => {
    // The rule silently skips itself without a cached project graph.
    projectGraph();
  });

  it('rejects a util library importing a data-access library', async () => {
    const errors = await boundaryErrors(
      'libs/config/src/__boundary_probe__.ts',
      "import * as registry from '@deit-serve/registry';\nexport const probe = registry;\n",
    );
    expect(errors.join('\n')).toMatch(/type:util.*can only depend on libs tagged with/);
  });

  it('rejects a library importing an application', async () => {
    const errors = await boundaryErrors(
      'libs/core/src/__boundary_probe__.ts',
      "import * as app from '../../../apps/inference/src/app.module';\nexport const probe = app;\n",
    );
    expect(errors.length).toBeGreaterThan(0);
  });

  it('rejects the proto library depending on anything', async () => {
    const errors = await boundaryErrors(
      'libs/proto/src/__boundary_probe__.ts',
      "import * as core from '@deit-serve/core';\nexport const probe = core;\n",
    );
    expect(errors.join('\n')).toMatch(/type:proto/);
  });

  it('rejects the model library importing the training library', async () => {
    const errors = await boundaryErrors(
      'libs/model/src/__boundary_probe__.ts',
      "import * as training from '@deit-serve/training';\nexport const probe = training;\n",
    );
    // Reported as a cycle (training imports model) before the scope:shared rule is reached.
    expect(errors.join('\n')).toMatch(/Circular dependency between "model" and "training"|scope:shared/);
  });

  it('rejects the inference side importing the training library', async () => {
    const errors = await boundaryErrors(
      'libs/inference-engine/src/__boundary_probe__.ts',
      "import * as training from '@deit-serve/training';\nexport const probe = training;\n",
    );
    expect(errors.join('\n')).toMatch(/scope:inference.*can only depend on libs tagged with/);
  });

  it('accepts an app importing a library', async () => {
    const errors = await boundaryErrors(
      'apps/inference/src/__boundary_probe__.ts',
      "import * as config from '@deit-serve/config';\nexport const probe = config;\n",
    );
    expect(errors).toEqual([]);
  });
});
