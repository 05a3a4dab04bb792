/**
 * The bridge between `deit finetune`'s flags and the FineTuneSpec fields the trainer validates: the
 * values the CLI fills in when a flag is left out, and the flag behind each field the trainer may
 * name in an INVALID_ARGUMENT, so that a user reads the flag they typed, not a proto field path.
 */

/** What `deit finetune` sends when the flag is not given (the trainer requires both fields). */
export const FINETUNE_FLAG_DEFAULTS = { epochs: 1, batchSize: 64 } as const;

/** Spec field path (as the trainer's problems name it) → the flag that sets it. */
const FIELD_FLAGS: Readonly<Record<string, string>> = {
  output_model: '--output',
  'student.registry_ref': '--student-ref',
  'student.preset': '--student-preset',
  'student.safetensors.path': '--student-safetensors',
  'student.safetensors.preset': '--student-preset',
  'teacher.registry_ref': '--teacher-ref',
  'teacher.onnx_path': '--teacher-onnx',
  dataset: '--dataset',
  'dataset.fashion_mnist.dir': '--dataset',
  'dataset.image_folder.train_dir': '--image-folder',
  'dataset.image_folder.val_dir': '--val-dir',
  'dataset.max_train_images': '--max-train',
  'dataset.max_eval_images': '--max-eval',
  'distillation.type': '--distillation',
  'distillation.alpha': '--alpha',
  'distillation.tau': '--tau',
  'distillation.soft_normalization': '--soft-norm',
  'optimization.epochs': '--epochs',
  'optimization.batch_size': '--batch-size',
  'optimization.lr': '--lr',
  'optimization.weight_decay': '--weight-decay',
  'optimization.warmup_epochs': '--warmup-epochs',
  'optimization.label_smoothing': '--label-smoothing',
  'optimization.drop_path': '--drop-path',
  'augmentation.crop': '--crop',
  'augmentation.padding': '--padding',
  'augmentation.random_erasing': '--random-erasing',
  'augmentation.mixup_alpha': '--mixup',
  'augmentation.cutmix_alpha': '--cutmix',
  seed: '--seed',
  'trainable.last_blocks': '--last-blocks',
  eval_interval_epochs: '--eval-interval',
  'promotion.alias': '--promote',
  'promotion.min_improvement': '--min-improvement',
};

/**
 * The trainer's message with each field it names that a flag sets written as `--flag (field)`.
 * Fields are matched whole (as `field:` at the start of a problem), longest first.
 */
export function withFlagNames(message: string): string {
  const fields = Object.keys(FIELD_FLAGS).sort((a, b) => b.length - a.length);
  const pattern = new RegExp(`(^|[\\s;(])(${fields.map((f) => f.replace(/\./g, '\\.')).join('|')}):`, 'g');
  return message.replace(
    pattern,
    (_, before: string, field: string) => `${before}${FIELD_FLAGS[field]} (${field}):`,
  );
}
