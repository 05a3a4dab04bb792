/**
 * onnxruntime-node in the calling thread, behind the plain-data NativeSession interface. Imports
 * nothing at run time but onnxruntime-node, so that the onnxruntime thread's entry can load it from
 * TypeScript sources under tests as well as from built JavaScript.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { NativeOutputs, NativeSession, NativeTensor, NativeValueInfo } from './onnx-thread';

/**
 * A session computing on the thread that calls `run` (onnxruntime-node blocks that thread meanwhile):
 * the main thread's sessions, and each session the onnxruntime thread holds.
 */
export class InProcessSession implements NativeSession {
  private readonly staging = new Map<string, ArrayBuffer[]>();

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
   * its own), so that a steady load of shared batches allocates nothing here either.
   */
  private takeStaging(name: string, bytes: number): ArrayBuffer {
    const free = this.staging.get(name) ?? [];
    const index = free.findIndex((b) => b.byteLength >= bytes);
    return index >= 0 ? free.splice(index, 1)[0] : new ArrayBuffer(bytes);
  }

  private giveStaging(name: string, buffer: ArrayBuffer): void {
    const free = this.staging.get(name) ?? [];
    this.staging.set(name, free);
    if (free.length < 2) free.push(buffer);
  }

  release(): Promise<void> {
    this.staging.clear();
    return this.session.release();
  }
}
