"""The catalogue: registered models and their versions (upload, list, look at, describe, archive)."""
