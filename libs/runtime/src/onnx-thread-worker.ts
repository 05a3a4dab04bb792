/**
 * Entry of the process's onnxruntime thread, which owns every worker-thread session (see
 * onnx-thread.ts). It imports nothing but Node, onnx-native.ts (onnxruntime-node), release-now.ts
 * (with @deit-serve/core's freeNow) and types, so that it starts quickly, from built JavaScript and from
 * TypeScript sources under the test runner alike.
 */
import { parentPort } from 'node:worker_threads';
import { InProcessSession } from './onnx-native';
import { releaseNow, wholeBuffer } from './release-now';
import type { NativeOutputs, Reply, Request } from './onnx-thread';

/** Output buffers move to the main thread instead of being copied when they are whole. */
function transferable(outputs: NativeOutputs): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const { data } of Object.values(outputs)) {
    const buffer = ArrayBuffer.isView(data) ? wholeBuffer(data) : undefined;
    if (buffer !== undefined) buffers.add(buffer);
  }
  return [...buffers];
}

function serveSessions(): void {
  const port = parentPort;
  if (!port) return;
  const sessions = new Map<number, InProcessSession>();
  const reply = (message: Reply, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
  port.on('message', (request: Request) => {
    void (async () => {
      try {
        switch (request.type) {
          case 'create': {
            let session: InProcessSession;
            try {
              session = await InProcessSession.create(request.bytes, request.options);
            } finally {
              // onnxruntime keeps its own copy of the model; this thread allocates too little for a
              // collection to come soon, and the bytes (24 MB for DeiT-Ti) would stay resident.
              releaseNow(request.bytes);
            }
            sessions.set(request.session, session);
            reply({
              type: 'created',
              id: request.id,
              inputs: [...session.inputMetadata],
              outputs: [...session.outputMetadata],
            });
            return;
          }
          case 'run': {
            const session = sessions.get(request.session);
            if (!session) throw new Error(`session ${request.session} is not open on the onnxruntime thread`);
            const outputs = await session.run(request.feeds);
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
