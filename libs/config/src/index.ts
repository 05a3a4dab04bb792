export { ConfigError, field, loadConfig, type ConfigField, type ConfigOf, type ConfigSpec } from './define';
export { DEFAULT_REGISTRY_DIR, inferenceConfigSpec, trainerConfigSpec } from './services';
export { hashToken, parseTokensFile, ROLES, type Role, type TokenEntry } from './tokens';
import type { ConfigOf } from './define';
import type { inferenceConfigSpec, trainerConfigSpec } from './services';
export type InferenceConfig = ConfigOf<typeof inferenceConfigSpec>;
export type TrainerConfig = ConfigOf<typeof trainerConfigSpec>;
