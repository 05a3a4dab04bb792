import {
  Metadata,
  type ServerInterceptingCallInterface,
  ServerInterceptingCall,
  type ServerInterceptor,
  status,
} from '@grpc/grpc-js';
import { UndecodableRequest } from '@deit-serve/proto';

/**
 * Answers a request message that does not decode with INVALID_ARGUMENT and a message naming the
 * expected type (grpc-js itself would answer INTERNAL "Error deserializing request"). The
 * deserializers of `loadPackageDefinition` hand over an {@link UndecodableRequest} instead of throwing.
 */
export function undecodableRequestInterceptor(): ServerInterceptor {
  return (_method, call: ServerInterceptingCallInterface) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (message: unknown, forward) => {
            if (message instanceof UndecodableRequest) {
              call.sendStatus({
                code: status.INVALID_ARGUMENT,
                details: message.message,
                metadata: new Metadata(),
              });
              return;
            }
            forward(message);
          },
        }),
    });
}
