import type { Http2Server, Http2Session } from 'node:http2';
import type { Server } from '@grpc/grpc-js';

/** HTTP/2's largest window (2^31 − 1). */
export const MAX_FLOW_CONTROL_WINDOW = 2 ** 31 - 1;

/** The part of grpc-js 1.14's Server this module reaches into (private there; checked at run time). */
interface ServerInternals {
  http2Servers?: Map<Http2Server, { sessions?: Set<Http2Session> }>;
}

/**
 * Opens the server's HTTP/2 receive windows — every stream's (SETTINGS_INITIAL_WINDOW_SIZE) and the
 * connection's (a WINDOW_UPDATE on stream 0 as each session starts) — to `bytes`.
 *
 * Why: a float32 tensor for a 224² model is 602 KB, and HTTP/2 starts every window at 64 KiB, so a
 * request crossed ten window round trips, each waiting on the server's event loop while onnxruntime
 * kept the cores busy. grpc-js clients honour `grpc-node.flow_control_window`, but grpc-js 1.14
 * servers ignore it (grpc/grpc-node PR #3058 is open). The windows are therefore set with Node's
 * public http2 API (`updateSettings`, `setLocalWindowSize`) on the http2 servers grpc-js keeps in a
 * private map. That map is checked here: if a grpc-js upgrade moves it this throws at start, and
 * libs/grpc-server's flow-control test fails, rather than the windows silently staying at 64 KiB.
 *
 * Runs after the server is bound (NestJS's `onLoadPackageDefinition` is such a point) and applies to
 * sessions already open as well as to later ones.
 */
export function applyFlowControlWindow(server: Server, bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 65_535 || bytes > MAX_FLOW_CONTROL_WINDOW) {
    throw new RangeError(
      `HTTP/2 flow-control window must be an integer from 65535 to ${MAX_FLOW_CONTROL_WINDOW} bytes, got ${bytes}`,
    );
  }
  const { http2Servers } = server as unknown as ServerInternals;
  if (!(http2Servers instanceof Map)) {
    throw new Error(
      'this @grpc/grpc-js version does not keep its http2 servers where the flow-control window expects ' +
        'them (Server.http2Servers); set DEIT_GRPC_FLOW_CONTROL_WINDOW=65535 to run without it',
    );
  }
  if (http2Servers.size === 0) throw new Error('the flow-control window is set after the server is bound');
  if (bytes === 65_535) return; // HTTP/2's default: nothing to change
  const open = (session: Http2Session) => {
    // A session already torn down has no window to open; grpc-js's own handler deals with it.
    if (!session.destroyed) session.setLocalWindowSize(bytes);
  };
  for (const [http2Server, info] of http2Servers) {
    http2Server.updateSettings({ initialWindowSize: bytes });
    http2Server.on('session', open);
    for (const session of info.sessions ?? []) {
      session.settings({ initialWindowSize: bytes });
      open(session);
    }
  }
}
