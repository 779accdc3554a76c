"""The registry domain, grouped by capability.

- ``catalog/``: models, versions, aliases, their history, evaluations, and how to find them;
- ``artifacts/``: the content-addressed store, safe loading of uploads, what a fitted model is;
- ``serving/``: loaded models per process, alias snapshots and hot swap, input checks, prediction;
- ``rollouts/``: canary and shadow traffic on an alias, routing and summed figures;
- ``events/``: webhook subscriptions, the transactional outbox and its deliverer.

Beside them: the database handle (``db``), the tables, the domain errors, names, tokens and the
Prometheus metrics. Nothing in this package knows about HTTP; the API layer turns its results and
errors into responses.
"""
