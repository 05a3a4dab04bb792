// The latency floor for the benchmark: the least a Node.js server can do to answer a Classify call.
//
//   node bench/inference/floor-server.mjs MODEL.onnx PORT [main|worker]
//
// Speaks the same wire protocol as the service on the same path (HTTP/2, gRPC framing), with the
// same HTTP/2 windows (4 MiB) and the same onnxruntime session as the service creates
// (libs/runtime OnnxModelSession, one intra-op thread per core, on the thread the service uses), but
// nothing else: no grpc-js, no NestJS, no validation, no batcher, no metrics, no top-k. It decodes
// the request, runs batch 1 and answers with a response that carries only its timing. The benchmark
// runs it between its raw and service measurements, so that "added latency" splits into what any
// server on this machine adds (the 602 KB transfer and the wake-ups of idle threads) and what the
// service's own software adds on top.
import { createServer } from 'node:http2';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);
const dist = (path) => require(join(root, 'dist', path));
const { OnnxModelSession } = dist('libs/runtime/src/index.js');
const { inferenceV1Client } = dist('libs/proto/src/index.js');

const [modelPath, port, thread = 'worker'] = process.argv.slice(2);
const session = await OnnxModelSession.create(readFileSync(modelPath), { intraOpThreads: 0, thread });
const input = session.inputNames[0];
const itemDims = session.itemDims(input);
const itemBytes = itemDims.reduce((a, b) => a * b, 4);
// The item is copied once into a reused SharedArrayBuffer, as the service's batcher does.
const batch = new SharedArrayBuffer(itemBytes);
const data = new Float32Array(batch);

const WINDOW = 4 << 20;
const server = createServer({ settings: { initialWindowSize: WINDOW } });
server.on('session', (s) => s.setLocalWindowSize(WINDOW));
server.on('stream', (stream) => {
  const chunks = [];
  stream.on('data', (chunk) => chunks.push(chunk));
  stream.on('end', async () => {
    const arrived = performance.now();
    const framed = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    const request = inferenceV1Client.ClassifyRequest.decode(framed.subarray(5));
    let grpcStatus = 0;
    let reply = Buffer.alloc(0);
    if (request.tensor?.data.byteLength === itemBytes) {
      new Uint8Array(batch).set(request.tensor.data);
      const start = performance.now();
      await session.run({ [input]: { data, dims: [1, ...itemDims] } });
      const computeMs = performance.now() - start;
      const message = inferenceV1Client.ClassifyResponse.encode(
        inferenceV1Client.ClassifyResponse.fromPartial({
          timing: { queueMs: 0, computeMs, totalMs: performance.now() - arrived, batchSize: 1 },
        }),
      ).finish();
      reply = Buffer.allocUnsafe(5 + message.length);
      reply.writeUInt8(0, 0);
      reply.writeUInt32BE(message.length, 1);
      reply.set(message, 5);
    } else {
      grpcStatus = 3; // INVALID_ARGUMENT: the floor server takes one tensor item only
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(grpcStatus) }));
    stream.end(reply);
  });
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('floor server listening\n'));
process.on('SIGTERM', () => {
  server.close();
  void session.release().then(() => process.exit(0));
});
