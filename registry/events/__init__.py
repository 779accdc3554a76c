"""Events: webhook subscriptions, the transactional outbox, and the deliverer that sends it."""
