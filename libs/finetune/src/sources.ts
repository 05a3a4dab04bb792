/**
 * Start-time loading of everything a fine-tune reads: the student's weights, the frozen teacher (in
 * onnxruntime) and the data. Every problem is collected and thrown as one `InvalidSpecError`, so a bad
 * spec fails its job within seconds and names all of its mistakes at once, including label sets that
 * disagree. (StartFineTune itself checks only what is cheap: see {@link registryRefsSpecCheck}.)
 * Every file is opened through the sandbox's {@link FileAccess}: a path that leads out of the data
 * roots, even one swapped while it is being read, is refused with PERMISSION_DENIED naming its field.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { FileAccess, OutsideRootsError } from '@deit-serve/datasets';
import {
  adaptDeitWeights,
  isDeitPresetName,
  OnnxIoName,
  OnnxMetadataKey,
  readOnnxWeights,
  resolveDeitConfig,
  validateDeitConfig,
  type DeitConfig,
  type NamedWeights,
} from '@deit-serve/model';
import { presetWeights } from '@deit-serve/packaging';
import { labelsInOrder, type Manifest, type ModelRegistry } from '@deit-serve/registry';
import { OnnxModelSession } from '@deit-serve/runtime';
import {
  InvalidSpecError,
  PathNotAllowedError,
  specPaths,
  type PathSandbox,
  type FineTuneJobSpec,
  type SpecCheck,
  type SpecProblem,
} from '@deit-serve/trainer-engine';
import { labelMismatch, preview } from './label-sets';
import { loadData, type DatasetLimits, type FineTuneData, type ModelInput } from './source-data';

export { labelMismatch } from './label-sets';
export type { DatasetLimits, FineTuneData, ModelInput } from './source-data';

/** Largest student safetensors or teacher ONNX file read; a larger one is refused before reading. */
export const MAX_MODEL_FILE_BYTES = 1024 * 1024 * 1024;

export interface StudentSourceModel {
  readonly config: DeitConfig;
  /** Preset name recorded in the manifest (a timm preset or the parent's own name). */
  readonly preset: string;
  /** timm names, PyTorch layout; adapted to the data set's class count. */
  readonly weights: NamedWeights;
  readonly input: ModelInput;
  /** Known when the student comes from the registry. */
  readonly labels?: readonly string[];
  readonly parent?: { readonly name: string; readonly version: number };
  /** For logs and lineage: `fmnist-deit:3`, a file, or `preset deit_pico_…`. */
  readonly description: string;
  /** What was adapted on load (heads re-initialised, position embedding resampled). */
  readonly changes: readonly string[];
}

export interface TeacherModel {
  readonly session: OnnxModelSession;
  readonly inputName: string;
  /** [3, H, W] of one image. */
  readonly itemDims: readonly number[];
  /** Outputs whose logits are averaged (a distilled DeiT teacher has two heads; others one). */
  readonly outputs: readonly string[];
  readonly numClasses: number;
  readonly labels?: readonly string[];
  /** Per-channel statistics the teacher expects, when known (registry teachers). */
  readonly normalization?: { readonly mean: readonly number[]; readonly std: readonly number[] };
  /** Lineage text: `name:version` or the ONNX file and its sha256. */
  readonly description: string;
}

export interface FineTuneSources {
  readonly student: StudentSourceModel;
  readonly teacher?: TeacherModel;
  readonly data: FineTuneData;
}

export interface LoadSourcesOptions {
  /** Needed when the student or teacher is a registry ref. */
  readonly registry?: ModelRegistry;
  readonly signal?: AbortSignal;
  /** onnxruntime threads of the teacher; default one per core. */
  readonly teacherThreads?: number;
  /**
   * When given, every path of the spec must lie inside its roots (else PathNotAllowedError,
   * PERMISSION_DENIED, before anything is read), every file is opened through its FileAccess (a
   * file or folder found leading out while reading: PathNotAllowedError too), and an image file of
   * an image folder that a symlink leads out is skipped as a problem. Without it files are still
   * opened through FileAccess.anywhere: regular files only, sizes checked before reading.
   */
  readonly sandbox?: PathSandbox;
  /** How much data the job may load; default: no limit. */
  readonly datasetLimits?: DatasetLimits;
}

type Bad = (field: string, problem: string) => void;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Loads student, data set and teacher and checks that they fit together; throws one `InvalidSpecError`
 * listing every problem. On success the caller owns the teacher's session (release it).
 */
export async function loadFineTuneSources(
  spec: FineTuneJobSpec,
  options: LoadSourcesOptions = {},
): Promise<FineTuneSources> {
  const problems: SpecProblem[] = [];
  const bad: Bad = (field, problem) => void problems.push({ field, problem });
  // Checked again here, right before reading: the worker reads what the request named, and a
  // symlink may have been re-pointed since the request was accepted.
  await options.sandbox?.assertSpecAllowed(spec);
  const files = options.sandbox?.files ?? FileAccess.anywhere;
  const attempt = attemptFor(spec, options.sandbox);

  const student = await attempt(bad, studentField(spec), () => loadStudent(spec, options.registry, files));
  options.signal?.throwIfAborted();
  const data = await attempt(bad, datasetField(spec), () =>
    loadData(spec, student?.input, files, options.datasetLimits),
  );
  options.signal?.throwIfAborted();
  const teacher =
    spec.teacher === undefined
      ? undefined
      : await attempt(
          bad,
          spec.teacher.kind === 'registry' ? 'teacher.registry_ref' : 'teacher.onnx_path',
          () => loadTeacher(spec, options, files),
        );

  try {
    let adapted = student;
    if (student !== undefined && data !== undefined) {
      adapted = checkStudentFitsData(spec, student, data, bad);
    }
    if (teacher !== undefined) {
      checkTeacher(teacher, adapted, data, bad);
    }
    if (adapted !== undefined && !adapted.config.distilled && spec.distillation.type !== 'none') {
      bad(
        studentField(spec),
        `${adapted.description} has no distillation head (dist_token, head_dist); use distillation NONE or a distilled student`,
      );
    }
    if (
      adapted !== undefined &&
      spec.trainable.kind === 'last-blocks' &&
      spec.trainable.blocks > adapted.config.depth
    ) {
      bad(
        'trainable.last_blocks',
        `is ${spec.trainable.blocks} but ${adapted.description} has only ${adapted.config.depth} blocks`,
      );
    }
    if (problems.length > 0 || adapted === undefined || data === undefined) {
      throw new InvalidSpecError(problems);
    }
    return { student: adapted, data, ...(teacher !== undefined && { teacher }) };
  } catch (error) {
    await teacher?.session.release();
    throw error;
  }
}

/**
 * What StartFineTune checks of the models a spec names before queueing it: each registry ref (student,
 * teacher) resolves to a published version. Cheap: nothing is read. Whether the version is a DeiT,
 * its weights and its labels fit is checked by the job ({@link loadFineTuneSources}).
 */
export function registryRefsSpecCheck(registry: ModelRegistry): SpecCheck {
  return async (spec) => {
    const refs: [string, string][] = [];
    if (spec.student.kind === 'registry') refs.push(['student.registry_ref', spec.student.ref]);
    if (spec.teacher?.kind === 'registry') refs.push(['teacher.registry_ref', spec.teacher.ref]);
    const problems: SpecProblem[] = [];
    for (const [field, ref] of refs) {
      try {
        await registry.resolve(ref);
      } catch (error) {
        problems.push({ field, problem: messageOf(error) });
      }
    }
    return problems;
  };
}

type Attempt = <T>(bad: Bad, field: string, load: () => Promise<T>) => Promise<T | undefined>;

/**
 * Runs a load; a failure becomes a problem of `field` (or the problems it lists), except a path found
 * leading out of the data roots while reading: PathNotAllowedError (PERMISSION_DENIED) at once,
 * naming the field whose path holds it.
 */
function attemptFor(spec: FineTuneJobSpec, sandbox: PathSandbox | undefined): Attempt {
  return async (bad, field, load) => {
    try {
      return await load();
    } catch (error) {
      if (error instanceof OutsideRootsError) {
        const denial = {
          ...fieldOf(spec, error.path, field),
          resolved: error.resolved,
          problem: error.message,
        };
        throw new PathNotAllowedError([denial], sandbox?.roots ?? []);
      }
      if (error instanceof InvalidSpecError) {
        for (const p of error.problems) bad(p.field, p.problem);
      } else {
        bad(field, messageOf(error));
      }
      return undefined;
    }
  };
}

/** The spec field whose path is `path` or a folder holding it (the longest such), else `fallback`. */
function fieldOf(spec: FineTuneJobSpec, path: string, fallback: string): { field: string; path: string } {
  const holders = specPaths(spec).filter(
    (p) => path === p.path || path.startsWith(p.path.endsWith('/') ? p.path : `${p.path}/`),
  );
  holders.sort((a, b) => b.path.length - a.path.length);
  return holders[0] ?? { field: fallback, path };
}

function studentField(spec: FineTuneJobSpec): string {
  switch (spec.student.kind) {
    case 'registry':
      return 'student.registry_ref';
    case 'safetensors':
      return 'student.safetensors.path';
    case 'preset':
      return 'student.preset';
  }
}

function datasetField(spec: FineTuneJobSpec): string {
  return spec.dataset.source.kind === 'fashion-mnist'
    ? 'dataset.fashion_mnist.dir'
    : 'dataset.image_folder.train_dir';
}

// ---------------------------------------------------------------------------------------------
// Student

function requireRegistry(registry: ModelRegistry | undefined, what: string): ModelRegistry {
  if (registry === undefined) throw new Error(`${what} is a registry ref but no registry is configured`);
  return registry;
}

async function loadStudent(
  spec: FineTuneJobSpec,
  registry: ModelRegistry | undefined,
  files: FileAccess,
): Promise<StudentSourceModel> {
  const source = spec.student;
  switch (source.kind) {
    case 'registry': {
      const loaded = await requireRegistry(registry, 'the student').loadVersion(source.ref);
      const { manifest } = loaded;
      const ref = `${loaded.model}:${loaded.version}`;
      if (manifest.architecture !== 'deit') {
        throw new Error(`${ref} is a ${manifest.architecture} model; the student must be a DeiT`);
      }
      const bytes = loaded.files.get('model.onnx');
      if (bytes === undefined) throw new Error(`${ref} has no model.onnx`);
      const onnx = readOnnxWeights(bytes);
      const config = deitConfigFromOnnx(onnx.metadata, ref);
      return {
        config,
        preset: manifest.preset,
        weights: adaptDeitWeights(config, onnx.weights, spec.seed).weights,
        input: inputOf(manifest),
        labels: labelsInOrder(manifest.labels),
        parent: { name: loaded.model, version: loaded.version },
        description: ref,
        changes: [],
      };
    }
    case 'safetensors':
    case 'preset': {
      if (!isDeitPresetName(source.preset)) {
        throw new Error(`${source.preset} is not a DeiT preset; the student must be a DeiT`);
      }
      const safetensors =
        source.kind === 'safetensors'
          ? await files.readFile(source.path, { maxBytes: MAX_MODEL_FILE_BYTES })
          : undefined;
      const loaded = presetWeights({
        preset: source.preset,
        ...(safetensors !== undefined && { safetensors }),
        seed: spec.seed,
      });
      if (loaded.spec.architecture !== 'deit') throw new Error(`${source.preset} is not a DeiT`);
      return {
        config: loaded.spec.config as DeitConfig,
        preset: source.preset,
        weights: loaded.weights,
        input: loaded.input,
        description:
          source.kind === 'safetensors' ? `${source.path} (${source.preset})` : `preset ${source.preset}`,
        changes: loaded.changes,
      };
    }
  }
}

function inputOf(manifest: Manifest): ModelInput {
  const { name: _name, ...input } = manifest.input;
  return input;
}

/** The DeiT architecture from the metadata our exporter writes into every ONNX file. */
export function deitConfigFromOnnx(metadata: Readonly<Record<string, string>>, what: string): DeitConfig {
  const K = OnnxMetadataKey;
  const number = (key: string): number => {
    const value = Number(metadata[key]);
    if (metadata[key] === undefined || !Number.isFinite(value)) {
      throw new Error(`${what}: ONNX metadata has no numeric "${key}"; cannot rebuild the DeiT`);
    }
    return value;
  };
  const config: DeitConfig = {
    imgSize: number(K.imageSize),
    patchSize: number(K.patchSize),
    inChans: 3,
    embedDim: number(K.embedDim),
    depth: number(K.depth),
    numHeads: number(K.numHeads),
    mlpRatio: number(K.mlpRatio),
    numClasses: number(K.numClasses),
    distilled: metadata[K.distilled] === 'true',
  };
  validateDeitConfig(config);
  return config;
}

/** A registry student must already know the data set's classes; a preset's heads are re-initialised. */
function checkStudentFitsData(
  spec: FineTuneJobSpec,
  student: StudentSourceModel,
  data: FineTuneData,
  bad: Bad,
): StudentSourceModel {
  if (student.labels !== undefined) {
    const mismatch = labelMismatch(student.labels, data.labelNames);
    if (mismatch !== undefined) {
      bad('student', `student ${student.description} and the data set disagree on the labels: ${mismatch}`);
    }
    return student;
  }
  if (student.config.numClasses === data.labelNames.length) return student;
  const config = resolveDeitConfig({ preset: student.config, numClasses: data.labelNames.length });
  const adapted = adaptDeitWeights(config, student.weights, spec.seed);
  return { ...student, config, weights: adapted.weights, changes: [...student.changes, ...adapted.changes] };
}

// ---------------------------------------------------------------------------------------------
// Teacher

async function loadTeacher(
  spec: FineTuneJobSpec,
  options: LoadSourcesOptions,
  files: FileAccess,
): Promise<TeacherModel> {
  const source = spec.teacher;
  if (source === undefined) throw new Error('no teacher');
  const sessionOptions = {
    intraOpThreads: options.teacherThreads ?? availableParallelism(),
    logger: { warn: () => undefined },
  };
  if (source.kind === 'registry') {
    const loaded = await requireRegistry(options.registry, 'the teacher').loadVersion(source.ref);
    const bytes = loaded.files.get('model.onnx');
    const ref = `${loaded.model}:${loaded.version}`;
    if (bytes === undefined) throw new Error(`${ref} has no model.onnx`);
    const session = await OnnxModelSession.create(bytes, sessionOptions);
    const { manifest } = loaded;
    const outputs = [
      manifest.outputs.cls,
      ...(manifest.outputs.dist === null ? [] : [manifest.outputs.dist]),
    ];
    return finishTeacher(session, ref, outputs, {
      labels: labelsInOrder(manifest.labels),
      normalization: { mean: manifest.input.mean, std: manifest.input.std },
      inputName: manifest.input.name,
    });
  }
  const bytes = await files.readFile(source.path, { maxBytes: MAX_MODEL_FILE_BYTES });
  const session = await OnnxModelSession.create(bytes, sessionOptions);
  const sha = createHash('sha256').update(bytes).digest('hex');
  return finishTeacher(session, `${source.path} (sha256 ${sha})`, teacherOutputs(session.outputNames), {});
}

/**
 * Which outputs of an ONNX classifier are its logits: `logits` (RegNetY, most exporters), both DeiT
 * heads (averaged, as DeiT evaluates), or the only output.
 */
export function teacherOutputs(names: readonly string[]): string[] {
  if (names.includes(OnnxIoName.logits)) return [OnnxIoName.logits];
  if (names.includes(OnnxIoName.clsLogits) && names.includes(OnnxIoName.distLogits)) {
    return [OnnxIoName.clsLogits, OnnxIoName.distLogits];
  }
  if (names.length === 1) return [...names];
  throw new Error(
    `cannot tell which output holds the logits (outputs: ${names.join(', ')}); expected "${OnnxIoName.logits}" or one output`,
  );
}

async function finishTeacher(
  session: OnnxModelSession,
  description: string,
  outputs: readonly string[],
  known: {
    labels?: readonly string[];
    normalization?: TeacherModel['normalization'];
    inputName?: string;
  },
): Promise<TeacherModel> {
  try {
    const inputName =
      known.inputName ?? (session.inputNames.length === 1 ? session.inputNames[0] : OnnxIoName.pixelValues);
    if (!session.inputNames.includes(inputName)) {
      throw new Error(`teacher has no input "${inputName}" (inputs: ${session.inputNames.join(', ')})`);
    }
    const itemDims = session.itemDims(inputName);
    // The class count from a run: output shapes are often symbolic.
    const probe = await session.run({
      [inputName]: { data: new Float32Array(itemDims.reduce((a, b) => a * b, 1)), dims: [1, ...itemDims] },
    });
    const counts = outputs.map((name) => {
      const out = probe[name];
      if (out === undefined) throw new Error(`teacher has no output "${name}"`);
      return out.dims[out.dims.length - 1] ?? 0;
    });
    if (new Set(counts).size !== 1) {
      throw new Error(
        `teacher outputs ${outputs.join(', ')} have different class counts (${counts.join(', ')})`,
      );
    }
    return {
      session,
      inputName,
      itemDims,
      outputs,
      numClasses: counts[0] ?? 0,
      description,
      ...(known.labels !== undefined && { labels: known.labels }),
      ...(known.normalization !== undefined && { normalization: known.normalization }),
    };
  } catch (error) {
    await session.release();
    throw error;
  }
}

function checkTeacher(
  teacher: TeacherModel,
  student: StudentSourceModel | undefined,
  data: FineTuneData | undefined,
  bad: Bad,
): void {
  const field = 'teacher';
  const name = `teacher ${teacher.description}`;
  if (data !== undefined) {
    if (teacher.labels !== undefined) {
      const mismatch = labelMismatch(teacher.labels, data.labelNames);
      if (mismatch !== undefined) bad(field, `${name} and the data set disagree on the labels: ${mismatch}`);
    } else if (teacher.numClasses !== data.labelNames.length) {
      bad(
        field,
        `${name} has ${teacher.numClasses} classes but the data set has ${data.labelNames.length} (${preview(data.labelNames)})`,
      );
    }
  } else if (student?.labels !== undefined && teacher.labels !== undefined) {
    const mismatch = labelMismatch(teacher.labels, student.labels);
    if (mismatch !== undefined)
      bad(field, `${name} and student ${student.description} disagree: ${mismatch}`);
  }
  if (student !== undefined) {
    const size = student.config.imgSize;
    const [channels, height, width] = teacher.itemDims;
    if (channels !== 3 || height !== size || width !== size) {
      bad(
        field,
        `${name} takes [${teacher.itemDims.join(', ')}] images but the student takes [3, ${size}, ${size}]; ` +
          'the teacher must see the same augmented batch as the student',
      );
    }
  }
}
