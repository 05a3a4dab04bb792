import 'reflect-metadata';
import {
  Client,
  credentials,
  loadPackageDefinition,
  Metadata,
  status,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { Module, type INestMicroservice } from '@nestjs/common';
import { healthV1, healthV1Client, SERVICE_NAMES } from '@deit-serve/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGrpcMicroservice } from './bootstrap';
import { HealthModule, HealthStatus } from './health';
import { freePort } from './ports';

const { HealthCheckResponse_ServingStatus: S } = healthV1;

interface ReflectionCall {
  on(event: 'data', cb: (r: { listServicesResponse?: { service: { name: string }[] } }) => void): void;
  on(event: 'error', cb: (e: Error) => void): void;
  write(message: { listServices: string }): void;
  end(): void;
}
interface ReflectionClient {
  ServerReflectionInfo: () => ReflectionCall;
  close: () => void;
}

@Module({ imports: [HealthModule] })
class TestModule {}

describe('gRPC service skeleton (health, reflection, error mapping)', () => {
  let app: INestMicroservice;
  let client: healthV1Client.HealthClient;
  let health: HealthStatus;
  let address: string;
  const refused: [string, status][] = [];

  beforeAll(async () => {
    const port = await freePort();
    address = `127.0.0.1:${port}`;
    app = await createGrpcMicroservice(TestModule, {
      host: '127.0.0.1',
      port,
      protoFiles: [],
      packages: [],
      maxMessageBytes: 1 << 20,
      reflection: true,
      logLevels: ['error'],
      onRefused: (path, code) => refused.push([path, code]),
    });
    health = app.get(HealthStatus);
    health.set('', S.NOT_SERVING);
    await app.listen();
    client = new healthV1Client.HealthClient(address, credentials.createInsecure());
  });

  afterAll(async () => {
    client.close();
    await app.close();
  });

  const check = (service: string) =>
    new Promise<healthV1Client.HealthCheckResponse>((resolve, reject) =>
      client.check({ service }, new Metadata(), (err, res) => (err ? reject(err) : resolve(res))),
    );

  it('answers Check with the current status and NOT_FOUND for an unknown service', async () => {
    expect((await check('')).status).toBe(S.NOT_SERVING);
    health.set('', S.SERVING);
    expect((await check('')).status).toBe(S.SERVING);
    const err = (await check('no.such.Service').catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toMatch(/unknown service "no.such.Service"/);
    // The handler answered these: they are not refusals below the handler.
    expect(refused).toEqual([]);
  });

  it('streams status changes on Watch, starting with the current one', async () => {
    health.set('svc', S.NOT_SERVING);
    const seen: number[] = [];
    const call = client.watch({ service: 'svc' });
    const done = new Promise<void>((resolve) => {
      call.on('data', (r: healthV1Client.HealthCheckResponse) => {
        seen.push(r.status);
        if (seen.length === 1) health.set('svc', S.SERVING);
        if (seen.length === 2) {
          call.cancel();
          resolve();
        }
      });
      call.on('error', () => resolve());
    });
    await done;
    expect(seen).toEqual([S.NOT_SERVING, S.SERVING]);
  });

  /** Sends raw bytes as a Health/Check request; resolves with the error the server answers. */
  async function refusalOf(bytes: Buffer): Promise<ServiceError> {
    const raw = new Client(address, credentials.createInsecure());
    try {
      return await new Promise<ServiceError>((resolve, reject) =>
        raw.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (b: Buffer) => b,
          (b: Buffer) => b,
          bytes,
          (err) => (err ? resolve(err) : reject(new Error('the request was accepted'))),
        ),
      );
    } finally {
      raw.close();
    }
  }
  // Field 1 (length-delimited) whose length runs past the end of the message.
  const INVALID = Buffer.from([0x0a, 0x7f, 0x61]);

  it('answers a request that is not a valid protobuf message with INVALID_ARGUMENT, naming the method', async () => {
    const error = await refusalOf(INVALID);
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(
      /^the request is not a valid grpc\.health\.v1\.HealthCheckRequest protobuf message \(.+\)$/,
    );
    expect(refused).toContainEqual(['/grpc.health.v1.Health/Check', status.INVALID_ARGUMENT]);
  });

  it('reports calls refused below the handler (undecodable, oversized) to onRefused, once each', async () => {
    refused.length = 0;
    // grpc-js refuses a message over maxMessageBytes itself, before any interceptor sees it.
    expect((await refusalOf(Buffer.alloc((1 << 20) + 16))).code).toBe(status.RESOURCE_EXHAUSTED);
    await refusalOf(INVALID);
    expect(refused).toEqual([
      ['/grpc.health.v1.Health/Check', status.RESOURCE_EXHAUSTED],
      ['/grpc.health.v1.Health/Check', status.INVALID_ARGUMENT],
    ]);
  });

  it('serves reflection listing the health service', async () => {
    // Ask the reflection service over the wire with a generic client.
    const protoDir = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
    const def = loadSync('grpc/reflection/v1alpha/reflection.proto', { includeDirs: [protoDir] });
    const pkg = loadPackageDefinition(def) as unknown as {
      grpc: {
        reflection: { v1alpha: { ServerReflection: new (a: string, c: unknown) => ReflectionClient } };
      };
    };
    const reflection = new pkg.grpc.reflection.v1alpha.ServerReflection(
      address,
      credentials.createInsecure(),
    );
    const services = await new Promise<string[]>((resolve, reject) => {
      const call = reflection.ServerReflectionInfo();
      call.on('data', (r: { listServicesResponse?: { service: { name: string }[] } }) => {
        resolve(r.listServicesResponse?.service.map((s) => s.name) ?? []);
        call.end();
      });
      call.on('error', reject);
      call.write({ listServices: '' });
    });
    reflection.close();
    expect(services).toContain(SERVICE_NAMES.health);
  });
});
