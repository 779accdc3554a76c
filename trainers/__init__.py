"""Training and evaluation of scikit-learn models, and the command line a CI retrain job runs.

Uses pandas and scikit-learn only; talks to a registry over HTTP (the light ``registry_client`` package, client/ in this repository).
"""

__version__ = "0.1.0"
