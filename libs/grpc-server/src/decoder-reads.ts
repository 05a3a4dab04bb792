/**
 * grpc-js (1.14) decodes each HTTP/2 stream with a `StreamDecoder` that keeps views of the reads a
 * message arrived in (`readPartialMessage`, and `readCompressFlag`, a 1-byte view of the first read)
 * until the next message on that stream begins: for a unary call, for as long as the call lives.
 * Each view pins a whole 64 KiB read of Node's HTTP/2 session, so a tensor request's ≈ 0.8 MB of
 * reads outlived its decoding, were promoted with the call's objects, and left V8's external-memory
 * count only at the next full collection. That count starts V8's mark-compacts here: at c=1 it grew
 * ≈ 13 MB/s and a mark-compact (up to 20 ms of marking steps on the main thread) came every ≈ 2 s.
 * With the views dropped once a message is complete, the reads die young: ≈ 2 MB/s and one
 * mark-compact every ≈ 6 s (bench/README.md, "Memory"; `npm run bench:peers`).
 *
 * Done by wrapping the decoder's `write`: after it returns, a decoder back at the start of a message
 * (no message partly read) lets go of the finished message's reads; its output is untouched.
 */
import { StreamDecoder } from '@grpc/grpc-js/build/src/stream-decoder';

/** grpc-js's ReadState.NO_DATA: between messages. */
const NO_DATA = 0;

interface DecoderState {
  readState: number;
  readPartialMessage: Buffer[];
  readCompressFlag: Buffer;
}

const wrapped = Symbol('deit-serve: finished reads released');

type Writable = { write: (data: Buffer) => Buffer[]; [wrapped]?: true };

/**
 * Makes every `StreamDecoder` of this process release a finished message's reads (once per process;
 * later calls do nothing). Returns false, changing nothing, if the decoder no longer has the fields
 * this relies on (another grpc-js version): the service then works as before, with more GC.
 */
export function releaseDecodedReads(decoder: { prototype: unknown } = StreamDecoder): boolean {
  const proto = decoder.prototype as Writable;
  if (proto[wrapped] === true) return true;
  const probe = new (decoder as unknown as new (max: number) => DecoderState)(-1);
  if (
    probe.readState !== NO_DATA ||
    !Array.isArray(probe.readPartialMessage) ||
    !Buffer.isBuffer(probe.readCompressFlag)
  ) {
    return false;
  }
  const write: (this: DecoderState, data: Buffer) => Buffer[] = Reflect.get(proto, 'write');
  const spare = Buffer.alloc(1);
  proto.write = function (this: DecoderState, data: Buffer): Buffer[] {
    const messages = write.call(this, data);
    if (this.readState === NO_DATA && this.readPartialMessage.length > 0) {
      this.readPartialMessage = [];
      this.readCompressFlag = spare;
    }
    return messages;
  };
  proto[wrapped] = true;
  return true;
}
