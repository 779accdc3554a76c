"""The registry domain: tables, use cases, artifact store, safe loading and model serving.

Nothing in this package knows about HTTP; the API layer turns its results and errors into responses.
"""
