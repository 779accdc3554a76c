"""The catalogue: models, versions, aliases and their history, evaluations, and how to find them."""
