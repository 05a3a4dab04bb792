import { projectTestConfig } from '../../vitest.shared.mjs';

export default projectTestConfig(import.meta.dirname);
