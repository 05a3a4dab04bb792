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
    for (const [name, feed] of Object.entries(feeds))
      ortFeeds[name] = new Tensor('float32', feed.data, feed.dims);
    const out = await this.session.run(ortFeeds);
    const outputs: NativeOutputs = {};
    for (const [name, tensor] of Object.entries(out)) {
      outputs[name] = { type: tensor.type, data: tensor.data, dims: tensor.dims };
    }
    return outputs;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
