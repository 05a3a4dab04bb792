// A lean gRPC unary caller for load generation, on node:http2 directly.
//
// The benchmark's client shares the machine's cores with the service it measures, so every cycle it
// spends is taken from the service. The generated grpc-js client encodes each request anew (a 602 KB
// tensor: ≈ 0.26 ms and 602 KB of garbage per call) and runs grpc-js's call machinery; this caller
// sends one request encoded once, framed once (gRPC's 5-byte length prefix), as load generators do
// (Triton's perf_analyzer prepares its inputs up front too). It speaks the same wire protocol: HTTP/2
// POST, `content-type: application/grpc`, status from the trailers (or a trailers-only response).

import { connect, constants } from 'node:http2';

/** The gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, bytes. */
export function frameMessage(bytes) {
  const framed = Buffer.allocUnsafe(5 + bytes.length);
  framed.writeUInt8(0, 0);
  framed.writeUInt32BE(bytes.length, 1);
  framed.set(bytes, 5);
  return framed;
}

export class LeanChannel {
  /**
   * @param {string} address host:port
   * @param {number} windowBytes HTTP/2 window this side opens for responses
   */
  constructor(address, windowBytes = 4 << 20) {
    this.session = connect(`http://${address}`, { settings: { initialWindowSize: windowBytes } });
    this.session.on('connect', () => this.session.setLocalWindowSize(windowBytes));
    this.session.on('error', () => {}); // surfaced per call
    this.authority = address;
  }

  /**
   * One unary call. Resolves with the response message's bytes; rejects with an Error carrying
   * `code` (the gRPC status) and the server's message.
   * @param {string} path `/package.Service/Method`
   * @param {Buffer} framed a request from {@link frameMessage}
   */
  unary(path, framed) {
    return new Promise((resolve, reject) => {
      const stream = this.session.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: path,
        [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        te: 'trailers',
      });
      const chunks = [];
      let status;
      let message = '';
      const takeStatus = (headers) => {
        if (headers['grpc-status'] !== undefined) {
          status = Number(headers['grpc-status']);
          message = decodeURIComponent(String(headers['grpc-message'] ?? ''));
        }
      };
      stream.on('response', takeStatus); // trailers-only responses carry the status in the headers
      stream.on('trailers', takeStatus);
      stream.on('data', (chunk) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('end', () => {
        if (status !== 0) {
          const error = new Error(`gRPC status ${status ?? 'missing'}: ${message}`);
          error.code = status;
          reject(error);
          return;
        }
        const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
          reject(new Error(`malformed gRPC response body (${body.length} bytes)`));
          return;
        }
        resolve(body.subarray(5));
      });
      stream.end(framed);
    });
  }

  close() {
    this.session.close();
  }
}
