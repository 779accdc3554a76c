"""The registry domain, in floors: each package imports only its own floor and those below it.

pyproject.toml declares the exact floors, every module placed, as import-linter contracts that the
suite runs (tests/unit/test_layers.py). Read them bottom up, roughly:

0. The ground, the modules right here: the database handle (``db``), the tables, names, the
   domain errors, read-only lookups (``lookups``) and pages (``paging``), facts copied out of rows
   (``facts``), the changes a transaction hands the runtime after commit (``changes``), the
   history's hash chain (``ledger``: what an entry's hash covers, and its link as it is inserted),
   JSON of finite numbers (``finite_json``) and the Prometheus metrics (``telemetry``); beside them
   ``process/``, the plumbing of a process (its background loops, the metric files its processes
   share), which knows no table.
1. ``artifacts/``: the content-addressed store, safe loading of uploads, what a fitted model is;
   ``inference/`` beside it: compiled trees, forests and boosted models (NumPy alone).
2. ``serving/``: the runtime of one process: loading versions into memory, the model cache, the
   alias snapshot and hot swap, routing, running models, input checks, shadow runs and figures.
3. The use cases that change state: ``catalog/`` (models and versions), ``aliases/`` (promote,
   rollback, delete, rollouts and the rules that admit a version), ``evaluations/``, ``access/``
   (API tokens), ``governance/`` (protected aliases: policies, evidence, the guard every move
   meets), ``batch/`` (batch runs recorded); ``events/`` (webhook subscriptions, the outbox and its
   deliverer), ``monitoring/`` (the prediction log, its export to the lake, feedback, live quality)
   and ``integrity/`` (the artifact scrub, the ledger's check and export) beside them; above them
   ``approvals/`` (requests whose last approval moves the alias) and ``autopilot/``.

A use case records what the runtime must learn (``changes.record``) in its transaction; the
runtime applies it after the commit, as the deliverer sends the outbox's events. Nothing in this
package knows about HTTP; the API layer turns its results and errors into responses.
"""
