import 'reflect-metadata';
import {
  type ChannelCredentials,
  credentials,
  loadPackageDefinition,
  Metadata,
  status,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { Logger, Module, type INestMicroservice } from '@nestjs/common';
import { healthV1, healthV1Client, SERVICE_NAMES } from '@deit-serve/proto';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createGrpcMicroservice, type GrpcServiceOptions, securityOptions } from './bootstrap';
import { HealthModule, HealthStatus } from './health';
import { freePort } from './ports';
import { createTestPki, pem, type TestPki, writeTokensFile } from './testing';

const { SERVING } = healthV1.HealthCheckResponse_ServingStatus;

@Module({ imports: [HealthModule] })
class TestModule {}

interface ReflectionCall {
  on(event: 'data', cb: (r: { listServicesResponse?: { service: { name: string }[] } }) => void): void;
  on(event: 'error', cb: (e: ServiceError) => void): void;
  write(message: { listServices: string }): void;
  end(): void;
}
interface ReflectionClient {
  ServerReflectionInfo: (metadata?: Metadata) => ReflectionCall;
  close: () => void;
}

/** The services reflection lists, asked with a generic client. */
async function listServices(address: string, channel: ChannelCredentials, token?: string): Promise<string[]> {
  const protoDir = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
  const def = loadSync('grpc/reflection/v1alpha/reflection.proto', { includeDirs: [protoDir] });
  const pkg = loadPackageDefinition(def) as unknown as {
    grpc: { reflection: { v1alpha: { ServerReflection: new (a: string, c: unknown) => ReflectionClient } } };
  };
  const client = new pkg.grpc.reflection.v1alpha.ServerReflection(address, channel);
  const metadata = new Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const call = client.ServerReflectionInfo(metadata);
      call.on('data', (r) => {
        resolve(r.listServicesResponse?.service.map((s) => s.name) ?? []);
        call.end();
      });
      call.on('error', reject);
      call.write({ listServices: '' });
    });
  } finally {
    client.close();
  }
}

function check(address: string, channel: ChannelCredentials): Promise<healthV1Client.HealthCheckResponse> {
  const client = new healthV1Client.HealthClient(address, channel);
  return new Promise<healthV1Client.HealthCheckResponse>((resolve, reject) =>
    client.check({ service: '' }, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  ).finally(() => client.close());
}

async function start(
  options: Partial<GrpcServiceOptions>,
): Promise<{ app: INestMicroservice; port: number }> {
  const port = await freePort();
  const app = await createGrpcMicroservice(TestModule, {
    host: '127.0.0.1',
    port,
    protoFiles: [],
    packages: [],
    maxMessageBytes: 1 << 20,
    reflection: true,
    logLevels: ['error'],
    ...options,
  });
  app.get(HealthStatus).set('', SERVING);
  await app.listen();
  return { app, port };
}

describe('a service without a tokens file', () => {
  it('warns at start that it is unauthenticated', async () => {
    const warn = vi.spyOn(Logger.prototype, 'warn');
    const { app } = await start({});
    try {
      expect(warn.mock.calls.map((c) => String(c[0]))).toContainEqual(
        expect.stringMatching(/^UNAUTHENTICATED: DEIT_AUTH_TOKENS_FILE is not set, so any caller/),
      );
    } finally {
      warn.mockRestore();
      await app.close();
    }
  });
});

describe('a service with tokens, TLS and a plain-text health port', () => {
  let pki: TestPki;
  let app: INestMicroservice;
  let address: string;
  let healthAddress: string;
  let tls: ChannelCredentials;

  beforeAll(async () => {
    pki = createTestPki();
    const healthPort = await freePort();
    const security = securityOptions(
      {
        authTokensFile: writeTokensFile(pki.dir, [{ name: 'web', token: 'web-token', roles: ['classify'] }]),
        tlsCertFile: pki.server.cert,
        tlsKeyFile: pki.server.key,
        tlsClientCaFile: '',
        healthPort,
      },
      {},
    );
    const started = await start(security);
    app = started.app;
    address = `127.0.0.1:${started.port}`;
    healthAddress = `127.0.0.1:${healthPort}`;
    tls = credentials.createSsl(pem(pki.ca.cert));
  });

  afterAll(() => app?.close());

  it('answers health over TLS without a token', async () => {
    expect((await check(address, tls)).status).toBe(SERVING);
  });

  it('does not speak plain text on the TLS port', async () => {
    await expect(check(address, credentials.createInsecure())).rejects.toMatchObject({
      code: status.UNAVAILABLE,
    });
  });

  it('serves reflection only to a caller with a valid token', async () => {
    await expect(listServices(address, tls)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(listServices(address, tls, 'wrong')).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    expect(await listServices(address, tls, 'web-token')).toContain(SERVICE_NAMES.health);
  });

  it('answers health, and nothing else, in plain text on the health port', async () => {
    expect((await check(healthAddress, credentials.createInsecure())).status).toBe(SERVING);
    await expect(
      listServices(healthAddress, credentials.createInsecure(), 'web-token'),
    ).rejects.toMatchObject({
      code: status.UNIMPLEMENTED,
    });
  });

  it('reports NOT_SERVING on the health port while draining', async () => {
    app.get(HealthStatus).setAllNotServing();
    expect((await check(healthAddress, credentials.createInsecure())).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.NOT_SERVING,
    );
    app.get(HealthStatus).set('', SERVING);
  });
});
