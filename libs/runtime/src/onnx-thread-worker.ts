/**
 * Entry of the process's onnxruntime thread, which owns every worker-thread session (see onnx-thread.ts). It imports nothing but
 * onnxruntime-node, Node and types, so that it starts the same from built JavaScript and from
 * TypeScript sources under the test runner.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { parentPort } from 'node:worker_threads';
import type { NativeOutputs, NativeValueInfo, Reply, Request } from './onnx-thread';

/** Output buffers move to the main thread instead of being copied when they are whole. */
function transferable(outputs: NativeOutputs): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const { data } of Object.values(outputs)) {
    if (ArrayBuffer.isView(data) && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) {
      if (data.buffer instanceof ArrayBuffer) buffers.add(data.buffer);
    }
  }
  return [...buffers];
}

function serveSessions(): void {
  const port = parentPort;
  if (!port) return;
  const sessions = new Map<number, InferenceSession>();
  const reply = (message: Reply, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
  port.on('message', (request: Request) => {
    void (async () => {
      try {
        switch (request.type) {
          case 'create': {
            const session = await InferenceSession.create(request.bytes, request.options);
            sessions.set(request.session, session);
            const info = (m: InferenceSession.ValueMetadata): NativeValueInfo =>
              m.isTensor
                ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] }
                : { name: m.name, isTensor: false, type: 'non-tensor', shape: [] };
            reply({
              type: 'created',
              id: request.id,
              inputs: session.inputMetadata.map(info),
              outputs: session.outputMetadata.map(info),
            });
            return;
          }
          case 'run': {
            const session = sessions.get(request.session);
            if (!session) throw new Error(`session ${request.session} is not open on the onnxruntime thread`);
            const feeds: Record<string, Tensor> = {};
            for (const [name, feed] of Object.entries(request.feeds)) {
              feeds[name] = new Tensor('float32', feed.data, feed.dims);
            }
            const out = await session.run(feeds);
            const outputs: NativeOutputs = {};
            for (const [name, tensor] of Object.entries(out)) {
              outputs[name] = { type: tensor.type, data: tensor.data, dims: tensor.dims };
            }
            reply({ type: 'ran', id: request.id, outputs }, transferable(outputs));
            return;
          }
          case 'release':
            await sessions.get(request.session)?.release();
            sessions.delete(request.session);
            reply({ type: 'released', id: request.id });
            return;
        }
      } catch (error) {
        reply({
          type: 'failed',
          id: request.id,
          message: error instanceof Error ? error.message : String(error),
        });
      }
    })();
  });
}

serveSessions();
