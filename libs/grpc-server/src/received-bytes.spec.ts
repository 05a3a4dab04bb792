import { describe, expect, it } from 'vitest';
import { messageBufferOf, releaseReceivedBytes } from './received-bytes';

describe('messageBufferOf', () => {
  it("is the buffer of a view that reaches the end of a message's own (over 64 KiB) buffer", () => {
    const message = new Uint8Array(200_000);
    expect(messageBufferOf(message.subarray(5))).toBe(message.buffer);
    expect(messageBufferOf(message.subarray(5, 100))).toBeUndefined(); // other fields follow it
    expect(messageBufferOf(new Uint8Array(64 * 1024).subarray(1))).toBeUndefined(); // an HTTP/2 read's size
    expect(messageBufferOf(Buffer.from('pooled'))).toBeUndefined();
    expect(messageBufferOf(new Uint8Array(new SharedArrayBuffer(200_000)))).toBeUndefined();
  });
});

describe('releaseReceivedBytes', () => {
  it('detaches each message buffer once and leaves the others alone', () => {
    const message = new Uint8Array(100_000);
    const first = message.subarray(10, 50_000);
    const last = message.subarray(50_000);
    const small = new Uint8Array(1000);
    expect(releaseReceivedBytes([first, last, small])).toBe(1);
    expect(first.byteLength).toBe(0);
    expect(last.byteLength).toBe(0);
    expect(small.byteLength).toBe(1000);
    expect(releaseReceivedBytes([])).toBe(0);
  });
});
