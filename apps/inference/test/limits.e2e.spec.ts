import { Metadata, status, type ClientDuplexStream } from '@grpc/grpc-js';
import { freePort } from '@deit-serve/grpc-server';
import { inferenceV1Client } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { healthCheck, publishTinyDeit } from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classify,
  failure,
  type InferenceProcess,
  pngImage,
  sample,
  scrape,
  sleep,
  spawnInference,
  tinyTensor,
} from './support';

/**
 * The request limits, configured through the environment of a real server process (main.ts), since
 * some of them are transport options that only main.ts applies.
 */
const MAX_MESSAGE_BYTES = 64 * 1024;
const MAX_CONCURRENT_STREAMS = 3;
const MAX_DECODED_PIXELS = 100 * 100;
const MAX_STREAM_IN_FLIGHT = 4;
/** Batches wait this long to fill, so that stream items stay un-answered long enough to count. */
const QUEUE_DELAY_MS = 400;

type Stream = ClientDuplexStream<
  inferenceV1Client.ClassifyStreamRequest,
  inferenceV1Client.ClassifyStreamResponse
>;

let server: InferenceProcess;
let metricsUrl: string;

beforeAll(async () => {
  const registryDir = mkdtempSync(join(tmpdir(), 'deit-e2e-request-limits-'));
  await publishTinyDeit(await DirectoryRegistry.open(registryDir, { create: true }), 'tiny', { seed: 1 });
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  server = await spawnInference(registryDir, {
    DEIT_METRICS_PORT: String(metricsPort),
    DEIT_MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
    DEIT_GRPC_MAX_CONCURRENT_STREAMS: String(MAX_CONCURRENT_STREAMS),
    DEIT_MAX_DECODED_PIXELS: String(MAX_DECODED_PIXELS),
    DEIT_MAX_STREAM_IN_FLIGHT: String(MAX_STREAM_IN_FLIGHT),
    DEIT_MAX_BATCH_SIZE: '64',
    DEIT_MAX_QUEUE_DELAY_MS: String(QUEUE_DELAY_MS),
  });
}, 120_000);

afterAll(() => server?.close());

describe('request limits of a server configured by its environment', () => {
  it('refuses a message above DEIT_MAX_MESSAGE_BYTES with RESOURCE_EXHAUSTED, and serves smaller ones', async () => {
    const big = await failure(server.client, { image: new Uint8Array(MAX_MESSAGE_BYTES + 1024) });
    expect(big.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(big.details).toMatch(/larger than max/i);
    // Refused by grpc-js below the handler, and still counted with the requests.
    const counted = { method: 'Classify', code: 'RESOURCE_EXHAUSTED' };
    expect(sample(await scrape(metricsUrl), 'deit_requests_total', counted)).toBe(1);
    const png = await pngImage(64, 64, [1, 2, 3]);
    expect(png.length).toBeLessThan(MAX_MESSAGE_BYTES);
    expect((await classify(server.client, { image: png })).model?.name).toBe('tiny');
  });

  it('refuses an image declaring more than DEIT_MAX_DECODED_PIXELS with INVALID_ARGUMENT', async () => {
    const err = await failure(server.client, { image: await pngImage(101, 100, [9, 9, 9]) });
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/101×100 = 10,100 pixels, above the limit of 10,000/);
    expect(
      (await classify(server.client, { image: await pngImage(100, 100, [9, 9, 9]) })).model?.version,
    ).toBe(1);
  });

  it('advertises DEIT_GRPC_MAX_CONCURRENT_STREAMS; a call beyond it waits until one ends', async () => {
    const session = connect(`http://${server.address}`);
    try {
      const settings = await new Promise<{ maxConcurrentStreams?: number }>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      });
      expect(settings.maxConcurrentStreams).toBe(MAX_CONCURRENT_STREAMS);
    } finally {
      session.close();
    }

    // Every stream the limit allows, held open on the client's one connection.
    const open: Stream[] = Array.from({ length: MAX_CONCURRENT_STREAMS }, () =>
      server.client.classifyStream(new Metadata()),
    );
    const ended = open.map(
      (call) =>
        new Promise<void>((resolve) => {
          call.on('data', () => undefined);
          call.on('end', resolve);
          call.on('error', () => resolve());
        }),
    );
    await sleep(200);
    const waiting = await failure(server.client, { tensor: tinyTensor(0) }, { deadline: Date.now() + 1000 });
    expect(waiting.code).toBe(status.DEADLINE_EXCEEDED);
    open[0]?.end();
    await ended[0];
    expect((await classify(server.client, { tensor: tinyTensor(0) })).model?.version).toBe(1);
    for (const call of open.slice(1)) call.end();
    await Promise.all(ended);
  });

  it('answers ClassifyStream items beyond DEIT_MAX_STREAM_IN_FLIGHT with RESOURCE_EXHAUSTED for their ids, and goes on', async () => {
    const call: Stream = server.client.classifyStream(new Metadata());
    const answers = new Map<string, inferenceV1Client.ClassifyStreamResponse>();
    const arrivals: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (r: inferenceV1Client.ClassifyStreamResponse) => {
        answers.set(r.id, r);
        arrivals.push(r.id);
      });
      call.on('end', resolve);
      call.on('error', reject);
    });
    const write = (id: string) =>
      call.write(
        inferenceV1Client.ClassifyStreamRequest.fromPartial({ id, request: { tensor: tinyTensor(0.1) } }),
      );
    const burst = Array.from({ length: 10 }, (_, i) => `burst-${i}`);
    for (const id of burst) write(id);
    // The refusals come at once; the accepted items only when their batch runs.
    const until = Date.now() + QUEUE_DELAY_MS * 10;
    while (answers.size < burst.length && Date.now() < until) await sleep(20);
    const refused = burst.filter((id) => answers.get(id)?.error?.code === status.RESOURCE_EXHAUSTED);
    const served = burst.filter((id) => answers.get(id)?.response?.model?.version === 1);
    expect(served).toEqual(burst.slice(0, MAX_STREAM_IN_FLIGHT));
    expect(refused).toEqual(burst.slice(MAX_STREAM_IN_FLIGHT));
    expect(answers.get('burst-9')?.error?.message).toMatch(/4 items of this stream are still unanswered/);
    expect(arrivals.indexOf('burst-9')).toBeLessThan(arrivals.indexOf('burst-0'));
    // Once answered, the call may send that many again.
    const more = ['later-0', 'later-1', 'later-2', 'later-3'];
    for (const id of more) write(id);
    call.end();
    await done;
    for (const id of more) expect(answers.get(id)?.response?.model?.version).toBe(1);
  });

  it('is still healthy after all of it', async () => {
    expect((await healthCheck(server.address)).status).toBe(1);
    expect(server.child.exitCode).toBeNull();
  });
});
