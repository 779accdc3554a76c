"""Serving: the runtime of one process: the data plane, loading versions, the cache, alias snapshots and hot swap, routing, running models, shadows and figures."""
