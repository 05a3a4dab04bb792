/**
 * Start-time loading of everything a fine-tune reads: the student's weights, the frozen teacher (in
 * onnxruntime) and the data. Every problem is collected and thrown as one `InvalidSpecError`, so a bad
 * spec fails within seconds and names all of its mistakes at once, including label sets that disagree.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { ResourceExhaustedError } from '@deit-serve/core';
import {
  datasetHash,
  FASHION_MNIST_FILES,
  loadFashionMnist,
  loadImageFolder,
  type DatasetProblem,
  type ImageDataset,
} from '@deit-serve/datasets';
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
import { labelsInOrder, type InputSpec, type Manifest, type ModelRegistry } from '@deit-serve/registry';
import { OnnxModelSession } from '@deit-serve/runtime';
import {
  InvalidSpecError,
  type PathSandbox,
  type FineTuneJobSpec,
  type SpecCheck,
  type SpecProblem,
} from '@deit-serve/trainer-engine';

/** A model version's preprocessing as the manifest stores it (without the input name). */
export type ModelInput = Omit<InputSpec, 'name'>;

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

export interface FineTuneData {
  readonly train: ImageDataset;
  readonly eval: ImageDataset;
  readonly labelNames: readonly string[];
  /** The data set, for lineage (`fashion-mnist`, `image-folder:<dir name>`). */
  readonly name: string;
  /** Names the exact evaluation images, so metrics of different versions are compared like for like. */
  readonly evalSetName: string;
  /** sha256 of the training images and labels actually used (`datasetHash`). */
  readonly sha256: string;
  /** Images skipped while loading (corrupt, unreadable, not images). */
  readonly problems: readonly DatasetProblem[];
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
   * PERMISSION_DENIED, before anything is read), and so must every image file of an image folder
   * (one that a symlink leads out is skipped as a problem).
   */
  readonly sandbox?: PathSandbox;
  /** How much data the job may load; default: no limit. */
  readonly datasetLimits?: DatasetLimits;
}

/** The most a job's data set may hold: images (training and evaluation together) and file bytes. */
export interface DatasetLimits {
  readonly maxImages: number;
  readonly maxBytes: number;
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

  const student = await attempt(bad, studentField(spec), () => loadStudent(spec, options.registry));
  options.signal?.throwIfAborted();
  const data = await attempt(bad, datasetField(spec), () => loadData(spec, student?.input, options));
  options.signal?.throwIfAborted();
  const teacher =
    spec.teacher === undefined
      ? undefined
      : await attempt(
          bad,
          spec.teacher.kind === 'registry' ? 'teacher.registry_ref' : 'teacher.onnx_path',
          () => loadTeacher(spec, options),
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
 * The same loading as a `SpecCheck`, for a service that wants a bad spec rejected when the job is
 * requested rather than when it starts (it reads the data set and starts the teacher: seconds).
 */
export function sourcesSpecCheck(options: Omit<LoadSourcesOptions, 'signal'> = {}): SpecCheck {
  return async (spec, { signal }) => {
    try {
      const sources = await loadFineTuneSources(spec, {
        ...options,
        ...(signal !== undefined && { signal }),
      });
      await sources.teacher?.session.release();
      return [];
    } catch (error) {
      if (error instanceof InvalidSpecError) return error.problems;
      throw error;
    }
  };
}

/** Runs `load`; a failure becomes a problem of `field` (or the problems it lists). */
async function attempt<T>(bad: Bad, field: string, load: () => Promise<T>): Promise<T | undefined> {
  try {
    return await load();
  } catch (error) {
    if (error instanceof InvalidSpecError) {
      for (const p of error.problems) bad(p.field, p.problem);
    } else {
      bad(field, messageOf(error));
    }
    return undefined;
  }
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
      const safetensors = source.kind === 'safetensors' ? await readFile(source.path) : undefined;
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

async function loadTeacher(spec: FineTuneJobSpec, options: LoadSourcesOptions): Promise<TeacherModel> {
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
  const bytes = await readFile(source.path);
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

function preview(labels: readonly string[]): string {
  const shown = labels.slice(0, 10).map((l) => JSON.stringify(l));
  return shown.join(', ') + (labels.length > shown.length ? `, … ${labels.length - shown.length} more` : '');
}

/** Undefined when equal; otherwise what differs first (count, then the first differing name). */
export function labelMismatch(a: readonly string[], b: readonly string[]): string | undefined {
  if (a.length !== b.length) {
    return `${a.length} classes (${preview(a)}) vs ${b.length} classes (${preview(b)})`;
  }
  const i = a.findIndex((label, k) => label !== b[k]);
  if (i < 0) return undefined;
  return `class ${i} is ${JSON.stringify(a[i])} vs ${JSON.stringify(b[i])}`;
}

// ---------------------------------------------------------------------------------------------
// Data

async function loadData(
  spec: FineTuneJobSpec,
  input: ModelInput | undefined,
  options: LoadSourcesOptions,
): Promise<FineTuneData> {
  try {
    return await readData(spec, input, options);
  } catch (error) {
    if (!(error instanceof ResourceExhaustedError)) throw error;
    throw new InvalidSpecError([
      {
        field: 'dataset',
        problem: `${error.message} (the trainer's limit per job); set dataset.max_train_images and max_eval_images, or use a smaller data set`,
      },
    ]);
  }
}

/** Refuses a load that would take the job past its data set limits. */
class DataBudget {
  private images = 0;
  private bytes = 0;

  constructor(private readonly limits: DatasetLimits | undefined) {}

  get remaining(): { maxImages?: number; maxBytes?: number } {
    if (this.limits === undefined) return {};
    return { maxImages: this.limits.maxImages - this.images, maxBytes: this.limits.maxBytes - this.bytes };
  }

  /** Before reading files: their sizes on disk. */
  async reserveFiles(paths: readonly string[]): Promise<void> {
    if (this.limits === undefined) return;
    // A file that cannot be stat'ed is left to the loader, which reports it in its own words.
    const sizes = await Promise.all(
      paths.map((p) =>
        stat(p).then(
          (s) => s.size,
          () => 0,
        ),
      ),
    );
    this.addBytes(
      sizes.reduce((a, b) => a + b, 0),
      paths.join(', '),
    );
  }

  addBytes(count: number, what: string): void {
    this.bytes += count;
    if (this.limits !== undefined && this.bytes > this.limits.maxBytes) {
      throw new ResourceExhaustedError(
        `reading ${what} takes the data set to ${this.bytes.toLocaleString('en-US')} bytes, above the limit of ` +
          `${this.limits.maxBytes.toLocaleString('en-US')}`,
      );
    }
  }

  addImages(count: number, what: string): void {
    this.images += count;
    if (this.limits !== undefined && this.images > this.limits.maxImages) {
      throw new ResourceExhaustedError(
        `${what} takes the data set to ${this.images.toLocaleString('en-US')} images, above the limit of ` +
          `${this.limits.maxImages.toLocaleString('en-US')}`,
      );
    }
  }
}

async function readData(
  spec: FineTuneJobSpec,
  input: ModelInput | undefined,
  options: LoadSourcesOptions,
): Promise<FineTuneData> {
  const { source, validationFraction, maxTrainImages, maxEvalImages } = spec.dataset;
  const budget = new DataBudget(options.datasetLimits);
  const limit = (dataset: ImageDataset, max: number | undefined): ImageDataset =>
    max === undefined ? dataset : dataset.limit(max);
  const problems: DatasetProblem[] = [];
  let name: string;
  let train: ImageDataset;
  let evalSet: ImageDataset;
  let evalPart: string;
  if (source.kind === 'fashion-mnist') {
    name = 'fashion-mnist';
    const splitFiles = (split: 'train' | 'test') =>
      [FASHION_MNIST_FILES[split].images, FASHION_MNIST_FILES[split].labels].map((f) => join(source.dir, f));
    await budget.reserveFiles(splitFiles('train'));
    const full = (await loadFashionMnist(source.dir, 'train')).dataset;
    budget.addImages(full.size, `the Fashion-MNIST training split of ${source.dir}`);
    if (source.evalOnTest) {
      train = full;
      await budget.reserveFiles(splitFiles('test'));
      evalSet = (await loadFashionMnist(source.dir, 'test')).dataset;
      budget.addImages(evalSet.size, `the Fashion-MNIST test split of ${source.dir}`);
      evalPart = 'test';
    } else {
      ({ train, validation: evalSet } = full.split(validationFraction, spec.seed));
      evalPart = `train-holdout(${validationFraction},seed=${spec.seed})`;
    }
  } else {
    name = `image-folder:${basename(source.trainDir)}`;
    // Images are stored at the size the eval transform starts from, which bounds memory for large photos.
    const resize =
      input === undefined
        ? undefined
        : { size: Math.max(input.image_size, Math.floor(input.image_size / input.crop_pct)) };
    const sandbox = options.sandbox;
    const loadFolder = async (dir: string, max: number | undefined) => {
      const folder = await loadImageFolder(dir, {
        ...(max !== undefined && { limit: max }),
        ...(resize !== undefined && { resize }),
        ...budget.remaining,
        ...(sandbox !== undefined && { isAllowed: (path: string) => sandbox.contains(path) }),
      });
      problems.push(...folder.problems.map((p) => ({ ...p, path: `${dir}/${p.path}` })));
      budget.addBytes(folder.bytesRead, dir);
      budget.addImages(folder.dataset.size, dir);
      return folder.dataset;
    };
    if (source.valDir !== undefined) {
      train = await loadFolder(source.trainDir, maxTrainImages);
      evalSet = await loadFolder(source.valDir, maxEvalImages);
      evalPart = `val:${basename(source.valDir)}`;
      const mismatch = labelMismatch(train.labelNames, evalSet.labelNames);
      if (mismatch !== undefined) {
        throw new InvalidSpecError([
          { field: 'dataset.image_folder.val_dir', problem: `has other classes than train_dir: ${mismatch}` },
        ]);
      }
    } else {
      const both =
        maxTrainImages !== undefined && maxEvalImages !== undefined
          ? maxTrainImages + maxEvalImages
          : undefined;
      ({ train, validation: evalSet } = (await loadFolder(source.trainDir, both)).split(
        validationFraction,
        spec.seed,
      ));
      evalPart = `holdout(${validationFraction},seed=${spec.seed})`;
    }
  }
  train = limit(train, maxTrainImages);
  evalSet = limit(evalSet, maxEvalImages);
  const evalHash = datasetHash(evalSet);
  return {
    train,
    eval: evalSet,
    labelNames: train.labelNames,
    name,
    // The hash makes equal names mean equal images, whatever options produced them.
    evalSetName: `${name}/${evalPart}/${evalSet.size}@${evalHash.slice(0, 12)}`,
    sha256: datasetHash(train),
    problems,
  };
}
