import { freeNow } from '@deit-serve/core';

/**
 * grpc-js (1.14) joins each received message into a Buffer of its own (the 5-byte frame header and the
 * message: `Buffer.concat` in its stream decoder), and the generated decoders give `bytes` fields as
 * views into it. Node's HTTP/2 reads are at most 64 KiB and its Buffer pool is 8 KiB, so a larger
 * buffer that such a view reaches the end of can only be that message's own.
 */
const OWN_MESSAGE_MIN_BYTES = 64 * 1024 + 1;

/** The ArrayBuffer holding nothing but the received message that `view` is a `bytes` field of, if it is one. */
export function messageBufferOf(view: Uint8Array): ArrayBuffer | undefined {
  const { buffer } = view;
  return buffer instanceof ArrayBuffer &&
    buffer.byteLength >= OWN_MESSAGE_MIN_BYTES &&
    view.byteOffset + view.byteLength === buffer.byteLength
    ? buffer
    : undefined;
}

/**
 * Frees the memory of a handled request's message now instead of at V8's next collection
 * (`freeNow`), which also takes its size off V8's count of external memory at once. That count drives V8's full collections here: each
 * tensor request brings ≈ 1.2 MB of buffers and a mark-compact came every ≈ 25 calls at c=1
 * (bench/README.md, "Memory"). Call it only once nothing reads the request any more (the answer is
 * made and every item of it computed); the views into the buffer are empty afterwards.
 */
export function releaseReceivedBytes(fields: readonly Uint8Array[]): number {
  const buffers = new Set<ArrayBuffer>();
  for (const field of fields) {
    const buffer = messageBufferOf(field);
    if (buffer) buffers.add(buffer);
  }
  freeNow(buffers);
  return buffers.size;
}
