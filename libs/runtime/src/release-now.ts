import { MessageChannel } from 'node:worker_threads';

/**
 * Frees an ArrayBuffer's memory now rather than at some later garbage collection: it moves into a
 * message on a channel that is then closed, and closing drops the message with its memory. The
 * buffer is detached (empty) afterwards. Imports nothing but Node (the onnxruntime thread uses it).
 */
export function releaseNow(buffer: ArrayBufferLike): void {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) return;
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(null, [buffer]);
  port1.close();
  port2.close();
}
