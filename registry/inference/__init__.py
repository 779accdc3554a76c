"""Compiled inference, on the artifacts' floor: what predict calls for a loaded version.

``predictors`` holds the predictors (linear arithmetic; trees, forests and boosted models as node
records walked in C, ``native/tree_walk.c`` loaded by ``tree_walk``), bit for bit their library's
answers. Their served forms (the arrays every worker of a machine maps) are kept beside the
artifacts they come from (``registry.artifacts.served_forms``), whose allow-list they are rebuilt by.

It needs NumPy alone: no Flask, no SQLAlchemy, no scikit-learn at import. The loading of uploads
(``registry.artifacts``) builds these forms from files it parsed itself, the serving runtime
(``registry.serving``) maps and calls them, and a batch job can load them where the service is not.
"""
