"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``): a third edge of the data plane,
beside our JSON routes and V2 REST, parsing and rendering only (``docs/open-inference-protocol.md``)."""
