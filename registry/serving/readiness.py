"""What this process can serve, as its refreshes found it: whether it ever read its aliases, the
aliases whose target it could not load, and those it never served for want of the artifact store."""
from __future__ import annotations


class ServingReadiness:
    """Updated by each refresh of the model server; read by ``/readyz`` and ``/ops``."""

    def __init__(self):
        self.knows_its_aliases = False  # once True, it answers its aliases whatever the database does
        self._unservable: list[dict] = []
        self._starved: list[dict] = []
        self._warm = False  # a refresh once found every alias served (or failing for another reason than the store)

    def found(self, *, unservable: list[dict], starved: list[dict]) -> None:
        """A refresh read the aliases: ``unservable`` could not load their target, and of them ``starved``
        were never served here because the store did not answer. Once none is starved, it stays warm."""
        self.knows_its_aliases = True
        self._unservable = unservable
        if not self._warm:
            self._starved = starved
            self._warm = not starved

    def unservable(self) -> list[dict]:
        """Aliases whose target version this process could not load at its last refresh."""
        return list(self._unservable)

    def starved(self) -> list[dict]:
        """Aliases this process serves nothing for because the artifact store did not answer when it
        first needed their version (a new replica with an empty node cache, say). Until none is left it
        is not ready; from then on it stays ready and serves what it holds whatever the store does."""
        return list(self._starved)
