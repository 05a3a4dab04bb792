import { StreamDecoder } from '@grpc/grpc-js/build/src/stream-decoder';
import { describe, expect, it } from 'vitest';
import { releaseDecodedReads } from './decoder-reads';

/** A gRPC frame: compressed flag 0, big-endian length, the message. */
function frame(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

interface Inside {
  readPartialMessage: Buffer[];
  readCompressFlag: Buffer;
}

describe("grpc-js's stream decoder with finished reads released", () => {
  it('decodes the same messages and keeps no view of a finished message', () => {
    expect(releaseDecodedReads()).toBe(true);
    expect(releaseDecodedReads()).toBe(true); // once per process
    const message = Uint8Array.from({ length: 200_000 }, (_, i) => i % 251);
    const bytes = Buffer.concat([frame(message), frame(Uint8Array.of(7, 8, 9))]);
    const decoder = new StreamDecoder(-1);
    const inside = decoder as unknown as Inside;
    // As HTTP/2 delivers it: reads of at most 64 KiB, the first message's end and the second's start
    // in one read.
    const out: Buffer[] = [];
    let last: Buffer | undefined;
    for (let at = 0; at < bytes.length; at += 65_536) {
      last = bytes.subarray(at, Math.min(at + 65_536, bytes.length));
      out.push(...decoder.write(last));
      if (out.length === 0) expect(inside.readPartialMessage.length).toBeGreaterThan(0); // mid-message
    }
    expect(out.map((m) => m.length)).toEqual([200_005, 8]);
    expect(out[0]?.subarray(5).equals(Buffer.from(message))).toBe(true);
    expect([...(out[1]?.subarray(5) ?? [])]).toEqual([7, 8, 9]);
    // Nothing of the reads is kept between messages.
    expect(inside.readPartialMessage).toEqual([]);
    expect(inside.readCompressFlag.buffer).not.toBe(last?.buffer);
  });

  it('changes nothing on a decoder without the fields it relies on', () => {
    class Other {
      readState = 1;
      write(): Buffer[] {
        return [];
      }
    }
    const before: unknown = Reflect.get(Other.prototype, 'write');
    expect(releaseDecodedReads(Other)).toBe(false);
    expect(Reflect.get(Other.prototype, 'write')).toBe(before);
  });
});
