"""The integrity of what is stored: a slow background scrub of the artifact store's copies of the
served versions, what it found, and what the rest of the service makes of it; and the check of the
ledger's hash chain, with its export (``ledger``)."""
