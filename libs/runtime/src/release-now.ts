import { MessageChannel } from 'node:worker_threads';

/**
 * The ArrayBuffer behind `view` when the view spans all of it (so moving or freeing the buffer takes
 * nothing anyone else sees through another view), else undefined. SharedArrayBuffers are never whole
 * in this sense: they cannot be moved.
 */
export function wholeBuffer(view: ArrayBufferView): ArrayBuffer | undefined {
  const { buffer } = view;
  return buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === buffer.byteLength
    ? buffer
    : undefined;
}

/**
 * Frees the memory of the buffer behind `view` now rather than at some later garbage collection, when
 * the view spans that whole buffer (otherwise nothing happens: other views may share it): the buffer
 * moves into a message on a channel that is then closed, and closing drops the message with its
 * memory. The buffer is detached (empty) afterwards. Imports nothing but Node (the onnxruntime thread
 * uses it).
 */
export function releaseNow(view: ArrayBufferView): void {
  const buffer = wholeBuffer(view);
  if (buffer === undefined || buffer.byteLength === 0) return;
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(null, [buffer]);
  port1.close();
  port2.close();
}
