"""A Python client of the model registry: ``from registry_client import RegistryClient``.

Needs only ``requests``; pandas DataFrames are accepted where installed, and a fitted estimator is
uploaded as its joblib file where joblib is installed.
"""
from registry_client.batch import InvalidRows, Plan
from registry_client.client import RegistryClient
from registry_client.errors import RegistryError, RegistryUnreachable, TokenRejected
from registry_client.records import (
    ApprovalRequest,
    BatchRun,
    Evaluation,
    Event,
    Feature,
    FeedbackResult,
    Inference,
    Model,
    Move,
    NewToken,
    NewWebhook,
    Policy,
    Prediction,
    Rollout,
    Signature,
    Token,
    Version,
    Webhook,
)
from registry_client.transport import DEFAULT_TIMEOUT

__all__ = [
    "ApprovalRequest", "BatchRun", "DEFAULT_TIMEOUT", "Evaluation", "InvalidRows", "Plan", "Event", "Feature", "FeedbackResult", "Inference", "Model", "Move", "NewToken", "NewWebhook",
    "Policy", "Prediction", "RegistryClient", "RegistryError", "RegistryUnreachable", "Rollout", "Signature", "Token",
    "TokenRejected", "Version", "Webhook",
]
