export {
  ClassificationService,
  DEFAULT_TOP_K,
  type ClassificationOptions,
  type ClassifyContext,
  type Forward,
  type ForwardInput,
  type ForwardItem,
} from './classification.service';
export { disagreement, softmax, topK } from './heads';
export { LoadedModel, type BatchingOptions, type LoadOptions } from './loaded-model';
export { ModelCatalog } from './catalog';
export { fallbackCandidates, type Fallback } from './fallback';
export { InferenceMetrics } from './metrics';
export { ModelHost, type Lease, type ModelHostOptions } from './model-host';
