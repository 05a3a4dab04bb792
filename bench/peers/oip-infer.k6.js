// k6 closed-loop caller for bench/peers/run.mjs: each virtual user sends ModelInfer
// (inference.GRPCInferenceService, the Open Inference Protocol's v2 gRPC) on its own connection and
// waits for the answer before sending the next. The request is the same for every server: one FP32
// tensor [1,3,224,224] as raw_input_contents, no requested outputs (the server's defaults).
//
//   k6 run --vus C --duration Ns -e ADDRESS=host:port -e MODEL=name -e INPUT=name \
//     -e TENSOR=file.f32 -e PROTO_DIR=proto/third_party/oip -e SUMMARY=out.json oip-infer.k6.js
import encoding from 'k6/encoding';
import grpc from 'k6/net/grpc';
import { Counter } from 'k6/metrics';

const client = new grpc.Client();
client.load([__ENV.PROTO_DIR], 'grpc_service.proto');

const failed = new Counter('infer_failed');
const succeeded = new Counter('infer_ok');
const request = {
  model_name: __ENV.MODEL,
  inputs: [{ name: __ENV.INPUT, datatype: 'FP32', shape: [1, 3, 224, 224] }],
  // protojson: bytes fields travel as base64.
  raw_input_contents: [encoding.b64encode(open(__ENV.TENSOR, 'b'))],
};
let connected = false;
let errorsLogged = 0;

export default function () {
  if (!connected) {
    client.connect(__ENV.ADDRESS, { plaintext: true, reflect: false, timeout: '30s' });
    connected = true;
  }
  const response = client.invoke('inference.GRPCInferenceService/ModelInfer', request, { timeout: '60s' });
  const raw = response.message?.rawOutputContents ?? response.message?.raw_output_contents;
  if (response.status === grpc.StatusOK && raw?.length > 0) {
    succeeded.add(1);
  } else {
    failed.add(1);
    if (errorsLogged++ === 0) {
      console.error(`ModelInfer: status ${response.status} ${response.error?.message ?? 'no raw outputs'}`);
    }
  }
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}
