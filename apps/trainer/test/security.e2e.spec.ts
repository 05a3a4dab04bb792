import 'reflect-metadata';
import {
  type ChannelCredentials,
  credentials,
  type Metadata,
  status,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { securityOptions } from '@deit-serve/grpc-server';
import { healthV1, PROTO_PACKAGES, trainerV1Client } from '@deit-serve/proto';
import {
  bearer,
  createTestPki,
  healthCheck,
  pem,
  ROLE_TOKENS,
  startTestService,
  type TestPki,
  type TestService,
  writeTokensFile,
} from '@deit-serve/testing';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRAINER_ACCESS } from '../src/access';
import { AppModule } from '../src/app.module';

/**
 * Authentication, roles and mutual TLS of the trainer, end to end: the real app on an ephemeral port
 * with the security options main() builds, called through the generated client. A call that gets
 * past authentication reaches the handler, whose own answer (NOT_FOUND for an unknown job,
 * INVALID_ARGUMENT for an empty spec) proves it ran.
 */
const CALL_DEADLINE_MS = 10_000;
const execFileAsync = promisify(execFile);
const TOKENS = ROLE_TOKENS;
const [WEB, CI, OPS] = TOKENS.map((t) => t.token);

type Client = trainerV1Client.TrainerServiceClient;
type Call = (c: Client, md: Metadata) => Promise<unknown>;

const options = () => ({ deadline: Date.now() + CALL_DEADLINE_MS });
const unary =
  <Res>(start: (c: Client, md: Metadata, cb: (e: ServiceError | null, r: Res) => void) => unknown): Call =>
  (c, md) =>
    new Promise<Res>((resolve, reject) => start(c, md, (e, r) => (e ? reject(e) : resolve(r))));

/** Each trainer method, and the status its handler answers with when the caller may call it. */
const METHODS: [string, Call, status][] = [
  [
    'StartFineTune',
    unary((c, md, cb) =>
      c.startFineTune(trainerV1Client.StartFineTuneRequest.fromPartial({}), md, options(), cb),
    ),
    status.INVALID_ARGUMENT,
  ],
  ['GetJob', unary((c, md, cb) => c.getJob({ jobId: 'no-such-job' }, md, options(), cb)), status.NOT_FOUND],
  [
    'ListJobs',
    unary((c, md, cb) => c.listJobs(trainerV1Client.ListJobsRequest.fromPartial({}), md, options(), cb)),
    status.OK,
  ],
  [
    'WatchJob',
    (c, md) =>
      new Promise((resolve, reject) => {
        const call = c.watchJob({ jobId: 'no-such-job' }, md, options());
        call.on('data', () => undefined);
        call.on('error', reject);
        call.on('end', () => resolve(undefined));
      }),
    status.NOT_FOUND,
  ],
  [
    'CancelJob',
    unary((c, md, cb) => c.cancelJob({ jobId: 'no-such-job' }, md, options(), cb)),
    status.NOT_FOUND,
  ],
];

/** The status a call ends with (OK when it succeeds) and its message. */
async function outcome(call: Promise<unknown>): Promise<{ code: status; details: string }> {
  try {
    await call;
    return { code: status.OK, details: '' };
  } catch (error) {
    const e = error as ServiceError;
    return { code: e.code, details: e.details };
  }
}

let pki: TestPki;

async function startTrainer(env: Record<string, string>): Promise<TestService> {
  const dir = mkdtempSync(join(tmpdir(), 'deit-trainer-security-'));
  const vars = {
    DEIT_GRPC_HOST: '127.0.0.1',
    DEIT_JOBS_DB: join(dir, 'jobs.sqlite'),
    DEIT_TRAINER_WORK_DIR: dir,
    ...env,
  };
  return startTestService(
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
}

beforeAll(() => {
  pki = createTestPki();
});

describe('trainer with a tokens file', () => {
  let service: TestService;
  let client: Client;

  beforeAll(async () => {
    service = await startTrainer({ DEIT_AUTH_TOKENS_FILE: writeTokensFile(pki.dir, TOKENS) });
    client = new trainerV1Client.TrainerServiceClient(service.address, credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await service?.close();
  });

  it.each(METHODS)('refuses %s without a token: UNAUTHENTICATED', async (_, call) => {
    const { code, details } = await outcome(call(client, bearer()));
    expect(code).toBe(status.UNAUTHENTICATED);
    expect(details).toMatch(/^no credentials: send the metadata "authorization: Bearer <token>"/);
  });

  it.each(METHODS)('refuses %s with an unknown token: UNAUTHENTICATED', async (_, call) => {
    const { code, details } = await outcome(call(client, bearer('not-a-token')));
    expect(code).toBe(status.UNAUTHENTICATED);
    expect(details).not.toContain('not-a-token');
  });

  it.each(METHODS)('refuses %s to a classify-only token: PERMISSION_DENIED', async (name, call) => {
    const { code, details } = await outcome(call(client, bearer(WEB)));
    expect(code).toBe(status.PERMISSION_DENIED);
    expect(details).toBe(
      `token "web" may not call /deit.trainer.v1.TrainerService/${name}: that needs role "train" (the token has classify)`,
    );
  });

  it.each(METHODS)('lets a train token and an admin token reach %s', async (_, call, handlerStatus) => {
    expect((await outcome(call(client, bearer(CI)))).code).toBe(handlerStatus);
    expect((await outcome(call(client, bearer(OPS)))).code).toBe(handlerStatus);
  });

  /** One StartFineTune over a bare HTTP/2 client that can repeat a header (fixtures/raw-grpc-call.cjs). */
  const rawStartFineTune = async (
    headers: Record<string, string>,
  ): Promise<{ status: status; message: string }> => {
    // Asynchronously: the service answers from this process's event loop.
    const { stdout } = await execFileAsync(
      process.execPath,
      [
        '--expose-internals',
        join(__dirname, 'fixtures', 'raw-grpc-call.cjs'),
        service.address,
        '/deit.trainer.v1.TrainerService/StartFineTune',
        JSON.stringify(headers),
      ],
      { encoding: 'utf8', timeout: CALL_DEADLINE_MS },
    );
    return JSON.parse(stdout) as { status: status; message: string };
  };

  it('refuses two authorization headers, whichever comes first: UNAUTHENTICATED', async () => {
    // The handler's own answer to the empty spec (INVALID_ARGUMENT) shows a call that got through.
    expect((await rawStartFineTune({ authorization: `Bearer ${CI}` })).status).toBe(status.INVALID_ARGUMENT);
    for (const [first, second] of [
      [CI, 'not-a-token'],
      ['not-a-token', CI],
      [CI, OPS],
    ]) {
      expect(
        await rawStartFineTune({
          authorization: `Bearer ${first}`,
          'x-repeat-authorization': `Bearer ${second}`,
        }),
      ).toEqual({ status: status.UNAUTHENTICATED, message: 'more than one authorization metadata value' });
    }
  });

  it('refuses a token with surrounding spaces, saying that HTTP/2 dropped the value', async () => {
    // nghttp2 drops a field value with leading or trailing whitespace (RFC 9113 §8.2.1) before any
    // JavaScript sees it, so the service cannot trim it: it says why no credentials arrived.
    const md = bearer();
    md.set('authorization', `Bearer ${CI} `);
    const { code, details } = await outcome(METHODS[2][1](client, md));
    expect(code).toBe(status.UNAUTHENTICATED);
    expect(details).toMatch(/^no credentials: .*leading or trailing whitespace is malformed in HTTP\/2/);
    expect(details).not.toContain(CI);
  });

  it('answers grpc.health.v1 without a token', async () => {
    expect((await healthCheck(service.address)).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.SERVING,
    );
  });
});

describe('trainer with mutual TLS and tokens', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTrainer({
      DEIT_AUTH_TOKENS_FILE: writeTokensFile(pki.dir, TOKENS),
      DEIT_TLS_CERT_FILE: pki.server.cert,
      DEIT_TLS_KEY_FILE: pki.server.key,
      DEIT_TLS_CLIENT_CA_FILE: pki.ca.cert,
    });
  });
  afterAll(() => service?.close());

  const listJobs = async (channel: ChannelCredentials, token: string) => {
    const client = new trainerV1Client.TrainerServiceClient(service.address, channel);
    try {
      return await outcome(METHODS[2][1](client, bearer(token)));
    } finally {
      client.close();
    }
  };

  it('lists jobs for a client with a CA-signed certificate and a train token', async () => {
    const channel = credentials.createSsl(pem(pki.ca.cert), pem(pki.client.key), pem(pki.client.cert));
    expect((await listJobs(channel, CI)).code).toBe(status.OK);
  });

  it('refuses a client without a certificate, or with one from another CA, whatever its token', async () => {
    expect((await listJobs(credentials.createSsl(pem(pki.ca.cert)), CI)).code).toBe(status.UNAVAILABLE);
    const other = credentials.createSsl(
      pem(pki.ca.cert),
      pem(pki.otherClient.key),
      pem(pki.otherClient.cert),
    );
    expect((await listJobs(other, OPS)).code).toBe(status.UNAVAILABLE);
  });

  it('answers health over TLS to any client of the CA, token or not', async () => {
    const channel = credentials.createSsl(pem(pki.ca.cert), pem(pki.client.key), pem(pki.client.cert));
    expect((await healthCheck(service.address, '', channel)).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.SERVING,
    );
  });
});
