"""Every table, and what keeps it from growing with activity alone.

The catalogue (what people register) and the ledger (the history of moves) are kept for ever;
every other table is written only when needed, pruned after a retention setting, or folded into a
summary. A table without an entry here fails the suite (tests/integration/test_retention.py).
"""
CATALOGUE = "catalogue: grows with what people register, never with traffic"
LEDGER = "ledger: the history of moves and rollouts, kept for ever"

RULES = {
    "models": CATALOGUE,
    "versions": CATALOGUE,
    "aliases": CATALOGUE,
    "evaluations": CATALOGUE,
    "api_tokens": CATALOGUE,
    "webhook_subscriptions": CATALOGUE,
    "promotion_events": LEDGER,
    "rollouts": LEDGER,
    "ledger_head": "one row: the head of the ledger's hash chain (its length, last id and hash)",
    "rollout_plans": "one per rollout that was given a plan, kept with its rollout (the ledger)",
    "rollout_stats": "a row per process while its rollout runs, folded into one per role and version when it ends",
    "webhook_events": "written only when an active subscription wants the event; pruned once no delivery refers to it",
    "webhook_deliveries": "pruned WEBHOOK_RETENTION_DAYS after they were created, once delivered or given up",
    "webhook_attempts": "pruned with their delivery",
    "browser_sessions": "deleted at sign-out; expired ones pruned at every sign-in",
    "prediction_log": "a sample of requests; pruned PREDICTION_LOG_DAYS after they were answered (every 10 minutes), "
                      "and oldest first past each model's share of PREDICTION_LOG_MAX_MB",
    "prediction_log_exports": "one per model that logs, while PREDICTION_LOG_EXPORT is set: its high-water mark in the lake",
    "drift_references": "one per version that was sent its training or evaluation rows (profiles only); replaced, never added to",
    "version_health": "one per served version; the monitoring sweep drops versions nothing serves any more",
    "artifact_checks": "one per served artifact the scrub checked, and per damaged or missing one until it is "
                       "repaired; an intact one nothing serves is dropped at the next pass",
    "alias_policies": "one per protected alias, replaced when changed, deleted when lifted (its changes are in the ledger)",
    "approval_requests": LEDGER + ": a request to move a protected alias is part of that alias's history",
    "approvals": LEDGER + ": each approval of a request, kept with it",
    "batch_runs": "one per scoring job a client reports; the newest 1000 of each version are kept, older ones "
                  "deleted when a new one is recorded (registry/batch/runs.py: KEPT_PER_VERSION)",
    "leases": "one per kind of fleet-wide work (the monitoring sweep, rollout control)",
}
