"""A KServe custom model serving an ONNX classifier the way deit-serve does, for bench/peers/run.mjs.

    python kserve_model.py --model_file model.onnx --model_name NAME --grpc_port P --http_port Q

One kserve.Model whose predict runs onnxruntime on the request's FP32 input [N,3,H,W] and answers
what deit-serve's Open Inference Protocol endpoint answers by default: every ONNX output (both heads'
logits) and "probabilities", the softmax of the heads' average. The session options are those of
libs/runtime's OnnxModelSession (graph optimisation 'all', one intra-op thread per core, sequential
execution, memory pattern off, no spinning of idle intra-op threads). KServe's ModelServer always
starts its REST server too; run.mjs gives it a port of its own and sends it nothing.
"""

import argparse

import kserve
import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse

PROBABILITIES_OUTPUT = "probabilities"


def session_options() -> ort.SessionOptions:
    """libs/runtime/src/onnx-session.ts's options, in Python's names."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 0  # onnxruntime's "one per core", as the service's default
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class OnnxClassifier(kserve.Model):
    def __init__(self, name: str, model_file: str):
        super().__init__(name)
        self.model_file = model_file
        self.session = None
        self.input_name = ""
        self.output_names: list[str] = []

    def load(self) -> bool:
        self.session = ort.InferenceSession(
            self.model_file, sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        pixels = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        heads = self.session.run(self.output_names, {self.input_name: pixels})
        probabilities = softmax(np.mean(heads, axis=0)).astype(np.float32)
        outputs = [
            InferOutput(name=name, shape=list(values.shape), datatype="FP32", data=values)
            for name, values in zip(self.output_names, heads)
        ]
        outputs.append(
            InferOutput(
                name=PROBABILITIES_OUTPUT,
                shape=list(probabilities.shape),
                datatype="FP32",
                data=probabilities,
            )
        )
        return InferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            infer_outputs=outputs,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_file", required=True)
    args, _ = parser.parse_known_args()
    model = OnnxClassifier(args.model_name, args.model_file)
    model.load()
    kserve.ModelServer().start([model])
