/**
 * The model registry: numbered, immutable, integrity-checked model versions with movable aliases.
 * Only this library touches the registry's storage; everything else goes through {@link ModelRegistry}.
 */
export * from './refs';
export * from './manifest';
export * from './storage';
export {
  DirectoryRegistry,
  DEFAULT_TEMP_MAX_AGE_MS,
  type DirectoryRegistryOptions,
} from './directory/directory-registry';
export { DEFAULT_DEBOUNCE_MS, DEFAULT_POLL_INTERVAL_MS, type WatchStrategy } from './directory/watcher';
