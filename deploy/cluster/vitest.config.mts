// The job-mode tests against a real API server: run only by tools/scripts/k8s-e2e.sh (npm run k8s:e2e),
// which starts the control plane and passes its kubeconfigs; not part of npm test.
import { join } from 'node:path';
import { projectTestConfig } from '../../vitest.shared.mjs';

const config = projectTestConfig(import.meta.dirname, { testTimeout: 120_000 });
config.test = {
  ...config.test,
  include: ['*.spec.ts'],
  outputFile: { json: join(import.meta.dirname, '..', '..', 'reports', 'k8s-e2e', 'vitest.json') },
};
export default config;
