"""The Open Inference Protocol (KServe V2 REST) edge: a second protocol over the same prediction use case."""
