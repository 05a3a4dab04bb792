import { InvalidArgumentError } from '@deit-serve/core';
import { z } from 'zod';
import { MAX_NAME_LENGTH } from './refs';

/**
 * `manifest.json` of a model version: everything needed to serve the version without outside knowledge
 * (preprocessing, output names, labels), where it came from (lineage) and a self-check sample.
 *
 * Field names follow timm / transformers (`crop_pct`, `id2label`) and are snake_case because the file is
 * also read by Python tooling. Bump {@link MANIFEST_SCHEMA_VERSION} on any incompatible change; readers
 * refuse versions they do not know instead of guessing.
 */
export const MANIFEST_SCHEMA_VERSION = 1;

/** The one file every version must have. */
export const MODEL_FILE = 'model.onnx';
export const MANIFEST_FILE = 'manifest.json';
export const LABELS_FILE = 'labels.txt';

// Flat file names only: no directories inside a version keeps path handling trivial and safe.
const FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export const fileNameSchema = z
  .string()
  .max(128)
  .regex(FILE_NAME_PATTERN, 'file names are flat: letters, digits, ".", "_" and "-", no directories')
  .refine((name) => !name.includes('..'), 'file names must not contain ".."')
  .refine((name) => name !== MANIFEST_FILE, `${MANIFEST_FILE} is written by the registry`);

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (sha256)');

export const fileEntrySchema = z.strictObject({
  sha256: sha256Schema,
  size: z.int().nonnegative(),
});

const nameSchema = z
  .string()
  .min(1)
  .max(MAX_NAME_LENGTH)
  .regex(/^[a-z0-9][a-z0-9._-]*$/)
  .refine((name) => !name.includes('..'), 'must not contain ".."');

/**
 * Lets a cross-field check run although unrelated fields failed, so that one parse reports every problem
 * (zod skips refinements of objects with issues unless told when it is safe).
 */
function whenValid(...keys: string[]): { when: (payload: z.core.ParsePayload) => boolean } {
  return { when: (payload) => !payload.issues.some((issue) => keys.includes(String(issue.path?.[0]))) };
}

const finite = z.number().refine(Number.isFinite, 'must be finite');
const fraction = z.number().min(0).max(1);

export const interpolationSchema = z.enum(['bicubic', 'bilinear', 'nearest']);
export type Interpolation = z.infer<typeof interpolationSchema>;

export const inputSpecSchema = z
  .strictObject({
    /** ONNX input name. */
    name: z.string().min(1).default('pixel_values'),
    /** Side of the square image the model takes. */
    image_size: z.int().positive(),
    channels: z.int().positive(),
    mean: z.array(finite),
    std: z.array(finite.refine((v) => v > 0, 'must be > 0')),
    interpolation: interpolationSchema,
    /** timm convention: resize to image_size / crop_pct, then center-crop image_size. */
    crop_pct: z.number().gt(0).max(1),
  })
  .superRefine(
    (input, ctx) => {
      for (const key of ['mean', 'std'] as const) {
        if (input[key].length !== input.channels) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: `has ${input[key].length} values but channels is ${input.channels}`,
          });
        }
      }
    },
    whenValid('mean', 'std', 'channels'),
  );

export const outputsSchema = z.strictObject({
  /** ONNX output name of the class-token head. */
  cls: z.string().min(1),
  /** ONNX output name of the distillation-token head; null for models without one. */
  dist: z.string().min(1).nullable(),
});

export const metricsSchema = z.strictObject({
  /** Name of the fixed evaluation set, so that numbers of different versions are comparable. */
  eval_set: z.string().min(1),
  top1: z.strictObject({
    cls: fraction,
    dist: fraction.nullable().default(null),
    avg: fraction.nullable().default(null),
  }),
  teacher_top1: fraction.nullable().default(null),
});

export const lineageSchema = z.strictObject({
  parent: z.strictObject({ name: nameSchema, version: z.int().positive() }).nullable().default(null),
  /** Teacher model used for distillation (free text: a registry ref, a timm name, ...). */
  teacher: z.string().min(1).nullable().default(null),
  dataset: z
    .strictObject({ name: z.string().min(1), sha256: sha256Schema.nullable().default(null) })
    .nullable()
    .default(null),
  hyperparameters: z.record(z.string(), z.json()).default({}),
  git_commit: z.string().min(1).nullable().default(null),
  /** Training backend, e.g. `tfjs-wasm` or `pytorch`. */
  backend: z.string().min(1).nullable().default(null),
  /**
   * The trainer job that published this version. A resumed job looks for it to adopt the version
   * instead of publishing a second one, so each job publishes at most once.
   */
  job_id: z.string().min(1).nullable().default(null),
});

/** A float32 tensor stored little-endian and base64-encoded. */
export const tensorSchema = z
  .strictObject({
    shape: z.array(z.int().nonnegative()).min(1),
    data: z.base64(),
  })
  .superRefine(
    (tensor, ctx) => {
      const expected = tensor.shape.reduce((a, b) => a * b, 1) * 4;
      const actual = Buffer.from(tensor.data, 'base64').byteLength;
      if (actual !== expected) {
        ctx.addIssue({
          code: 'custom',
          path: ['data'],
          message: `holds ${actual} bytes but shape [${tensor.shape.join(', ')}] of float32 needs ${expected}`,
        });
      }
    },
    whenValid('shape', 'data'),
  );

export const selfCheckSchema = z.strictObject({
  input: tensorSchema,
  /** Expected outputs keyed by ONNX output name. */
  expected: z.record(z.string().min(1), tensorSchema),
  tolerance: z.strictObject({ atol: z.number().nonnegative(), rtol: z.number().nonnegative().default(0) }),
});

/** id2label as in transformers' config.json: keys are the class ids 0..n-1 written as strings. */
export const labelsSchema = z
  .record(z.string().regex(/^(0|[1-9][0-9]*)$/), z.string().regex(/^[^\r\n]*$/, 'labels are single lines'))
  .superRefine((labels, ctx) => {
    const count = Object.keys(labels).length;
    if (count === 0) ctx.addIssue({ code: 'custom', message: 'needs at least one label' });
    for (let id = 0; id < count; id++) {
      if (!(String(id) in labels)) {
        ctx.addIssue({ code: 'custom', message: `ids must be 0..${count - 1}; ${id} is missing` });
        return;
      }
    }
  });

/** The fields a publisher supplies; the registry adds schema_version, name, version, created_at and files. */
export const manifestFieldsSchema = z.strictObject({
  architecture: z.string().min(1),
  /** Named configuration of the architecture, e.g. `deit_tiny_distilled_patch16_224`. */
  preset: z.string().min(1),
  input: inputSpecSchema,
  outputs: outputsSchema,
  labels: labelsSchema,
  metrics: metricsSchema.nullable().default(null),
  lineage: lineageSchema.nullable().default(null),
  self_check: selfCheckSchema.nullable().default(null),
});

function checkConsistency(
  manifest: z.output<typeof manifestFieldsSchema>,
  ctx: z.RefinementCtx,
  files?: Record<string, unknown>,
): void {
  if (manifest.self_check !== null) {
    const outputNames = [manifest.outputs.cls, manifest.outputs.dist].filter((n) => n !== null);
    for (const name of Object.keys(manifest.self_check.expected)) {
      if (!outputNames.includes(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['self_check', 'expected', name],
          message: `is not one of the outputs (${outputNames.join(', ')})`,
        });
      }
    }
  }
  if (files !== undefined && !(MODEL_FILE in files)) {
    ctx.addIssue({ code: 'custom', path: ['files'], message: `must include ${MODEL_FILE}` });
  }
}

export const manifestSchema = z
  .strictObject({
    schema_version: z.literal(MANIFEST_SCHEMA_VERSION),
    name: nameSchema,
    version: z.int().positive(),
    created_at: z.iso.datetime({ offset: true }),
    files: z.record(fileNameSchema, fileEntrySchema),
    ...manifestFieldsSchema.shape,
  })
  .superRefine(
    (manifest, ctx) => checkConsistency(manifest, ctx, manifest.files),
    whenValid('self_check', 'outputs', 'files'),
  );

export const publishFieldsSchema = manifestFieldsSchema.superRefine(
  (fields, ctx) => checkConsistency(fields, ctx),
  whenValid('self_check', 'outputs'),
);

/** A validated manifest as stored (defaults filled in). */
export type Manifest = z.output<typeof manifestSchema>;
/** What a publisher may pass: optional parts can be left out. */
export type ManifestFields = z.input<typeof manifestFieldsSchema>;
export type InputSpec = z.output<typeof inputSpecSchema>;
export type OutputNames = z.output<typeof outputsSchema>;
export type Metrics = z.output<typeof metricsSchema>;
export type Lineage = z.output<typeof lineageSchema>;
export type SelfCheck = z.output<typeof selfCheckSchema>;
export type EncodedTensor = z.output<typeof tensorSchema>;
export type FileEntry = z.output<typeof fileEntrySchema>;
export type Id2Label = z.output<typeof labelsSchema>;

/** One line per problem, with the path of the offending field, so that a bad manifest is fixed in one go. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map(
      (issue) => `${issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)'}: ${issue.message}`,
    )
    .join('; ');
}

/** Validates publisher-supplied fields; throws InvalidArgumentError listing every problem. */
export function parseManifestFields(fields: unknown): z.output<typeof manifestFieldsSchema> {
  const result = publishFieldsSchema.safeParse(fields);
  if (!result.success) throw new InvalidArgumentError(`invalid manifest: ${describeZodError(result.error)}`);
  return result.data;
}

/**
 * Validates a complete manifest. Returns the problems instead of throwing because the caller decides the
 * error kind: bad input from a publisher is INVALID_ARGUMENT, a bad stored manifest is DATA_LOSS.
 */
export function safeParseManifest(
  value: unknown,
): { ok: true; manifest: Manifest } | { ok: false; problem: string } {
  if (typeof value === 'object' && value !== null && 'schema_version' in value) {
    const schemaVersion = value.schema_version;
    if (schemaVersion !== MANIFEST_SCHEMA_VERSION) {
      return {
        ok: false,
        problem: `unsupported schema_version ${JSON.stringify(schemaVersion)} (this build reads ${MANIFEST_SCHEMA_VERSION})`,
      };
    }
  }
  const result = manifestSchema.safeParse(value);
  return result.success
    ? { ok: true, manifest: result.data }
    : { ok: false, problem: describeZodError(result.error) };
}

/** Encodes a float32 tensor for a manifest (little-endian, base64). */
export function encodeTensor(shape: readonly number[], data: Float32Array): EncodedTensor {
  const expected = shape.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new InvalidArgumentError(
      `tensor has ${data.length} values but shape [${shape.join(', ')}] needs ${expected}`,
    );
  }
  const bytes = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) bytes.writeFloatLE(data[i] ?? 0, i * 4);
  return { shape: [...shape], data: bytes.toString('base64') };
}

/** Decodes a tensor written by {@link encodeTensor}; endianness-independent. */
export function decodeTensor(tensor: EncodedTensor): { shape: number[]; data: Float32Array } {
  const bytes = Buffer.from(tensor.data, 'base64');
  const data = new Float32Array(bytes.byteLength / 4);
  for (let i = 0; i < data.length; i++) data[i] = bytes.readFloatLE(i * 4);
  return { shape: [...tensor.shape], data };
}

/** Labels in id order, as in labels.txt (one per line). */
export function labelsInOrder(labels: Id2Label): string[] {
  return Array.from({ length: Object.keys(labels).length }, (_, id) => labels[String(id)] ?? '');
}

/** Parses labels.txt (one label per line, line i is class i; a trailing newline is ignored). */
export function parseLabelsText(text: string): Id2Label {
  const lines = text.replace(/\r\n/g, '\n').replace(/\n$/, '').split('\n');
  return Object.fromEntries(lines.map((label, id) => [String(id), label]));
}

export function formatLabelsText(labels: Id2Label): string {
  return labelsInOrder(labels).join('\n') + '\n';
}
