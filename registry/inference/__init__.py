"""Compiled inference, on the artifacts' floor: trees, forests and boosted models as node records
walked in C (``native/tree_walk.c``, loaded by ``tree_walk``), bit for bit their library's answers.

It needs NumPy alone: no Flask, no SQLAlchemy, no scikit-learn at import. The loading of uploads
(``registry.artifacts``) builds these forms from files it parsed itself, the serving runtime
(``registry.serving``) maps and calls them, and a batch job can load them where the service is not.
"""
