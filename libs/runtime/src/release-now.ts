import { freeNow } from '@deit-serve/core';

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
 * the view spans that whole buffer (otherwise nothing happens: other views may share it). The buffer
 * is detached (empty) afterwards.
 */
export function releaseNow(view: ArrayBufferView): void {
  const buffer = wholeBuffer(view);
  if (buffer !== undefined && buffer.byteLength > 0) freeNow([buffer]);
}
