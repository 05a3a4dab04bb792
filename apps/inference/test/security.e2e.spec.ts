import 'reflect-metadata';
import { type ChannelCredentials, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { inferenceConfigSpec, loadConfig } from '@deit-serve/config';
import { securityOptions } from '@deit-serve/grpc-server';
import { healthV1, inferenceV1Client, PROTO_PACKAGES } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import {
  bearer,
  createTestPki,
  healthCheck,
  pem,
  ROLE_TOKENS,
  publishTinyDeit,
  startTestService,
  type TestPki,
  type TestService,
  writeTokensFile,
} from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../src/app.module';
import { INFERENCE_ACCESS } from '../src/access';
import { tinyTensor } from './support';

/**
 * Authentication, roles and TLS of the inference service, end to end: the real app on an ephemeral
 * port with the security options main() builds from the same variables, called through the
 * generated client. Certificates come from a CA generated for this run.
 */
const CALL_DEADLINE_MS = 10_000;
const TOKENS = ROLE_TOKENS;
const [WEB, CI, OPS] = TOKENS.map((t) => t.token);

type Client = inferenceV1Client.InferenceServiceClient;

let registryDir: string;
let pki: TestPki;

async function startSecured(env: Record<string, string>): Promise<TestService> {
  const vars = {
    DEIT_GRPC_HOST: '127.0.0.1',
    DEIT_METRICS_PORT: '0',
    DEIT_REGISTRY_DIR: registryDir,
    DEIT_DEFAULT_MODEL: 'tiny',
    DEIT_REGISTRY_WATCH: 'poll',
    DEIT_INTRA_OP_THREADS: '1',
    ...env,
  };
  return startTestService(
    (port) => AppModule.register(loadConfig(inferenceConfigSpec, { ...vars, DEIT_GRPC_PORT: String(port) })),
    {
      protoFiles: ['inference'],
      packages: [PROTO_PACKAGES.inference],
      ...securityOptions(loadConfig(inferenceConfigSpec, vars), INFERENCE_ACCESS),
    },
  );
}

const deadline = () => ({ deadline: Date.now() + CALL_DEADLINE_MS });

function classify(client: Client, token?: string): Promise<inferenceV1Client.ClassifyResponse> {
  const request = inferenceV1Client.ClassifyRequest.fromPartial({ tensor: tinyTensor(0.5), topK: 2 });
  return new Promise((resolve, reject) =>
    client.classify(request, bearer(token), deadline(), (err, res) => (err ? reject(err) : resolve(res))),
  );
}

function listModels(client: Client, token?: string): Promise<inferenceV1Client.ListModelsResponse> {
  return new Promise((resolve, reject) =>
    client.listModels({}, bearer(token), deadline(), (err, res) => (err ? reject(err) : resolve(res))),
  );
}

function getModel(client: Client, token?: string): Promise<inferenceV1Client.GetModelResponse> {
  return new Promise((resolve, reject) =>
    client.getModel({ model: 'tiny' }, bearer(token), deadline(), (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

/** One ClassifyStream item; resolves with the answer or rejects with the call's status. */
function classifyStream(client: Client, token?: string): Promise<inferenceV1Client.ClassifyStreamResponse> {
  return new Promise((resolve, reject) => {
    const call = client.classifyStream(bearer(token), deadline());
    const answers: inferenceV1Client.ClassifyStreamResponse[] = [];
    call.on('data', (res: inferenceV1Client.ClassifyStreamResponse) => answers.push(res));
    call.on('error', reject);
    call.on('end', () => (answers[0] ? resolve(answers[0]) : reject(new Error('no answer'))));
    call.write(
      inferenceV1Client.ClassifyStreamRequest.fromPartial({
        id: 'one',
        request: { tensor: tinyTensor(0.5) },
      }),
    );
    call.end();
  });
}

/** The error of a call expected to fail. */
async function refusal(call: Promise<unknown>): Promise<ServiceError> {
  return call.then(
    () => {
      throw new Error('expected the call to be refused');
    },
    (error: ServiceError) => error,
  );
}

beforeAll(async () => {
  registryDir = mkdtempSync(join(tmpdir(), 'deit-e2e-security-'));
  const registry = await DirectoryRegistry.open(registryDir, { create: true });
  await publishTinyDeit(registry, 'tiny', { seed: 1 });
  pki = createTestPki();
});

describe('inference service with a tokens file', () => {
  let service: TestService;
  let client: Client;

  beforeAll(async () => {
    service = await startSecured({ DEIT_AUTH_TOKENS_FILE: writeTokensFile(pki.dir, TOKENS) });
    client = new inferenceV1Client.InferenceServiceClient(service.address, credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await service?.close();
  });

  const methods: [string, (c: Client, token?: string) => Promise<unknown>][] = [
    ['Classify', classify],
    ['ClassifyStream', classifyStream],
    ['ListModels', listModels],
    ['GetModel', getModel],
  ];

  it.each(methods)('refuses %s without a token: UNAUTHENTICATED, saying how to send one', async (_, call) => {
    const error = await refusal(call(client));
    expect(error.code).toBe(status.UNAUTHENTICATED);
    expect(error.details).toBe(
      'no credentials: send the metadata "authorization: Bearer <token>" (deit CLI: --token or DEIT_TOKEN); ' +
        'a value with leading or trailing whitespace is malformed in HTTP/2 and dropped before it reaches the service',
    );
  });

  it.each(methods)('refuses %s with an unknown token, without echoing it', async (_, call) => {
    const error = await refusal(call(client, 'guessed-token-42'));
    expect(error.code).toBe(status.UNAUTHENTICATED);
    expect(error.details).toMatch(/^invalid token/);
    expect(error.details).not.toContain('guessed-token-42');
  });

  it.each(methods)('refuses %s to a token without the classify role: PERMISSION_DENIED', async (_, call) => {
    const error = await refusal(call(client, CI));
    expect(error.code).toBe(status.PERMISSION_DENIED);
    expect(error.details).toMatch(/^token "ci" may not call \/deit\.inference\.v1\.InferenceService\/\w+: /);
    expect(error.details).toContain('needs role "classify"');
    expect(error.details).not.toContain(CI);
  });

  it.each(methods)('serves %s to a classify token and to an admin token', async (_, call) => {
    await expect(call(client, WEB)).resolves.toBeDefined();
    await expect(call(client, OPS)).resolves.toBeDefined();
  });

  it('answers with the model for a classify token (the handler ran)', async () => {
    const res = await classify(client, WEB);
    expect(res.model?.name).toBe('tiny');
    expect(res.predictions).toHaveLength(2);
    const item = await classifyStream(client, WEB);
    expect(item.id).toBe('one');
    expect(item.response?.model?.name).toBe('tiny');
  });

  it('answers grpc.health.v1 without a token', async () => {
    expect((await healthCheck(service.address)).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.SERVING,
    );
  });
});

describe('inference service over TLS', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startSecured({ DEIT_TLS_CERT_FILE: pki.server.cert, DEIT_TLS_KEY_FILE: pki.server.key });
  });
  afterAll(() => service?.close());

  const withCredentials = async <T>(channel: ChannelCredentials, fn: (c: Client) => Promise<T>) => {
    const client = new inferenceV1Client.InferenceServiceClient(service.address, channel);
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  };

  it('classifies for a client that trusts the CA', async () => {
    const res = await withCredentials(credentials.createSsl(pem(pki.ca.cert)), (c) => classify(c));
    expect(res.model?.name).toBe('tiny');
  });

  it('is refused by a client that trusts another CA', async () => {
    const error = await refusal(
      withCredentials(credentials.createSsl(pem(pki.otherCa.cert)), (c) => classify(c)),
    );
    expect(error.code).toBe(status.UNAVAILABLE);
  });

  it('does not answer a plain-text client', async () => {
    const error = await refusal(withCredentials(credentials.createInsecure(), (c) => classify(c)));
    expect(error.code).toBe(status.UNAVAILABLE);
  });
});

describe('inference service with mutual TLS and tokens', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startSecured({
      DEIT_AUTH_TOKENS_FILE: writeTokensFile(pki.dir, TOKENS),
      DEIT_TLS_CERT_FILE: pki.server.cert,
      DEIT_TLS_KEY_FILE: pki.server.key,
      DEIT_TLS_CLIENT_CA_FILE: pki.ca.cert,
    });
  });
  afterAll(() => service?.close());

  const call = async (channel: ChannelCredentials, token?: string) => {
    const client = new inferenceV1Client.InferenceServiceClient(service.address, channel);
    try {
      return await classify(client, token);
    } finally {
      client.close();
    }
  };
  const ca = () => pem(pki.ca.cert);

  it('refuses a client without a certificate', async () => {
    const error = await refusal(call(credentials.createSsl(ca()), WEB));
    expect(error.code).toBe(status.UNAVAILABLE);
  });

  it('refuses a client certificate from another CA', async () => {
    const error = await refusal(
      call(credentials.createSsl(ca(), pem(pki.otherClient.key), pem(pki.otherClient.cert)), WEB),
    );
    expect(error.code).toBe(status.UNAVAILABLE);
  });

  it('accepts a client certificate signed by the CA, and still checks the token', async () => {
    const channel = () => credentials.createSsl(ca(), pem(pki.client.key), pem(pki.client.cert));
    expect((await call(channel(), WEB)).model?.name).toBe('tiny');
    expect((await refusal(call(channel()))).code).toBe(status.UNAUTHENTICATED);
  });
});
