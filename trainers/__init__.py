"""Training and evaluation of scikit-learn models, and the command line a CI retrain job runs.

Uses pandas and scikit-learn only; talks to a registry over HTTP (``trainers.client``).
"""

__version__ = "0.1.0"
