"""What an alias serves: promote, rollback and delete, rollouts on it, the rules that admit a version, and its past."""
