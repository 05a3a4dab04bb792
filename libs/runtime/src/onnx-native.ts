/**
 * onnxruntime-node in the calling thread, behind the plain-data NativeSession interface. Imports
 * nothing at run time but onnxruntime-node, so that the onnxruntime thread's entry can load it from
 * TypeScript sources under tests as well as from built JavaScript.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { releaseNow } from './release-now';
import type { NativeOutputs, NativeSession, NativeTensor, NativeValueInfo } from './onnx-thread';

/** Staging buffers kept per input: one per run in flight; batches of one model run one at a time. */
const STAGING_KEPT = 2;

/**
 * A session computing on the thread that calls `run` (onnxruntime-node blocks that thread meanwhile):
 * the main thread's sessions, and each session the onnxruntime thread holds.
 */
export class InProcessSession implements NativeSession {
  private readonly staging = new Map<string, ArrayBuffer[]>();
  /** Per input, the largest feed seen so far: the size of every staging buffer made from now on. */
  private readonly stagingCapacity = new Map<string, number>();

  private constructor(
    private readonly session: InferenceSession,
    readonly inputMetadata: readonly NativeValueInfo[],
    readonly outputMetadata: readonly NativeValueInfo[],
  ) {}

  static async create(
    bytes: Uint8Array,
    options: InferenceSession.SessionOptions,
  ): Promise<InProcessSession> {
    const session = await InferenceSession.create(bytes, options);
    const info = (m: InferenceSession.ValueMetadata): NativeValueInfo =>
      m.isTensor
        ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] }
        : { name: m.name, isTensor: false, type: 'non-tensor', shape: [] };
    return new InProcessSession(session, session.inputMetadata.map(info), session.outputMetadata.map(info));
  }

  async run(feeds: Readonly<Record<string, NativeTensor>>): Promise<NativeOutputs> {
    const ortFeeds: Record<string, Tensor> = {};
    const borrowed: [string, ArrayBuffer][] = [];
    try {
      for (const [name, feed] of Object.entries(feeds)) {
        let data = feed.data;
        if (data.buffer instanceof SharedArrayBuffer) {
          const staging = this.takeStaging(name, data.byteLength);
          borrowed.push([name, staging]);
          data = new Float32Array(staging, 0, data.length);
          data.set(feed.data);
        }
        ortFeeds[name] = new Tensor('float32', data, feed.dims);
      }
      const out = await this.session.run(ortFeeds);
      const outputs: NativeOutputs = {};
      for (const [name, tensor] of Object.entries(out)) {
        outputs[name] = { type: tensor.type, data: tensor.data, dims: tensor.dims };
      }
      return outputs;
    } finally {
      for (const [name, staging] of borrowed) this.giveStaging(name, staging);
    }
  }

  /**
   * onnxruntime-node refuses typed arrays over a SharedArrayBuffer ("Invalid argument"): such a feed
   * is copied into a staging buffer of this session's, reused from run to run (each run in flight has
   * its own), so that a steady load of shared batches allocates nothing here either. A staging buffer
   * is as large as the largest feed seen so far, so batches of varying sizes reuse it too; one that
   * is outgrown or not kept is freed at once (this thread allocates too little JavaScript for V8 to
   * collect soon: measured with heaptrack under bench/peers, buffers of each batch size seen piled up
   * to 34 MB before it did).
   */
  private takeStaging(name: string, bytes: number): ArrayBuffer {
    const free = this.staging.get(name) ?? [];
    const index = free.findIndex((b) => b.byteLength >= bytes);
    if (index >= 0) return free.splice(index, 1)[0];
    const capacity = Math.max(bytes, this.stagingCapacity.get(name) ?? 0);
    this.stagingCapacity.set(name, capacity);
    return new ArrayBuffer(capacity);
  }

  private giveStaging(name: string, buffer: ArrayBuffer): void {
    const free = this.staging.get(name) ?? [];
    free.push(buffer);
    const capacity = this.stagingCapacity.get(name) ?? 0;
    const kept = free.filter((b) => b.byteLength === capacity).slice(0, STAGING_KEPT);
    for (const b of free) if (!kept.includes(b)) releaseNow(new Uint8Array(b));
    this.staging.set(name, kept);
  }

  /** Byte sizes of the staging buffers kept for `name`, largest first (for tests). */
  stagingSizes(name: string): number[] {
    return (this.staging.get(name) ?? []).map((b) => b.byteLength);
  }

  release(): Promise<void> {
    this.staging.clear();
    this.stagingCapacity.clear();
    return this.session.release();
  }
}
