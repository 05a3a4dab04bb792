/**
 * The frozen teacher on onnxruntime, fed the very batch the student trains on (augmented and mixed).
 * When the teacher was trained with other normalisation statistics than the student, the batch is
 * re-normalised per channel — an affine map of the same pixels, so the teacher still sees the same
 * image the student does.
 */
import type { TeacherModel } from './sources';

export interface Normalization {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** Per channel `a·x + b` taking student-normalised pixels to the teacher's normalisation; undefined if equal. */
export function renormalization(
  student: Normalization,
  teacher: Normalization | undefined,
): { scale: Float32Array; shift: Float32Array } | undefined {
  if (teacher === undefined) return undefined;
  const channel = (values: readonly number[], c: number): number => values[values.length === 1 ? 0 : c] ?? 0;
  const scale = new Float32Array(3);
  const shift = new Float32Array(3);
  let identity = true;
  for (let c = 0; c < 3; c++) {
    const ss = channel(student.std, c);
    const sm = channel(student.mean, c);
    const ts = channel(teacher.std, c);
    const tm = channel(teacher.mean, c);
    // (x·ss + sm − tm) / ts
    scale[c] = ss / ts;
    shift[c] = (sm - tm) / ts;
    if (Math.abs(scale[c] - 1) > 1e-7 || Math.abs(shift[c]) > 1e-7) identity = false;
  }
  return identity ? undefined : { scale, shift };
}

export class TeacherRunner {
  private readonly affine: ReturnType<typeof renormalization>;

  constructor(
    readonly model: TeacherModel,
    studentNormalization: Normalization,
  ) {
    this.affine = renormalization(studentNormalization, model.normalization);
  }

  /** Logits [B, classes] of NCHW `pixels` (the student's normalisation). */
  async logits(pixels: Float32Array, dims: readonly number[]): Promise<Float32Array> {
    const input = this.affine === undefined ? pixels : this.apply(pixels, dims);
    const out = await this.model.session.run({ [this.model.inputName]: { data: input, dims } });
    const heads = this.model.outputs.map((name) => out[name]?.data);
    const [first, ...rest] = heads;
    if (first === undefined || rest.some((h) => h === undefined)) {
      throw new Error(`teacher did not return ${this.model.outputs.join(', ')}`);
    }
    if (rest.length === 0) return first;
    // Average of logits, as DeiT evaluates its two heads.
    const mean = new Float32Array(first.length);
    const all = [first, ...rest];
    for (let i = 0; i < mean.length; i++) {
      let sum = 0;
      for (const h of all) sum += h[i];
      mean[i] = sum / all.length;
    }
    return mean;
  }

  private apply(pixels: Float32Array, dims: readonly number[]): Float32Array {
    const { scale, shift } = this.affine as { scale: Float32Array; shift: Float32Array };
    const [batch = 0, channels = 0, height = 0, width = 0] = dims;
    const plane = height * width;
    const out = new Float32Array(pixels.length);
    for (let b = 0; b < batch; b++) {
      for (let c = 0; c < channels; c++) {
        const base = (b * channels + c) * plane;
        const a = scale[c];
        const s = shift[c];
        for (let i = 0; i < plane; i++) out[base + i] = pixels[base + i] * a + s;
      }
    }
    return out;
  }

  release(): Promise<void> {
    return this.model.session.release();
  }
}
