"""Artifacts: the content-addressed store, safe loading of uploads, and what a fitted model is."""
