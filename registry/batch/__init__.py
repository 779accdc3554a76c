"""Batch runs: scoring jobs run outside the server (Spark, Dask, the CLI) and recorded against a version."""
