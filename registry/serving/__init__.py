"""Serving: loaded models per process, alias snapshots and hot swap, input checks and prediction."""
