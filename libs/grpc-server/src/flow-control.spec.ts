import 'reflect-metadata';
import { connect, type ClientHttp2Session, type Settings } from 'node:http2';
import { Server } from '@grpc/grpc-js';
import { Module, type INestMicroservice } from '@nestjs/common';
import { afterEach, describe, expect, it } from 'vitest';
import { createGrpcMicroservice } from './bootstrap';
import { applyFlowControlWindow } from './flow-control';
import { HealthModule } from './health';
import { freePort } from './ports';

@Module({ imports: [HealthModule] })
class TestModule {}

/** What a plain HTTP/2 client sees of a server: its SETTINGS and the connection window it grants. */
async function windowsOf(address: string): Promise<{ settings: Settings; connectionWindow: number }> {
  const session: ClientHttp2Session = connect(`http://${address}`);
  try {
    const settings = await new Promise<Settings>((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
    });
    // The connection-level WINDOW_UPDATE follows the SETTINGS frame; give it a few turns to land.
    const until = Date.now() + 500;
    while (session.state.remoteWindowSize === 65_535 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return { settings, connectionWindow: session.state.remoteWindowSize ?? Number.NaN };
  } finally {
    session.close();
  }
}

describe('HTTP/2 flow-control window of the gRPC server', () => {
  let app: INestMicroservice | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function start(flowControlWindowBytes?: number): Promise<string> {
    const port = await freePort();
    app = await createGrpcMicroservice(TestModule, {
      host: '127.0.0.1',
      port,
      protoFiles: [],
      packages: [],
      maxMessageBytes: 1 << 24,
      reflection: false,
      logLevels: ['error'],
      ...(flowControlWindowBytes ? { flowControlWindowBytes } : {}),
    });
    await app.listen();
    return `127.0.0.1:${port}`;
  }

  it('grants clients the configured window per stream and per connection', async () => {
    const { settings, connectionWindow } = await windowsOf(await start(4 << 20));
    expect(settings.initialWindowSize).toBe(4 << 20);
    expect(connectionWindow).toBe(4 << 20);
  });

  it("leaves HTTP/2's 64 KiB windows when no window is configured (what the option changes)", async () => {
    const { settings, connectionWindow } = await windowsOf(await start());
    expect(settings.initialWindowSize).toBe(65_535);
    expect(connectionWindow).toBe(65_535);
  });

  it('refuses windows HTTP/2 cannot express', () => {
    expect(() => applyFlowControlWindow(new Server(), 1000)).toThrow(/65535 to 2147483647 bytes, got 1000/);
    expect(() => applyFlowControlWindow(new Server(), 2 ** 31)).toThrow(/got 2147483648/);
  });

  it('fails loudly when grpc-js no longer has the internals it relies on, or is not bound yet', () => {
    const server = new Server();
    expect(() => applyFlowControlWindow(server, 1 << 20)).toThrow(/after the server is bound/);
    (server as unknown as { http2Servers?: unknown }).http2Servers = undefined;
    expect(() => applyFlowControlWindow(server, 1 << 20)).toThrow(/does not keep its http2 servers/);
  });
});
