"""Drives the inference service's Open Inference Protocol with Triton's own Python client.

Usage: oip_client.py ADDRESS MODEL IMAGE_PNG TENSOR_F32 OUT_JSON

TENSOR_F32 holds one preprocessed input (float32, C*H*W values). Everything the server answered is
written to OUT_JSON; apps/inference/test/oip.e2e.spec.ts compares it with Classify's answers.
"""

import json
import sys

import grpc
import numpy as np
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

address, model, image_path, tensor_path, out_path = sys.argv[1:6]
client = triton.InferenceServerClient(url=address)
out = {}

out["live"] = client.is_server_live()
out["ready"] = client.is_server_ready()
out["model_ready"] = client.is_model_ready(model)
out["unknown_model_ready"] = client.is_model_ready("no-such-model")
server = client.get_server_metadata(as_json=True)
out["server"] = server
metadata = client.get_model_metadata(model, as_json=True)
out["metadata"] = metadata
out["config"] = client.get_model_config(model, as_json=True)["config"]

pixel_input = next(i for i in metadata["inputs"] if i["datatype"] == "FP32")
pixels_shape = [int(d) for d in pixel_input["shape"][1:]]
pixels = np.fromfile(tensor_path, dtype=np.float32).reshape([1, *pixels_shape])
png = open(image_path, "rb").read()


def tensor_input(batch=pixels):
    t = triton.InferInput(pixel_input["name"], list(batch.shape), "FP32")
    t.set_data_from_numpy(batch)
    return t


def image_input(count=1):
    t = triton.InferInput("image", [count, 1], "BYTES")
    t.set_data_from_numpy(np.array([[png]] * count, dtype=np.object_))
    return t


def outputs_of(result):
    answer = {}
    for o in result.get_response().outputs:
        array = result.as_numpy(o.name)
        if array.dtype == np.object_:
            answer[o.name] = [[s.decode() for s in row] for row in array]
        else:
            answer[o.name] = array.tolist()
    response = result.get_response()
    return {"model_name": response.model_name, "model_version": response.model_version, "outputs": answer}


def infer(inputs, head=None, outputs=None, **kwargs):
    parameters = {"head": head} if head is not None else None
    return outputs_of(client.infer(model, inputs, outputs=outputs, parameters=parameters, **kwargs))


out["infer"] = {
    "tensor": infer([tensor_input()]),
    "image": infer([image_input()]),
    "batch_of_2_images": infer([image_input(2)]),
    "tensor_batch_of_2": infer([tensor_input(np.concatenate([pixels, pixels]))]),
    "head_cls": infer([tensor_input()], head="cls"),
    "head_dist": infer([tensor_input()], head="dist"),
    "head_avg": infer([tensor_input()], head="avg"),
    "classification": infer(
        [image_input()],
        outputs=[triton.InferRequestedOutput("probabilities", class_count=3)],
    ),
}

# Typed contents (fp32_contents) instead of raw_input_contents: tritonclient always sends raw, so this
# request goes through the protocol's generated stub that tritonclient ships.
stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))
typed = service_pb2.ModelInferRequest(model_name=model)
tensor = typed.inputs.add(name=pixel_input["name"], datatype="FP32", shape=[1, *pixels_shape])
tensor.contents.fp32_contents.extend(pixels.flatten().tolist())
typed_response = stub.ModelInfer(typed)
out["infer"]["typed_contents"] = {
    o.name: np.frombuffer(raw, dtype=np.float32).tolist()
    for o, raw in zip(typed_response.outputs, typed_response.raw_output_contents)
}

# Streaming: two good requests and a bad one on one stream, answered each for itself.
stream_results = []
client.start_stream(callback=lambda result, error: stream_results.append(
    {"error": error.message() if error else None, "ok": result is not None}))
client.async_stream_infer(model, [tensor_input()], request_id="s1")
client.async_stream_infer(model, [image_input()], request_id="s2")
client.async_stream_infer("no-such-model", [tensor_input()], request_id="s3")
client.stop_stream()
out["stream"] = stream_results

out["statistics"] = client.get_inference_statistics(model, as_json=True)
out["index"] = client.get_model_repository_index(as_json=True)


def failure(call):
    try:
        call()
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}
    return None


wrong_dtype = triton.InferInput(pixel_input["name"], [1, *pixels_shape], "INT32")
wrong_dtype.set_data_from_numpy(np.zeros([1, *pixels_shape], dtype=np.int32))
short = triton.InferInput(pixel_input["name"], [1, *pixels_shape], "FP32")
short.set_data_from_numpy(pixels)
short._raw_content = short._raw_content[:-4]  # one value short: a byte size that does not match the shape
out["errors"] = {
    "unknown_model": failure(lambda: client.infer("no-such-model", [tensor_input()])),
    "unknown_version": failure(lambda: client.infer(model, [tensor_input()], model_version="999")),
    "unknown_model_metadata": failure(lambda: client.get_model_metadata("no-such-model")),
    "wrong_shape": failure(lambda: client.infer(model, [tensor_input(pixels.reshape([1, -1]))])),
    "wrong_datatype": failure(lambda: client.infer(model, [wrong_dtype])),
    "byte_size": failure(lambda: client.infer(model, [short])),
    "unknown_input": failure(lambda: client.infer(model, [triton.InferInput("nope", [1, 1], "FP32").set_data_from_numpy(np.zeros([1, 1], dtype=np.float32))])),
    "unknown_output": failure(lambda: client.infer(model, [tensor_input()], outputs=[triton.InferRequestedOutput("nope")])),
    "unknown_head": failure(lambda: infer([tensor_input()], head="teacher")),
    "unload": failure(lambda: client.unload_model(model)),
    "shared_memory": failure(lambda: client.get_system_shared_memory_status()),
}

with open(out_path, "w") as f:
    json.dump(out, f)
