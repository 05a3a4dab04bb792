import {
  type ServerInterceptingCallInterface,
  ServerInterceptingCall,
  type ServerInterceptor,
  status,
} from '@grpc/grpc-js';

/** Told of each call that ended with a status no handler sent; `path` is `/package.Service/Method`. */
export type RefusalListener = (path: string, code: status) => void;

/**
 * Observes the calls refused below the handlers, which request metrics kept in handlers never see:
 * by an interceptor (authentication, a request that is not valid protobuf) or by grpc-js itself (a
 * message over the size limit, which the innermost call answers on its own).
 *
 * `innermost` goes first in the server's interceptor list (grpc-js wraps the list around its own call
 * in order, so the first one holds that call) and sees every status the call ends with; `outermost`
 * goes last and sees the statuses that handlers send. A status seen by the first and not the second
 * is a refusal. The two meet through the method descriptor, one object per call.
 */
export function refusalInterceptors(onRefused: RefusalListener): {
  innermost: ServerInterceptor;
  outermost: ServerInterceptor;
} {
  const answeredByHandler = new WeakSet<object>();
  const outermost: ServerInterceptor = (method, call) =>
    new ServerInterceptingCall(call, {
      sendStatus: (sent, next) => {
        answeredByHandler.add(method);
        next(sent);
      },
    });
  const innermost: ServerInterceptor = (method, call: ServerInterceptingCallInterface) => {
    // grpc-js's own call sends its refusals through `this.sendStatus`: replacing the method on this
    // one object (not the prototype) sees them too.
    const send = call.sendStatus.bind(call);
    let reported = false;
    call.sendStatus = (sent: Parameters<ServerInterceptingCallInterface['sendStatus']>[0]) => {
      if (!reported && sent.code !== status.OK && !answeredByHandler.has(method)) {
        reported = true;
        onRefused(method.path, sent.code);
      }
      send(sent);
    };
    return new ServerInterceptingCall(call);
  };
  return { innermost, outermost };
}
