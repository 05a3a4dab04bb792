import 'reflect-metadata';
import { credentials, type Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { FASHION_MNIST_LABELS } from '@deit-serve/datasets';
import { securityOptions } from '@deit-serve/grpc-server';
import { packageAndPublish, presetWeights } from '@deit-serve/packaging';
import { PROTO_PACKAGES, trainerV1Client } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import {
  bearer,
  ROLE_TOKENS,
  startTestService,
  type TestService,
  writeTokensFile,
} from '@deit-serve/testing';
import { JobStore, type FineTuneJobSpec } from '@deit-serve/trainer-engine';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRAINER_ACCESS } from '../src/access';
import { AppModule } from '../src/app.module';

/**
 * Who may promote to a protected alias, through the real app and real calls: the caller's role
 * (from its token) decides at StartFineTune whether the job's promotion is judged by the trainer,
 * and a job that could never be judged is refused there, with the reason. The jobs never run
 * (no job kinds): what is checked is the answer and the spec the store keeps.
 */
const CALL_DEADLINE_MS = 10_000;
const [, CI, OPS] = ROLE_TOKENS.map((t) => t.token);

let service: TestService;
let client: trainerV1Client.TrainerServiceClient;
let dataRoot: string;

/** Publishes `name`:1 with metrics on `evalSet` and points production at it. */
async function publishIncumbent(registry: DirectoryRegistry, name: string, evalSet: string): Promise<void> {
  const preset = 'deit_pico_distilled_patch4_28';
  const w = presetWeights({ preset, seed: 1 });
  await packageAndPublish(registry, name, {
    spec: w.spec,
    preset,
    weights: w.weights,
    labels: [...FASHION_MNIST_LABELS],
    input: w.input,
    metrics: { eval_set: evalSet, top1: { cls: 0.9, dist: 0.9, avg: 0.9 }, teacher_top1: null },
  });
  await registry.setAlias(name, 'production', 1);
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deit-trainer-protected-'));
  dataRoot = join(dir, 'data');
  mkdirSync(dataRoot);
  // The trainer's own Fashion-MNIST test split (contents do not matter until a job ends).
  for (const f of ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'])
    writeFileSync(join(dataRoot, f), '');
  const registry = await DirectoryRegistry.open(join(dir, 'registry'), { create: true });
  await publishIncumbent(registry, 'fm-folder', 'image-folder:mine/val:mine-val/50@0123456789ab');
  await publishIncumbent(registry, 'fm-test', 'fashion-mnist/test/10000@0123456789ab');
  const vars = {
    DEIT_GRPC_HOST: '127.0.0.1',
    DEIT_JOBS_DB: join(dir, 'jobs.sqlite'),
    DEIT_TRAINER_WORK_DIR: dir,
    DEIT_REGISTRY_DIR: join(dir, 'registry'),
    DEIT_TRAINER_DATA_ROOTS: dataRoot,
    DEIT_AUTH_TOKENS_FILE: writeTokensFile(dir, ROLE_TOKENS),
  };
  service = await startTestService(
    (port) =>
      AppModule.register(loadConfig(trainerConfigSpec, { ...vars, DEIT_TRAINER_GRPC_PORT: String(port) }), {
        kinds: {},
      }),
    {
      protoFiles: ['trainer'],
      packages: [PROTO_PACKAGES.trainer],
      ...securityOptions(loadConfig(trainerConfigSpec, vars), TRAINER_ACCESS),
    },
  );
  client = new trainerV1Client.TrainerServiceClient(service.address, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await service?.close();
});

function start(
  token: string,
  outputModel: string,
  alias: string,
  requestId = '',
): Promise<trainerV1Client.StartFineTuneResponse> {
  const request = trainerV1Client.StartFineTuneRequest.fromPartial({
    spec: {
      outputModel,
      student: { registryRef: `${outputModel}:1` },
      dataset: { fashionMnist: { dir: dataRoot } },
      optimization: { epochs: 1, batchSize: 16 },
      promotion: { alias, minImprovement: 0 },
    },
    requestId,
  });
  const md: Metadata = bearer(token);
  return new Promise((resolve, reject) =>
    client.startFineTune(request, md, { deadline: Date.now() + CALL_DEADLINE_MS }, (e, r) =>
      e ? reject(e) : resolve(r),
    ),
  );
}

/** The promotion policy the store keeps for a job (what the worker will apply). */
function storedPromotion(jobId: string): FineTuneJobSpec['promotion'] {
  return service.app.get(JobStore).get<FineTuneJobSpec>(jobId).spec.promotion;
}

describe('StartFineTune promoting a protected alias', () => {
  it('refuses a train token when the incumbent was measured on a set the trainer cannot rebuild', async () => {
    const error = (await start(CI, 'fm-folder', 'production').catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(status.PERMISSION_DENIED);
    expect(error.details).toMatch(
      /^promotion\.alias: production is a protected alias \(DEIT_PROTECTED_ALIASES\); token "ci" without the admin role may move it only when the new version beats fm-folder:1 .*only Fashion-MNIST sets can be rebuilt by the trainer/,
    );
  });

  it('accepts an admin token for the same job; the job follows the ordinary policy', async () => {
    const { job } = await start(OPS, 'fm-folder', 'production');
    expect(storedPromotion(job?.id ?? '')).toEqual({
      alias: 'production',
      minImprovement: 0,
      guard: 'admin',
    });
  });

  it('accepts a train token when the trainer can rebuild the set, and records that it must judge', async () => {
    const { job } = await start(CI, 'fm-test', 'production');
    expect(storedPromotion(job?.id ?? '')).toEqual({
      alias: 'production',
      minImprovement: 0,
      guard: 'server-evaluated',
    });
  });

  it('leaves other aliases to the ordinary policy for every role', async () => {
    const { job } = await start(CI, 'fm-folder', 'candidate');
    expect(storedPromotion(job?.id ?? '')).toEqual({ alias: 'candidate', minImprovement: 0 });
  });

  it('answers a request_id reused with another spec FAILED_PRECONDITION; the same spec gets the same job', async () => {
    const first = await start(CI, 'fm-test', 'candidate', 'req-42');
    expect((await start(CI, 'fm-test', 'candidate', 'req-42')).job?.id).toBe(first.job?.id);
    const error = (await start(CI, 'fm-test', 'staging', 'req-42').catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(error.details).toBe(
      `request_id "req-42" was already used for job ${first.job?.id} with another spec (differs in: promotion); ` +
        'send the same spec to get that job back, or use a new request_id for a new job',
    );
  });
});
