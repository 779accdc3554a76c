"""Benchmarks of the prediction service: figures printed and written to bench/results/, never pass/fail."""
