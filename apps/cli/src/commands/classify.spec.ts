import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { InvalidArgumentError } from '@deit-serve/core';
import { freePort } from '@deit-serve/grpc-server';
import { inferenceV1, PROTO_PACKAGES } from '@deit-serve/proto';
import { startTestService, type TestService } from '@deit-serve/testing';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { EMPTY, type Observable } from 'rxjs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../cli';
import { runClassifyCommand } from './classify';

const { Head } = inferenceV1;
const LABELS = ['cat', 'dog', 'bird', 'fish'];
const received: inferenceV1.ClassifyRequest[] = [];

/** Answers like the inference service would, deterministically; `bad…` bytes are not an image. */
@Controller()
@inferenceV1.InferenceServiceControllerMethods()
class FakeInferenceController implements inferenceV1.InferenceServiceController {
  classify(request: inferenceV1.ClassifyRequest): inferenceV1.ClassifyResponse {
    received.push(request);
    if (
      Buffer.from(request.image ?? [])
        .toString()
        .startsWith('bad')
    ) {
      throw new InvalidArgumentError('cannot read image: unrecognised image format (data starting 62 61 64)');
    }
    const plain = request.model === 'plain';
    const k = Math.min(request.topK || 5, LABELS.length);
    return {
      model: { name: plain ? 'plain' : 'tiny', version: 3, sha256: 'ab'.repeat(32), alias: '' },
      head: request.head || Head.HEAD_AVERAGE,
      predictions: LABELS.slice(0, k).map((label, index) => ({
        index,
        label,
        probability: [0.5, 0.25, 0.15, 0.1][index] ?? 0,
        logit: 1 - index,
      })),
      disagreement: plain
        ? { available: false, top1Match: false, klDivergence: 0, clsTop1: 0, distTop1: 0 }
        : { available: true, top1Match: false, klDivergence: 0.25, clsTop1: 1, distTop1: 2 },
      timing: { queueMs: 1, preprocessMs: 2, computeMs: 3, totalMs: 6, batchSize: 1 },
    };
  }

  classifyStream(): Observable<inferenceV1.ClassifyStreamResponse> {
    return EMPTY;
  }

  listModels(): inferenceV1.ListModelsResponse {
    return { models: [] };
  }

  getModel(): inferenceV1.GetModelResponse {
    throw new InvalidArgumentError('not served by the fake');
  }
}

function io(env: Record<string, string> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = (s: PassThrough) => () => (s.read() as Buffer | null)?.toString() ?? '';
  return { io: { stdout, stderr, env }, out: text(stdout), err: text(stderr) };
}

describe('deit classify', () => {
  let service: TestService;
  let dir: string;
  let cat: string;
  let bad: string;

  beforeAll(async () => {
    service = await startTestService(
      () => ({ module: class FakeInferenceModule {}, controllers: [FakeInferenceController] }),
      { protoFiles: ['inference'], packages: [PROTO_PACKAGES.inference] },
    );
    dir = mkdtempSync(join(tmpdir(), 'deit-cli-classify-'));
    cat = join(dir, 'cat.png');
    bad = join(dir, 'bad.png');
    writeFileSync(cat, 'pretend-png');
    writeFileSync(bad, 'bad bytes');
  });

  afterAll(() => service?.close());

  beforeEach(() => {
    received.length = 0;
  });

  it('prints a table per image: model:version, head, top-k and the heads’ disagreement', async () => {
    const t = io();
    const code = await runClassifyCommand(
      [cat, cat, '--addr', service.address, '--model', 'tiny:3', '--head', 'dist', '--top-k', '2'],
      t.io,
    );
    expect(t.err()).toBe('');
    expect(code).toBe(0);
    expect(received).toHaveLength(2);
    expect(received[0]).toMatchObject({ model: 'tiny:3', head: Head.HEAD_DIST, topK: 2 });
    expect(Buffer.from(received[0]?.image ?? []).toString()).toBe('pretend-png');
    const lines = t.out().trimEnd().split('\n');
    expect(lines[0]).toMatch(/^FILE\s+MODEL\s+HEAD\s+#\s+LABEL\s+PROBABILITY\s+CLS\/DIST$/);
    expect(lines).toHaveLength(1 + 2 * 2);
    expect(lines[1]).toMatch(
      /cat\.png\s+tiny:3\s+dist\s+1\s+cat\s+0\.5000\s+differ \(cls dog, dist class 2\), KL 0\.2500$/,
    );
    expect(lines[2]).toMatch(/^\s+2\s+dog\s+0\.2500$/);
  });

  it('leaves head and top-k to the server unless given, and says n/a without a DIST head', async () => {
    const t = io({ DEIT_INFERENCE_ADDR: service.address });
    expect(await runClassifyCommand([cat, '--model', 'plain'], t.io)).toBe(0);
    expect(received[0]).toMatchObject({ model: 'plain', head: Head.HEAD_UNSPECIFIED, topK: 0 });
    const out = t.out();
    expect(out).toMatch(/plain:3\s+avg\s+1\s+cat\s+0\.5000\s+n\/a/);
    expect(out.trimEnd().split('\n')).toHaveLength(1 + 4);
  });

  it('writes JSON with --json', async () => {
    const t = io();
    expect(await runClassifyCommand([cat, '--addr', service.address, '--head', 'cls', '--json'], t.io)).toBe(
      0,
    );
    const json = JSON.parse(t.out()) as { results: Record<string, unknown>[] };
    expect(json.results).toHaveLength(1);
    expect(json.results[0]).toMatchObject({
      file: cat,
      model: { name: 'tiny', version: 3 },
      head: 'cls',
      disagreement: { top1Match: false, klDivergence: 0.25, clsTop1: 1, distTop1: 2 },
    });
  });

  it('reports a refused image with its status and exits 1, still printing the others', async () => {
    const t = io();
    expect(await runClassifyCommand([bad, cat, '--addr', service.address], t.io)).toBe(1);
    expect(t.err()).toBe(
      `deit classify: ${bad}: INVALID_ARGUMENT: cannot read image: unrecognised image format (data starting 62 61 64)\n`,
    );
    const out = t.out();
    expect(out).toMatch(/bad\.png\s+-\s+-\s+-\s+error: INVALID_ARGUMENT/);
    expect(out).toMatch(/cat\.png\s+tiny:3/);
  });

  it('fails with exit 1 naming a missing file, before sending anything', async () => {
    const t = io();
    const missing = join(dir, 'nope.jpg');
    expect(await runClassifyCommand([cat, missing, '--addr', service.address], t.io)).toBe(1);
    expect(t.err()).toBe(`deit classify: cannot read ${missing}: no such file\n`);
    expect(received).toHaveLength(0);
  });

  it('fails with exit 1 and one clear message when the server is unreachable', async () => {
    const addr = `127.0.0.1:${await freePort()}`;
    const t = io();
    expect(await runClassifyCommand([cat, cat, '--addr', addr], t.io)).toBe(1);
    const err = t.err();
    expect(err).toMatch(
      new RegExp(`^deit classify: cannot reach the inference service at ${addr} \\(.+\\); is it running\\?`),
    );
    expect(err.trimEnd().split('\n')).toHaveLength(1);
    expect(t.out()).toBe('');
  });

  it.each([
    [[], /name at least one image file/],
    [['x.png', '--head', 'teacher'], /--head must be cls, dist or avg, not "teacher"/],
    [['x.png', '--top-k', '0'], /--top-k must be a positive integer, not "0"/],
    [['x.png', '--frobnicate'], /Unknown option '--frobnicate'/],
  ])('refuses the command line %j with exit 2', async (argv, message) => {
    const t = io();
    expect(await runClassifyCommand(argv, t.io)).toBe(2);
    expect(t.err()).toMatch(message);
  });

  it('is reachable as `deit classify`, with its own help', async () => {
    const t = io();
    expect(await runCli(['classify', '--help'], t.io)).toBe(0);
    expect(t.out()).toMatch(/^Usage: deit classify IMAGE\.\.\. \[options\]/);
    const usage = io();
    await runCli(['--help'], usage.io);
    expect(usage.out()).toMatch(/classify IMAGE\.\.\./);
  });
});
