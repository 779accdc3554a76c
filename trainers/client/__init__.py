"""A Python client of the registry: ``from trainers.client import RegistryClient`` (docs/python-client.md)."""
from trainers.client.records import (
    Evaluation,
    Event,
    Feature,
    FeedbackResult,
    Inference,
    Model,
    Move,
    NewToken,
    Prediction,
    Rollout,
    Signature,
    Token,
    Version,
)
from trainers.client.registry_client import RegistryClient
from trainers.client.transport import DEFAULT_TIMEOUT
from trainers.errors import RegistryError, RegistryUnreachable, TokenRejected

__all__ = [
    "DEFAULT_TIMEOUT", "Evaluation", "Event", "Feature", "FeedbackResult", "Inference", "Model", "Move", "NewToken",
    "Prediction", "RegistryClient", "RegistryError", "RegistryUnreachable", "Rollout", "Signature", "Token",
    "TokenRejected", "Version",
]
