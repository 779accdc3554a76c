"""Not a test module: a script run with the KServe venv's interpreter (.venv-kserve, requirements-kserve.txt),
which drives KServe's own gRPC client (kserve.InferenceGRPCClient) against a running registry.

    .venv-kserve/bin/python tests/e2e/kserve_peer/grpc_calls.py < calls.json > answers.json

Standard input: {"address": "host:port", "calls": [{"model", "version", "rows", "outputs"}]}. Standard output:
{"ready": {"server", "live"}, "answers": [{"model_version", "outputs": {name: values}}], "unknown_model": {"code",
"details"}}. Every other call sends its rows as raw_input_contents (binary), the rest as typed contents.
"""
import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput


def _request(call: dict, binary: bool) -> InferRequest:
    rows = np.array(call["rows"], dtype=np.float64)
    tensor = InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return InferRequest(model_name=call["model"], infer_inputs=[tensor], model_version=call["version"] or None,
                        request_outputs=[RequestedOutput(name) for name in call["outputs"]])


async def main(given: dict) -> dict:
    client = InferenceGRPCClient(given["address"], retries=0)
    ready = {"server": await client.is_server_ready(), "live": await client.is_server_live()}
    answers = []
    for index, call in enumerate(given["calls"]):
        response = await client.infer(_request(call, binary=index % 2 == 0))
        answers.append({"model_version": response.model_version,
                        "outputs": {output.name: output.as_numpy().tolist() for output in response.outputs}})
    unknown = given["calls"][0] | {"model": "no-such-model"}
    try:
        await client.infer(_request(unknown, binary=True))
        refused = {"code": "OK", "details": ""}
    except grpc.RpcError as error:
        refused = {"code": str(error.code()), "details": error.details()}
    await client.close()
    return {"ready": ready, "answers": answers, "unknown_model": refused}


if __name__ == "__main__":
    json.dump(asyncio.run(main(json.load(sys.stdin))), sys.stdout)
