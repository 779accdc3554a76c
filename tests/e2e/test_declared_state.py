"""The registry as declared state against a real gunicorn, on the backend under test: ``model-registry-client``
(``python -m registry_client``) exports, plans and applies a registry.yaml over HTTP."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sklearn.linear_model import LinearRegression

import registry_client
from registry_client import RegistryClient

ROWS = [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 5.0]]
TARGET = [1.0, 2.0, 4.0, 9.0]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def run(live, *args: str, token: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command line as a CI job runs it: REGISTRY_URL and REGISTRY_TOKEN in its environment."""
    env = {**os.environ, "REGISTRY_URL": live.url, "REGISTRY_TOKEN": token or live.admin_token,
           "PYTHONPATH": str(Path(registry_client.__file__).parents[1]), **(env or {})}
    env.pop("GITHUB_SHA", None), env.pop("CI_COMMIT_SHA", None)
    return subprocess.run([sys.executable, "-m", "registry_client", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def admin(live_registry) -> RegistryClient:
    """A client with the admin token."""
    return RegistryClient(live_registry.url, live_registry.admin_token)


@pytest.fixture(scope="module")
def churn(admin):
    """Two versions of ``churn``, v1 in production; their sha256 by number."""
    versions = [admin.upload("churn", LinearRegression(fit_intercept=bool(n)).fit(ROWS, TARGET), input_example=ROWS[:1])
                for n in (0, 1)]
    admin.promote("churn", 1, reason="first")
    return {version.version: version.sha256 for version in versions}


def write(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def declared(churn, production: int, **model) -> dict:
    """A file declaring churn's production at ``production`` (and ``model``'s other fields)."""
    return {"models": {"churn": {**model, "aliases": {"production": {"version": production,
                                                                     "sha256": churn[production]}}}}}


def test_an_export_plans_clean(live_registry, churn, tmp_path):
    exported = run(live_registry, "export")
    assert exported.returncode == 0, exported.stderr
    document = yaml.safe_load(exported.stdout)
    assert document["models"]["churn"]["aliases"] == {"production": {"version": 1, "sha256": churn[1]}}
    file = tmp_path / "registry.yaml"
    file.write_text(exported.stdout)
    planned = run(live_registry, "plan", "-f", str(file))
    assert (planned.returncode, planned.stdout.strip()) == (0, "No changes: the registry matches the file."), planned.stderr


def test_an_export_shows_every_policy_the_registry_holds_and_plans_clean(live_registry, admin, tmp_path):
    """Policies are read back whole (GET /models/<name>/policies): one set by hand on an alias that serves
    nothing, one on a model whose history is long, each exported as the registry holds it."""
    admin.upload("guarded", LinearRegression().fit(ROWS, TARGET), input_example=ROWS[:1])
    for n in range(3):  # history entries before and after the policy
        admin.promote("guarded", 1, alias=f"a{n}")
    admin.set_policy("guarded", "nightly", {"approvals": 2, "movers": {"tokens": ["release-bot"]}}, reason="hand")
    admin.set_policy("guarded", "a0", {"require": {"card": ["limitations"]}})
    exported = run(live_registry, "export")
    assert exported.returncode == 0, exported.stderr
    policies = yaml.safe_load(exported.stdout)["models"]["guarded"]["policies"]
    assert policies == {policy.alias: policy.policy for policy in admin.policies("guarded")}
    assert list(policies) == ["a0", "nightly"] and policies["nightly"]["approvals"] == 2
    file = tmp_path / "registry.yaml"
    file.write_text(exported.stdout)
    planned = run(live_registry, "plan", "-f", str(file))
    assert (planned.returncode, planned.stdout.strip()) == (0, "No changes: the registry matches the file."), planned.stderr


def test_plan_names_an_alias_move_and_apply_makes_it_once(live_registry, admin, churn, tmp_path):
    file = write(tmp_path / "registry.yaml", declared(churn, 2, description="who leaves"))
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2, planned.stderr
    assert planned.stdout.splitlines() == [
        f"~ models/churn/description: '' -> 'who leaves'",
        f"~ models/churn/aliases/production: v1 (sha256 {churn[1][:12]}...) -> v2 (sha256 {churn[2][:12]}...)",
        "Plan: 0 to add, 2 to change, 0 to delete.",
    ]
    assert admin.aliases("churn") == {"production": 1}  # a plan changes nothing

    applied = run(live_registry, "apply", "-f", str(file), "--commit", COMMIT)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.splitlines()[-1] == "Applied 2 of 2 changes."
    assert admin.aliases("churn") == {"production": 2} and admin.model("churn").description == "who leaves"
    move = next(admin.history("churn", "production"))
    sha256 = hashlib.sha256(file.read_bytes()).hexdigest()
    assert (move.action, move.to_version) == ("promote", 2)
    assert move.reason == f"declared state: registry.yaml sha256 {sha256} commit {COMMIT}"

    again = run(live_registry, "apply", "-f", str(file))
    assert (again.returncode, again.stdout.strip()) == (0, "No changes: the registry matches the file.")
    assert next(admin.history("churn", "production")).id == move.id


def test_a_hand_made_change_is_drift_that_plan_names_and_apply_undoes(live_registry, admin, churn, tmp_path):
    file = write(tmp_path / "registry.yaml", declared(churn, 2))
    assert run(live_registry, "apply", "-f", str(file)).returncode == 0
    admin.promote("churn", 1, reason="by hand")
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2
    assert planned.stdout.splitlines()[0].startswith("~ models/churn/aliases/production: v1 ")
    assert run(live_registry, "apply", "-f", str(file)).returncode == 0
    assert admin.aliases("churn") == {"production": 2}


def test_a_sha256_that_is_not_the_versions_is_refused_before_any_change(live_registry, admin, churn, tmp_path):
    before = admin.aliases("churn")
    document = declared(churn, 1, description="changed too")
    document["models"]["churn"]["aliases"]["production"]["sha256"] = churn[2]
    file = write(tmp_path / "registry.yaml", document)
    for command in ("plan", "apply"):
        answered = run(live_registry, command, "-f", str(file))
        assert answered.returncode == 1
        assert f"models/churn/aliases/production: version 1 of churn is sha256 {churn[1]}" in answered.stderr
    assert admin.aliases("churn") == before and admin.model("churn").description != "changed too"


def test_a_model_or_version_the_registry_lacks_is_refused(live_registry, churn, tmp_path):
    file = write(tmp_path / "registry.yaml", {"models": {
        "churn": {"aliases": {"staging": {"version": 9, "sha256": churn[1]}}},
        "nobody": {"description": "x"}}})
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 1
    assert "models/churn/aliases/staging: churn has no version 9" in planned.stderr
    assert "models/nobody: the registry has no model 'nobody'" in planned.stderr


def test_a_reader_plans_but_cannot_apply(live_registry, admin, churn, tmp_path):
    reader = admin.create_token("declared-reader", "reader").token
    file = write(tmp_path / "registry.yaml", declared(churn, 1))
    assert run(live_registry, "plan", "-f", str(file), token=reader).returncode == 2
    applied = run(live_registry, "apply", "-f", str(file), token=reader)
    assert applied.returncode == 1 and "403" in applied.stdout and "Stopped: 0 of 1 changes applied." in applied.stdout
    assert admin.aliases("churn") == {"production": 2}


@pytest.fixture(scope="module")
def fraud(admin):
    """Two versions of ``fraud``, v1 in production, production protected by one approval; their sha256 by number."""
    versions = [admin.upload("fraud", LinearRegression(fit_intercept=bool(n)).fit(ROWS, TARGET), input_example=ROWS[:1])
                for n in (0, 1)]
    admin.promote("fraud", 1)
    admin.set_policy("fraud", "production", {"approvals": 1})
    return {version.version: version.sha256 for version in versions}


def moving_fraud(fraud, tmp_path) -> Path:
    return write(tmp_path / "registry.yaml", {"models": {"fraud": {"aliases": {
        "production": {"version": 2, "sha256": fraud[2]}}}}})


def test_a_protected_move_opens_its_approval_request_and_waits(live_registry, admin, fraud, tmp_path):
    file = moving_fraud(fraud, tmp_path)
    applied = run(live_registry, "apply", "-f", str(file))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    [request] = admin.approval_requests("fraud", "production", state="open")
    assert (request.version, request.requested_by) == (2, "admin")
    assert applied.stdout.splitlines() == [
        f"waiting: ~ models/fraud/aliases/production: v1 (sha256 {fraud[1][:12]}...) -> v2 (sha256 {fraud[2][:12]}...)",
        f"    approval request {request.id} is open: 0 of 1 approvals; the alias moves when the last one is given",
        "Applied 0 of 1 changes; 1 waiting for approvals.",
    ]
    assert admin.aliases("fraud") == {"production": 1}

    again = run(live_registry, "apply", "-f", str(file))  # the same file again opens no second request
    assert again.returncode == 0 and again.stdout.startswith("waiting: ")
    assert [r.id for r in admin.approval_requests("fraud", "production", state="open")] == [request.id]
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2
    assert planned.stdout.splitlines()[0].endswith(f"(request {request.id} waits for approvals: 0 of 1)")

    approver = RegistryClient(live_registry.url, admin.create_token("fraud-approver", "ci").token)
    assert approver.approve("fraud", "production", request.id).state == "done"
    assert admin.aliases("fraud") == {"production": 2}
    assert run(live_registry, "plan", "-f", str(file)).returncode == 0


def test_a_move_the_policy_refuses_names_what_is_missing_and_stops(live_registry, admin, fraud, tmp_path):
    admin.set_policy("fraud", "production", {"approvals": 1, "require": {"card": ["intended_use"]}})
    file = write(tmp_path / "registry.yaml", {"models": {"fraud": {
        "description": "card fraud", "aliases": {"production": {"version": 1, "sha256": fraud[1]},
                                                 "staging": {"version": 1, "sha256": fraud[1]}}}}})
    applied = run(live_registry, "apply", "-f", str(file))
    assert applied.returncode == 1
    lines = applied.stdout.splitlines()
    assert lines[0] == "done: ~ models/fraud/description: '' -> 'card fraud'"
    assert lines[1].startswith("refused: ~ models/fraud/aliases/production: v2 ")
    assert lines[2].startswith("    the policy refuses it; missing: card: fill the model card's intended_use of version 1")
    assert "; approvals: 0 of 1 approvals" in lines[2]
    assert lines[3:] == ["Stopped: 1 of 3 changes applied; not applied:",
                         f"  + models/fraud/aliases/staging: (none) -> v1 (sha256 {fraud[1][:12]}...)"]
    assert admin.aliases("fraud") == {"production": 2}
    assert list(admin.approval_requests("fraud", "production", state="open")) == []


def token_entries(live, name: str) -> list[tuple[str, str]]:
    """The ledger's entries of token ``name``, oldest first: (action, reason)."""
    exported = RegistryClient(live.url, live.admin_token)._http.send("GET", "/audit/export").text.splitlines()
    entries = [json.loads(line) for line in exported]
    return [(e["action"], e["reason"]) for e in entries if e["model_id"] is None and e["details"]["token"] == name]


def entries_of(live, *actions: str) -> list[tuple[str, str, dict]]:
    """The ledger's entries of ``actions``, oldest first: (action, reason, details)."""
    exported = RegistryClient(live.url, live.admin_token)._http.send("GET", "/audit/export").text.splitlines()
    return [(e["action"], e["reason"], e["details"]) for e in map(json.loads, exported) if e["action"] in actions]


def declared_reason(file: Path) -> str:
    """The reason an apply of ``file`` with ``--commit COMMIT`` gives every change."""
    return f"declared state: registry.yaml sha256 {hashlib.sha256(file.read_bytes()).hexdigest()} commit {COMMIT}"


def ledger_entries(live) -> int:
    return RegistryClient(live.url, live.admin_token)._http.json("GET", "/audit/verify")["entries"]


@pytest.mark.parametrize(("content", "said"), [
    (b"models:\n  churn:\n    aliases: {}\n    owner: me\n", "models/churn: Additional properties are not allowed ('owner'"),
    (b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nmodels: {}\n",
     "YAML anchors and aliases (&name, *name) are not taken here"),
], ids=["unknown key", "alias bomb"])
def test_hostile_files_are_refused_before_any_change(live_registry, admin, churn, tmp_path, content, said):
    before = ledger_entries(live_registry), admin.aliases("churn")
    file = tmp_path / "registry.yaml"
    file.write_bytes(content)
    for command in ("plan", "apply"):
        answered = run(live_registry, command, "-f", str(file))
        assert answered.returncode == 1 and said in answered.stderr and answered.stdout == ""
    assert (ledger_entries(live_registry), admin.aliases("churn")) == before


def test_a_100_mb_file_is_refused_unread(live_registry, admin, churn, tmp_path):
    before = ledger_entries(live_registry)
    file = tmp_path / "registry.yaml"
    with open(file, "wb") as out:
        out.write(b"models:\n  churn:\n    description: '")
        out.truncate(100 * 2**20)  # sparse: 100 MB the reader would have to read
    answered = run(live_registry, "apply", "-f", str(file))
    assert answered.returncode == 1 and "is larger than 1048576 bytes" in answered.stderr
    assert ledger_entries(live_registry) == before


def test_tokens_are_made_with_their_secret_in_a_file_never_printed(live_registry, admin, tmp_path):
    (tmp_path / "secrets").mkdir()
    nightly = {"name": "ci-nightly", "role": "ci", "owner": "ci@example.com", "secret_file": "secrets/ci-nightly",
               "scopes": [{"models": ["churn"], "rights": ["read", "promote"]}]}
    file = write(tmp_path / "registry.yaml", {"tokens": [nightly]})
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2
    assert planned.stdout.splitlines()[0] == (
        '+ tokens/ci-nightly: (none) -> {"name": "ci-nightly", "role": "ci", "owner": "ci@example.com", "scopes": '
        '[{"models": ["churn"], "rights": ["read", "promote"]}]} (its secret is written to secrets/ci-nightly)')
    applied = run(live_registry, "apply", "-f", str(file))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    secret_file = tmp_path / "secrets" / "ci-nightly"
    secret = secret_file.read_text().strip()
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert secret not in applied.stdout + applied.stderr
    assert RegistryClient(live_registry.url, secret).model("churn").name == "churn"
    assert run(live_registry, "plan", "-f", str(file)).returncode == 0

    nightly["scopes"][0]["rights"] = ["read"]  # no route changes a token's scopes: it is made again
    write(file, {"tokens": [nightly]})
    applied = run(live_registry, "apply", "-f", str(file), "--commit", COMMIT)
    assert applied.returncode == 0 and "revoked and made again" in applied.stdout
    reason = f"declared state: registry.yaml sha256 {hashlib.sha256(file.read_bytes()).hexdigest()} commit {COMMIT}"
    assert token_entries(live_registry, "ci-nightly")[-2:] == [("token_revoke", reason), ("token_create", reason)]
    renewed = secret_file.read_text().strip()
    assert renewed != secret and renewed not in applied.stdout
    with pytest.raises(registry_client.TokenRejected) as revoked:  # a write asks the database every time
        RegistryClient(live_registry.url, secret).promote("churn", 2)
    assert revoked.value.status == 401


def test_a_token_to_make_needs_a_secret_file(live_registry, tmp_path):
    file = write(tmp_path / "registry.yaml", {"tokens": [{"name": "nowhere", "role": "ci"}]})
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 1 and "tokens/nowhere: name a secret_file" in planned.stderr


def test_a_file_that_removes_the_last_admin_token_is_refused(live_registry, admin, tmp_path):
    admin.create_token("ops-admin", "admin")
    everyone = [token for token in yaml.safe_load(run(live_registry, "export").stdout)["tokens"]
                if token["role"] != "admin"]
    file = write(tmp_path / "registry.yaml", {"prune": {"tokens": True}, "tokens": everyone})
    planned = run(live_registry, "apply", "-f", str(file))
    assert planned.returncode == 1 and "the file would remove the registry's last admin token" in planned.stderr
    assert "ops-admin" in [token.name for token in admin.tokens()]


def test_policies_are_set_before_the_moves_they_guard_and_pruned_when_asked(live_registry, admin, churn, tmp_path):
    document = declared(churn, 2)
    document["models"]["churn"]["policies"] = {"production": {"movers": {"roles": ["admin"]},
                                                             "freeze": [{"from": "2099-01-01T00:00:00+01:00",
                                                                         "until": "2099-01-02T00:00:00Z"}]}}
    file = write(tmp_path / "registry.yaml", document)
    applied = run(live_registry, "apply", "-f", str(file))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    policy = admin.policy("churn", "production")
    assert policy.policy["movers"]["roles"] == ["admin"]
    assert policy.policy["freeze"][0]["from"] == "2098-12-31T23:00:00Z"
    assert run(live_registry, "plan", "-f", str(file)).returncode == 0

    admin.set_policy("churn", "staging", {"approvals": 3})  # by hand, on an alias the file does not guard
    document["prune"] = {"policies": True}
    write(file, document)
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2 and planned.stdout.splitlines()[0].startswith("- models/churn/policies/staging: ")
    assert run(live_registry, "apply", "-f", str(file)).returncode == 0
    assert admin.policy("churn", "staging") is None and admin.policy("churn", "production") is not None


def test_prediction_log_retention_is_declared_per_model(live_registry, admin, churn, tmp_path):
    document = declared(churn, 2)
    document["models"]["churn"]["prediction_log"] = {"max_mb": 5}
    file = write(tmp_path / "registry.yaml", document)
    assert run(live_registry, "apply", "-f", str(file), "--commit", COMMIT).returncode == 0
    assert admin.model("churn").raw["prediction_log"]["max_mb"] == 5
    assert entries_of(live_registry, "model_update")[-1] == (
        "model_update", declared_reason(file), {"changed": {"prediction_log": {"max_mb": 5}}})
    assert run(live_registry, "plan", "-f", str(file)).returncode == 0


def test_webhooks_are_known_by_url_and_pruned_when_asked(live_registry, admin, tmp_path):
    by_hand = admin.create_webhook("https://93.184.215.14/by-hand", ["*"])
    hook = {"url": "https://93.184.215.14/declared", "events": ["alias.moved"], "secret_file": "hook-secret"}
    file = write(tmp_path / "registry.yaml", {"webhooks": [hook]})
    applied = run(live_registry, "apply", "-f", str(file))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    secret = (tmp_path / "hook-secret").read_text().strip()
    assert secret.startswith("whsec_") and secret not in applied.stdout
    hook["events"] = ["alias.moved", "version.created"]
    write(file, {"prune": {"webhooks": True}, "webhooks": [hook]})
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2
    lines = planned.stdout.splitlines()
    assert lines[0].startswith("~ webhooks/https://93.184.215.14/declared: ")
    assert lines[1].startswith("- webhooks/https://93.184.215.14/by-hand: ")
    assert lines[2:] == ["Plan: 0 to add, 1 to change, 1 to delete."]
    assert run(live_registry, "apply", "-f", str(file), "--commit", COMMIT).returncode == 0
    assert [(w.url, w.events) for w in admin.webhooks()] == [(hook["url"], hook["events"])]
    assert by_hand.id not in [w.id for w in admin.webhooks()]
    changes = [(action, reason, details.get("changed", details.get("url")))
               for action, reason, details in entries_of(live_registry, "webhook_update", "webhook_delete")]
    assert changes[-2:] == [  # every change the file made is an entry naming it
        ("webhook_update", declared_reason(file), {"events": hook["events"]}),
        ("webhook_delete", declared_reason(file), "https://93.184.215.14/by-hand")]
    assert run(live_registry, "plan", "-f", str(file)).returncode == 0


def test_a_webhook_is_signed_with_the_secret_its_variable_holds(live_registry, admin, tmp_path):
    hook = {"url": "https://93.184.215.14/from-env", "events": ["*"], "secret_env": "HOOK_SECRET"}
    file = write(tmp_path / "registry.yaml", {"webhooks": [hook]})
    unset = run(live_registry, "plan", "-f", str(file))
    assert unset.returncode == 1 and "$HOOK_SECRET (its secret_env) is not set" in unset.stderr
    secret = "whsec_" + "QUJD" * 8  # the base64 of 24 bytes
    applied = run(live_registry, "apply", "-f", str(file), env={"HOOK_SECRET": secret})
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "signed with $HOOK_SECRET" in applied.stdout and secret not in applied.stdout
    assert hook["url"] in [w.url for w in admin.webhooks()]
    write(file, {"webhooks": [{**hook, "secret_file": "also"}]})
    both = run(live_registry, "plan", "-f", str(file))
    assert both.returncode == 1 and "should not be valid under {'required': ['secret_file', 'secret_env']}" in both.stderr


def test_model_cards_are_declared_per_version_planned_field_by_field_and_exported(live_registry, admin, tmp_path):
    versions = [admin.upload("carded", LinearRegression(fit_intercept=bool(n)).fit(ROWS, TARGET),
                             input_example=ROWS[:1], intended_use="first draft") for n in (0, 1)]
    sha = {version.version: version.sha256 for version in versions}
    card = {"version": 2, "sha256": sha[2], "intended_use": "scoring churn monthly", "limitations": "not for B2B"}
    document = {"models": {"carded": {"cards": [card]}}}
    file = write(tmp_path / "registry.yaml", document)
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2, planned.stderr
    assert planned.stdout.splitlines() == [
        "~ models/carded/cards/2/intended_use: 'first draft' -> 'scoring churn monthly'",
        "~ models/carded/cards/2/limitations: '' -> 'not for B2B'",
        "Plan: 0 to add, 2 to change, 0 to delete.",
    ]  # the description, left out, is left alone
    applied = run(live_registry, "apply", "-f", str(file), "--commit", COMMIT)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.splitlines()[-1] == "Applied 2 of 2 changes."
    assert entries_of(live_registry, "card_update")[-2:] == [  # each field its own change, each an entry
        ("card_update", declared_reason(file), {"changed": {"intended_use": "scoring churn monthly"}}),
        ("card_update", declared_reason(file), {"changed": {"limitations": "not for B2B"}})]
    written = admin.version("carded", 2)
    assert (written.intended_use, written.limitations, written.description) == ("scoring churn monthly", "not for B2B", "")
    assert admin.version("carded", 1).intended_use == "first draft"
    assert run(live_registry, "plan", "-f", str(file)).returncode == 0

    admin.update_version("carded", 2, limitations="")  # by hand: drift
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.stdout.splitlines()[0] == "~ models/carded/cards/2/limitations: '' -> 'not for B2B'"

    exported = yaml.safe_load(run(live_registry, "export").stdout)["models"]["carded"]["cards"]
    assert exported == [{"version": 1, "sha256": sha[1], "description": "", "intended_use": "first draft", "limitations": ""},
                        {"version": 2, "sha256": sha[2], "description": "", "intended_use": "scoring churn monthly",
                         "limitations": ""}]


@pytest.mark.parametrize(("card", "said"), [
    ({"version": 2, "sha256": "0" * 64}, "models/carded2/cards/2: version 2 of carded2 is sha256 "),
    ({"version": 7, "sha256": "0" * 64}, "models/carded2/cards/7: carded2 has no version 7"),
], ids=["another sha256", "no such version"])
def test_a_card_of_bytes_the_file_did_not_mean_is_refused_before_any_change(live_registry, admin, tmp_path, card, said):
    if admin.find_model("carded2") is None:
        for n in (0, 1):
            admin.upload("carded2", LinearRegression(fit_intercept=bool(n)).fit(ROWS, TARGET), input_example=ROWS[:1])
    before = ledger_entries(live_registry)
    file = write(tmp_path / "registry.yaml", {"models": {"carded2": {
        "description": "changed too", "cards": [{**card, "limitations": "x"}]}}})
    applied = run(live_registry, "apply", "-f", str(file))
    assert applied.returncode == 1 and said in applied.stderr and applied.stdout == ""
    assert admin.model("carded2").description == "" and admin.version("carded2", 2).limitations == ""
    assert ledger_entries(live_registry) == before


def test_a_card_given_twice_is_refused(live_registry, admin, churn, tmp_path):
    card = {"version": 1, "sha256": churn[1], "limitations": "x"}
    file = write(tmp_path / "registry.yaml", {"models": {"churn": {"cards": [card, {**card, "limitations": "y"}]}}})
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 1 and "models/churn/cards/1: the file gives version 1's card twice" in planned.stderr


def test_a_declared_rollout_plan_starts_once_and_its_outcome_is_no_drift(live_registry, admin, tmp_path):
    versions = [admin.upload("rolled", LinearRegression(fit_intercept=bool(n)).fit(ROWS, TARGET), input_example=ROWS[:1])
                for n in (0, 1)]
    sha = {version.version: version.sha256 for version in versions}
    admin.promote("rolled", 1)
    plan = {"steps": [{"percent": 10.0, "min_requests": 100, "max_minutes": 60.0}], "on_success": "promote"}
    document = {"models": {"rolled": {
        "aliases": {"production": {"version": 1, "sha256": sha[1]}},
        "rollouts": {"production": {"version": 2, "sha256": sha[2], "plan": plan, "sticky_header": "X-User-Id"}}}}}
    file = write(tmp_path / "registry.yaml", document)
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2, planned.stderr
    assert planned.stdout.splitlines() == [
        '+ models/rolled/rollouts/production: (none) -> {"version": 2, "plan": {"steps": [{"percent": 10.0, '
        '"min_requests": 100, "max_minutes": 60.0}], "on_success": "promote"}, "sticky_header": "X-User-Id"}',
        "Plan: 1 to add, 0 to change, 0 to delete.",
    ]
    assert admin.rollout("rolled", "production") is None  # a plan changes nothing

    applied = run(live_registry, "apply", "-f", str(file), "--commit", COMMIT)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    rollout = admin.rollout("rolled", "production")
    assert (rollout.canary["version"], rollout.plan["steps"], rollout.sticky_header) == (2, plan["steps"], "X-User-Id")
    started = next(admin.history("rolled", "production"))
    sha256 = hashlib.sha256(file.read_bytes()).hexdigest()
    assert (started.action, started.reason) == ("rollout_start",
                                               f"declared state: registry.yaml sha256 {sha256} commit {COMMIT}")
    assert run(live_registry, "plan", "-f", str(file)).returncode == 0  # running: started once
    exported = run(live_registry, "export")
    assert yaml.safe_load(exported.stdout)["models"]["rolled"]["rollouts"]["production"]["version"] == 2
    (tmp_path / "exported.yaml").write_text(exported.stdout)
    assert run(live_registry, "plan", "-f", str(tmp_path / "exported.yaml")).returncode == 0

    admin.complete_rollout("rolled", "production")  # as its plan would, at the end
    assert admin.aliases("rolled") == {"production": 2}
    after = run(live_registry, "plan", "-f", str(file))  # the file still names v1 as production's: rolled out
    assert (after.returncode, after.stdout.strip()) == (0, "No changes: the registry matches the file.")

    admin.promote("rolled", 1, reason="by hand")  # production back on v1, no rollout: the file's plan starts again
    again = run(live_registry, "plan", "-f", str(file))
    assert again.returncode == 2 and again.stdout.startswith("+ models/rolled/rollouts/production: (none) -> ")


def test_a_rollout_of_bytes_the_file_did_not_mean_is_refused(live_registry, admin, churn, tmp_path):
    file = write(tmp_path / "registry.yaml", {"models": {"churn": {"rollouts": {
        "production": {"version": 1, "sha256": churn[2], "plan": {}}}}}})
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 1 and "models/churn/rollouts/production: version 1 of churn is sha256" in planned.stderr


def test_a_declared_rollout_on_an_alias_needing_approvals_opens_its_request_once_and_waits(live_registry, admin,
                                                                                           tmp_path):
    versions = [admin.upload("guarded", LinearRegression(fit_intercept=bool(n)).fit(ROWS, TARGET),
                             input_example=ROWS[:1]) for n in (0, 1)]
    sha = {version.version: version.sha256 for version in versions}
    admin.promote("guarded", 1)
    admin.set_policy("guarded", "production", {"approvals": 1, "movers": {"tokens": ["autopilot"]}})
    # a plan that halts at its end: approvals move such an alias, never a plan (a promoting plan is refused, as the
    # registry refuses it, with what is missing)
    plan = {"steps": [{"percent": 10.0, "min_requests": 100, "max_minutes": 60.0}], "on_success": "halt"}
    file = write(tmp_path / "registry.yaml", {"models": {"guarded": {
        "aliases": {"production": {"version": 1, "sha256": sha[1]}},
        "rollouts": {"production": {"version": 2, "sha256": sha[2], "plan": plan}}}}})

    applied = run(live_registry, "apply", "-f", str(file), "--commit", COMMIT)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    [request] = admin.approval_requests("guarded", "production", state="open")
    assert (request.version, request.rollout["plan"]["steps"], request.reason) == (2, plan["steps"],
                                                                                  declared_reason(file))
    assert applied.stdout.splitlines()[1:] == [
        f"    approval request {request.id} is open: 0 of 1 approvals; the rollout starts when the last one is given",
        "Applied 0 of 1 changes; 1 waiting for approvals."]
    assert admin.rollout("guarded", "production") is None  # nothing started, nothing refused

    again = run(live_registry, "apply", "-f", str(file))  # the same file again opens no second request
    assert again.returncode == 0 and again.stdout.startswith("waiting: ")
    assert [r.id for r in admin.approval_requests("guarded", "production", state="open")] == [request.id]
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2
    assert planned.stdout.splitlines()[0].endswith(f"(request {request.id} waits for approvals: 0 of 1)")

    approver = RegistryClient(live_registry.url, admin.create_token("guarded-approver", "ci").token)
    assert approver.approve("guarded", "production", request.id).state == "done"
    rollout = admin.rollout("guarded", "production")
    assert (rollout.canary["version"], rollout.plan["steps"]) == (2, plan["steps"])
    assert run(live_registry, "plan", "-f", str(file)).returncode == 0  # running: the file holds
