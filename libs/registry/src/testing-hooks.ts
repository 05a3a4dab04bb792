/**
 * Test hooks of the registry library (vitest): kept apart from ./testing, which worker processes
 * outside vitest also import.
 */
import { afterEach, beforeEach } from 'vitest';
import { DirectoryRegistry } from './directory/directory-registry';
import { tempDir } from './testing';

/**
 * Before each test of the file (or describe block) a registry opened in a fresh directory, handed to
 * `use`; the directory is removed after the test.
 */
export function tempRegistryEachTest(
  use: (dir: string, registry: DirectoryRegistry) => void | Promise<void>,
): void {
  let cleanup: (() => Promise<void>) | undefined;
  beforeEach(async () => {
    const temp = await tempDir();
    cleanup = temp.cleanup;
    await use(temp.dir, await DirectoryRegistry.open(temp.dir));
  });
  afterEach(async () => {
    await cleanup?.();
  });
}
