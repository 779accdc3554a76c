"""Evaluations: scores of versions on named datasets, and versions compared side by side."""
