"""A declared policy reads as the registry stores it (registry_client.declared.models.normal_policy against
registry.governance.policy.stored), so plan sees no change where apply would make none."""
from datetime import datetime, timezone

import pytest

from registry.governance.policy import stored
from registry_client.declared.models import normal_policy


@pytest.mark.parametrize("policy", [
    {},
    {"approvals": 2, "movers": {"roles": ["admin"]}},
    {"movers": {"tokens": ["release-bot"], "groups": ["ml-leads"]}, "request_hours": 24},
    {"require": {"card": ["intended_use"], "compatible_signature": True, "rollout": True,
                 "evaluation": {"dataset": "holdout", "metric": "r2", "margin": 0.01}}},
    {"require": {"evaluation": {"dataset": "holdout", "metric": "rmse", "higher_is_better": False}}},
    {"freeze": [{"from": "2026-12-24T00:00:00+01:00", "until": "2026-12-27T00:00:00Z", "reason": "holidays"},
                {"from": "2027-01-01T00:00:00", "until": "2027-01-02T00:00:00.5Z"}]},
], ids=["empty", "approvals", "movers", "require", "lower-is-better", "freeze"])
def test_a_declared_policy_normalises_as_the_registry_stores_it(policy):
    as_the_api_reads_it = {**policy, "freeze": [
        {**window, "from": _instant(window["from"]), "until": _instant(window["until"])}
        for window in policy.get("freeze", [])]}
    assert normal_policy(policy) == stored(as_the_api_reads_it)


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
