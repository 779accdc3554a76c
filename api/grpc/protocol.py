"""The messages of ``inference.GRPCInferenceService``, built from the vendored descriptor
(``grpc_predict_v2.txtpb``, KServe's ``grpc_predict_v2.proto``) into a descriptor pool of this module's own.

Not protoc's generated code: that adds its file to protobuf's default pool, where Triton's client
(``grpc_service.proto``) and MLServer define the same ``inference.*`` names, and a process that imports two
of them fails ("duplicate symbol"). In a pool of its own the service's messages meet nobody's. The methods
are served by grpcio's generic handlers (``api/grpc/server.py``), so no generated servicer is needed either.
"""
from importlib.resources import files

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

SERVICE = "inference.GRPCInferenceService"
DESCRIPTOR_FILE = "grpc_predict_v2.txtpb"


def _load() -> dict[str, type]:
    described = text_format.Parse(files(__package__).joinpath(DESCRIPTOR_FILE).read_text(),
                                  descriptor_pb2.FileDescriptorProto())
    pool = descriptor_pool.DescriptorPool()
    pool.Add(described)
    return message_factory.GetMessages([described], pool=pool)


_MESSAGES = _load()
ServerLiveRequest = _MESSAGES["inference.ServerLiveRequest"]
ServerLiveResponse = _MESSAGES["inference.ServerLiveResponse"]
ServerReadyRequest = _MESSAGES["inference.ServerReadyRequest"]
ServerReadyResponse = _MESSAGES["inference.ServerReadyResponse"]
ModelReadyRequest = _MESSAGES["inference.ModelReadyRequest"]
ModelReadyResponse = _MESSAGES["inference.ModelReadyResponse"]
ServerMetadataRequest = _MESSAGES["inference.ServerMetadataRequest"]
ServerMetadataResponse = _MESSAGES["inference.ServerMetadataResponse"]
ModelMetadataRequest = _MESSAGES["inference.ModelMetadataRequest"]
ModelMetadataResponse = _MESSAGES["inference.ModelMetadataResponse"]
ModelInferRequest = _MESSAGES["inference.ModelInferRequest"]
ModelInferResponse = _MESSAGES["inference.ModelInferResponse"]
InferParameter = _MESSAGES["inference.InferParameter"]
