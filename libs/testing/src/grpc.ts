import { type ChannelCredentials, credentials, Metadata } from '@grpc/grpc-js';
import type { DynamicModule, INestMicroservice, Type } from '@nestjs/common';
import { createGrpcMicroservice, freePort, type GrpcServiceOptions } from '@deit-serve/grpc-server';
import { healthV1Client } from '@deit-serve/proto';

export interface TestService {
  app: INestMicroservice;
  address: string;
  close(): Promise<void>;
}

/** Starts a NestJS gRPC microservice on a free loopback port, quiet unless it errs. */
export async function startTestService(
  module: (port: number) => Type | DynamicModule,
  options: Partial<GrpcServiceOptions> = {},
): Promise<TestService> {
  const port = await freePort();
  const app = await createGrpcMicroservice(module(port), {
    host: '127.0.0.1',
    port,
    protoFiles: [],
    packages: [],
    maxMessageBytes: 1 << 24,
    reflection: true,
    logLevels: ['error'],
    ...options,
  });
  await app.listen();
  return { app, address: `127.0.0.1:${port}`, close: () => app.close() };
}

/** One grpc.health.v1 Check through the generated client (plain text unless `channel` says). */
export async function healthCheck(
  address: string,
  service = '',
  channel: ChannelCredentials = credentials.createInsecure(),
): Promise<healthV1Client.HealthCheckResponse> {
  const client = new healthV1Client.HealthClient(address, channel);
  try {
    return await new Promise((resolve, reject) =>
      client.check({ service }, new Metadata(), (err, res) => (err ? reject(err) : resolve(res))),
    );
  } finally {
    client.close();
  }
}
