"""What reading, checking and running uploaded models imports, imported at once.

A process that only serves compiled models never needs scikit-learn, SciPy or pandas, so the app
imports them only when a request does (an upload, a version loaded from its artifact, drift). Under
gunicorn that was seconds of a worker's first upload or load, in every worker: gunicorn's master
imports them here before it forks (gunicorn.conf.py), and every worker shares them from the start.
"""
import importlib

# Each is otherwise imported inside the function that first needs it. skops (a skops upload's reader,
# half a second) is left to the first skops upload.
MODULES = (
    "registry.artifacts.safe_pickle",
    "registry.artifacts.loading.checks",
    "registry.artifacts.loading.pickles",
    "registry.artifacts.introspect",  # and through it every accepted scikit-learn class
    "registry.artifacts.loading.allowed",
    "sklearn.pipeline",
    "scipy.sparse",
    "scipy.special",
    "scipy.stats",  # drift and the rollout gates
    "pandas",
)


def import_model_libraries() -> None:
    """Import every module an upload, a load from an artifact or a drift figure imports on first use."""
    for name in MODULES:
        importlib.import_module(name)
