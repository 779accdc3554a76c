"""Which answers the prediction log keeps: each model's share (its own, else ``PREDICTION_LOG_SAMPLE``),
drawn by request id so that every worker and replica keeps the same ones (errors always), and the share
of the kept ones its ``explain`` setting asks to have explained.

Every model's shares are read again by the alias watcher when the registry changes (the log
follows it), so a new share reaches every worker and replica within ``ALIAS_REFRESH_SECONDS``
whatever the traffic; a process without a watcher has its writer read them when requests come and
the last reading is older than a few seconds.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from registry.db import db, end_read
from registry.tables import RegisteredModel
from registry.telemetry import PREDICTION_LOG_SHARES_READ


def draw(request_id: str, key: bytes) -> float:
    """A number in [0, 1) that is the same for the same id in every worker and replica sharing ``key``."""
    return int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8, key=key).digest()) / 2**64


class Shares:
    """Every model's share of its answers logged and of those explained, and its id, as last read."""

    def __init__(self, default: float, refresh_seconds: float, chance: Callable[[], float], draw_key: bytes):
        self.default = default
        self.refresh_seconds = refresh_seconds
        self._chance = chance
        self._draw_key = draw_key[:64]  # a secret of the deployment: callers cannot tell which ids are drawn
        self.own: dict[str, float] = {}  # model -> its own share, where it set one
        self.explained: dict[str, float] = {}  # model -> the share of its logged answers explained, where it set one
        self.model_ids: dict[str, int] = {}
        self.followed = False  # the alias watcher reads the shares: requests need not ask
        self._wanted = threading.Event()
        self._read_at = float("-inf")

    def share(self, model: str) -> float:
        """The share of ``model``'s requests kept (its own, else the default)."""
        return self.own.get(model, self.default)

    def draws(self, model: str, request_id: str | None) -> bool:
        """Whether ``model``'s share draws this answer: by the request id's own draw, so that every answer
        under one id is kept or none is (without an id, by chance)."""
        share = self.share(model)
        return share >= 1 or (share > 0 and (self._chance() if request_id is None else draw(request_id, self._draw_key)) < share)

    def explains(self, model: str, request_id: str) -> bool:
        """Whether ``model``'s ``explain`` share draws this logged answer (by its request id, as the sample does)."""
        share = self.explained.get(model, 0.0)
        return bool(share) and (share >= 1 or draw(f"explain:{request_id}", self._draw_key) < share)

    def ask_if_stale(self) -> bool:
        """Without a watcher to follow: ask for the shares to be read again when the last reading is older
        than ``refresh_seconds``; whether this call asked."""
        if self.followed or time.monotonic() - self._read_at < self.refresh_seconds or self._wanted.is_set():
            return False
        self._wanted.set()
        return True

    def asked(self) -> bool:
        """Whether a reading was asked for since the last one (the asking is taken back)."""
        if not self._wanted.is_set():
            return False
        self._wanted.clear()
        return True

    def read(self) -> None:
        """Read every model's shares and id again (within the caller's session scope)."""
        started, read_at = time.monotonic(), time.time()
        query = select(RegisteredModel.name, RegisteredModel.id, RegisteredModel.prediction_log_sample,
                       RegisteredModel.prediction_log_explain)
        rows = [tuple(row) for row in db.session.execute(query).all()]
        end_read()
        self.own = {name: share for name, _, share, _ in rows if share is not None}
        self.explained = {name: share for name, _, _, share in rows if share}
        self.model_ids = {name: model_id for name, model_id, _, _ in rows}
        self._read_at = started
        PREDICTION_LOG_SHARES_READ.labels(str(os.getpid())).set(read_at)
