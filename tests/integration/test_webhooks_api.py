"""Webhook subscriptions over HTTP, and the outbox rows the use cases write in their own transaction."""
import base64
import json

import pytest
from sqlalchemy import select

from registry.aliases import moves as aliases
from registry.db import db
from registry.events import outbox
from registry.events.tables import WebhookDelivery, WebhookEvent, WebhookSubscription
from tests.helpers import assert_problem, scaled_sum, upload, upload_ok

PUBLIC_URL = "https://93.184.215.14/hooks/registry"  # a literal public address: no DNS needed


def subscribe(client, admin, url=PUBLIC_URL, events=("*",), **body):
    return client.post("/webhooks", json={"url": url, "events": list(events), **body}, headers=admin)


def subscribed(client, admin, **kw) -> dict:
    response = subscribe(client, admin, **kw)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def outbox_rows(app) -> list[tuple[str, dict, list[int]]]:
    """Every event as ``(type, data, [subscription ids it is queued for])``, oldest first."""
    with app.app_context():
        events = db.session.execute(select(WebhookEvent).order_by(WebhookEvent.id)).scalars().all()
        return [
            (e.type, json.loads(e.body)["data"], sorted(db.session.execute(
                select(WebhookDelivery.subscription_id).where(WebhookDelivery.event_id == e.id)
            ).scalars()))
            for e in events
        ]


def test_subscribing_is_201_with_a_secret_shown_only_then(client, admin):
    response = subscribe(client, admin, events=["alias.moved", "version.created"], description="deploys")

    assert response.status_code == 201
    body = response.get_json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    assert (body["url"], body["events"], body["description"], body["active"]) == (
        PUBLIC_URL, ["alias.moved", "version.created"], "deploys", True,
    )
    assert response.headers["Location"].endswith(f"/webhooks/{body['id']}")
    one = client.get(f"/webhooks/{body['id']}", headers=admin)
    listed = client.get("/webhooks", headers=admin)
    assert one.status_code == 200 and "secret" not in one.get_json()
    assert one.get_json() == {k: v for k, v in body.items() if k != "secret"}
    assert listed.get_json()["total"] == 1
    assert body["secret"] not in one.get_data(as_text=True) + listed.get_data(as_text=True)


def test_every_subscription_gets_its_own_secret(client, admin):
    assert subscribed(client, admin)["secret"] != subscribed(client, admin)["secret"]


@pytest.mark.parametrize("url, fragment", [
    ("ftp://93.184.215.14/x", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("93.184.215.14/hooks", "http:// or https://"),
    ("http:///path-only", "no host"),
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.0.0.7/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[fd00:ec2::254]/hook", "private"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://100.100.100.200/hook", "non-public"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://93.184.215.14:99999/hook", "not valid"),
    ("http://no-such-host.invalid/hook", "does not resolve"),
    # Read as 1.1.1.1 by urllib.parse, as 127.0.0.1:5999 by the parser that sends (urllib3).
    ("http://127.0.0.1:5999\\@1.1.1.1/", "backslash"),
    ("http://93.184.215.14/a\\b", "backslash"),
    ("http://93.184.215.14/a b", "space"),
    ("http://user:secret@93.184.215.14/hook", "user info"),
    ("http://127.0.0.1@93.184.215.14/hook", "user info"),
    ("http://93.184.215.14:0/hook", "port is 0"),
])
def test_urls_that_are_not_public_http_are_422_and_nothing_is_stored(client, admin, url, fragment):
    body = assert_problem(subscribe(client, admin, url=url), 422, fragment)

    assert "url" in body["errors"]
    assert client.get("/webhooks", headers=admin).get_json()["total"] == 0


@pytest.mark.parametrize("events, fragment", [
    (["version.deleted"], "unknown event type(s) 'version.deleted'"),
    (["alias.moved", "nope"], "'nope'"),
    (["ping"], "'ping'"),
    ([], "at least one"),
])
def test_unknown_or_missing_event_types_are_422_and_nothing_is_stored(client, admin, events, fragment):
    body = assert_problem(subscribe(client, admin, events=events), 422, fragment, "alias.moved")

    assert "events" in body["errors"]
    assert client.get("/webhooks", headers=admin).get_json()["total"] == 0


@pytest.mark.parametrize("body", [{}, {"url": PUBLIC_URL}, {"events": ["*"]}, {"url": 5, "events": ["*"]},
                                  {"url": PUBLIC_URL, "events": "*"}, {"url": PUBLIC_URL, "events": ["*"], "secret": "x"}])
def test_incomplete_or_malformed_subscriptions_are_422(client, admin, body):
    assert_problem(client.post("/webhooks", json=body, headers=admin), 422)
    assert client.get("/webhooks", headers=admin).get_json()["total"] == 0


def test_a_secret_given_at_subscription_is_the_one_that_signs(app, client, admin):
    given = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    body = subscribed(client, admin, secret=given)
    assert body["secret"] == given
    with app.app_context():
        assert db.session.get(WebhookSubscription, body["id"]).secret == given


@pytest.mark.parametrize("secret", ["whsec_" + base64.b64encode(b"x" * 23).decode(), "whsec_" + base64.b64encode(b"x" * 65).decode(),
                                    "whsec_not base64!", base64.b64encode(b"x" * 32).decode(), "whsec_"])
def test_a_given_secret_that_is_not_one_is_422_and_nothing_is_stored(client, admin, secret):
    problem = assert_problem(subscribe(client, admin, secret=secret), 422)
    assert "secret" in problem["errors"]
    assert client.get("/webhooks", headers=admin).get_json()["total"] == 0


def test_a_wildcard_among_other_types_subscribes_to_everything_once(client, admin):
    assert subscribed(client, admin, events=["alias.moved", "*", "alias.moved"])["events"] == ["*"]
    assert subscribed(client, admin, events=["alias.moved", "alias.moved"])["events"] == ["alias.moved"]


def test_webhooks_are_for_admins_only(client, admin, ci):
    hook = subscribed(client, admin)
    for method, path in [("get", "/webhooks"), ("post", "/webhooks"), ("get", f"/webhooks/{hook['id']}"),
                         ("patch", f"/webhooks/{hook['id']}"), ("delete", f"/webhooks/{hook['id']}"),
                         ("get", f"/webhooks/{hook['id']}/deliveries"), ("post", f"/webhooks/{hook['id']}/ping")]:
        assert_problem(getattr(client, method)(path, json={}), 401)
        assert_problem(getattr(client, method)(path, json={}, headers=ci), 403, "'admin'")


def test_patch_changes_url_events_active_and_description_and_checks_them_again(client, admin):
    hook = subscribed(client, admin)
    path = f"/webhooks/{hook['id']}"

    changed = client.patch(path, json={"url": "https://93.184.215.15/new", "events": ["version.archived"],
                                       "active": False, "description": "paused"}, headers=admin)

    assert changed.status_code == 200
    assert {k: changed.get_json()[k] for k in ("url", "events", "active", "description")} == {
        "url": "https://93.184.215.15/new", "events": ["version.archived"], "active": False, "description": "paused",
    }
    assert_problem(client.patch(path, json={"url": "http://127.0.0.1/"}, headers=admin), 422, "loopback")
    assert_problem(client.patch(path, json={"events": ["nope"]}, headers=admin), 422, "'nope'")
    assert_problem(client.patch(path, json={"secret": "mine"}, headers=admin), 422)
    assert client.get(path, headers=admin).get_json() == changed.get_json()


def test_deleting_a_subscription_removes_it_and_its_deliveries(app, client, admin, ci):
    hook = subscribed(client, admin)
    upload_ok(client, ci, "m", scaled_sum(1))

    assert client.delete(f"/webhooks/{hook['id']}", headers=admin).status_code == 204

    assert_problem(client.get(f"/webhooks/{hook['id']}", headers=admin), 404, f"id {hook['id']}")
    assert_problem(client.delete(f"/webhooks/{hook['id']}", headers=admin), 404)
    assert_problem(client.get(f"/webhooks/{hook['id']}/deliveries", headers=admin), 404)
    assert outbox_rows(app) == [("version.created", outbox_rows(app)[0][1], [])]


def test_an_upload_queues_version_created_for_each_active_subscription_that_wants_it(app, client, admin, ci):
    everything = subscribed(client, admin)["id"]
    versions_only = subscribed(client, admin, events=["version.created"])["id"]
    subscribed(client, admin, events=["alias.moved"])
    paused = subscribed(client, admin)["id"]
    client.patch(f"/webhooks/{paused}", json={"active": False}, headers=admin)

    number = upload_ok(client, ci, "m", scaled_sum(1), {"metrics": {"r2": 0.5}})

    [(kind, data, queued)] = outbox_rows(app)
    assert (kind, queued) == ("version.created", [everything, versions_only])
    assert data["model"] == "m" and data["version"] == number and data["metrics"] == {"r2": 0.5}
    assert data["created_by"] == "ci-test"


def test_reuploading_the_same_bytes_or_failing_an_upload_records_no_event(app, client, admin, ci):
    subscribed(client, admin)
    upload_ok(client, ci, "m", scaled_sum(1))

    assert upload(client, ci, "m", scaled_sum(1)).status_code == 200
    assert upload(client, ci, "m", scaled_sum(2), {"input_example": [[1.0]]}).status_code == 422

    assert [kind for kind, _, _ in outbox_rows(app)] == ["version.created"]


def test_promote_rollback_and_archive_record_their_events(app, client, admin, ci):
    subscribed(client, admin)
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    client.post("/models/m/versions/1/promote", json={"reason": "first"}, headers=ci)
    client.post("/models/m/versions/2/promote", json={}, headers=ci)
    client.post("/models/m/versions/2/promote", json={}, headers=ci)  # already there: no event
    client.post("/models/m/rollback", json={"reason": "bad"}, headers=admin)
    client.delete("/models/m/versions/2?reason=superseded", headers=admin)

    moved = [data for kind, data, _ in outbox_rows(app) if kind == "alias.moved"]
    assert [(d["action"], d["from_version"], d["to_version"], d["reason"]) for d in moved] == [
        ("promote", None, 1, "first"), ("promote", 1, 2, ""), ("rollback", 2, 1, "bad"),
    ]
    assert moved[2]["actor"] == "admin" and moved[0]["actor"] == "ci-test"
    assert {d["alias"] for d in moved} == {"production"} and not any(d["forced"] for d in moved)
    history = client.get("/models/m/history").get_json()["items"]
    assert [d["history_id"] for d in moved] == [e["id"] for e in reversed(history)]
    archived = [d for k, d, _ in outbox_rows(app) if k == "version.archived"]
    assert [(d["version"], d["actor"], d["reason"]) for d in archived] == [(2, "admin", "superseded")]


def test_rollouts_and_alias_deletes_record_their_events_in_their_transactions(app, client, admin, ci):
    subscribed(client, admin)
    for factor in (1, 2, 3):
        upload_ok(client, ci, "m", scaled_sum(factor))
    client.post("/models/m/versions/1/promote", json={}, headers=ci)
    rollout = "/models/m/aliases/production/rollout"
    assert client.put(rollout, json={"canary": {"version": 2, "percent": 10}, "reason": "try"}, headers=ci).status_code == 200
    assert client.put(rollout, json={"canary": {"version": 2, "percent": 30}}, headers=ci).status_code == 200
    assert client.post(f"{rollout}/promote", json={"reason": "good"}, headers=ci).status_code == 200
    assert client.put(rollout, json={"shadow": {"version": 3, "percent": 50}}, headers=ci).status_code == 200
    assert client.delete(rollout, json={"reason": "enough"}, headers=ci).status_code == 200
    assert client.delete("/models/m/aliases/production?reason=retired", headers=ci).status_code == 200

    kinds = [(kind, data.get("action")) for kind, data, _ in outbox_rows(app) if kind != "version.created"]
    assert kinds == [
        ("alias.moved", "promote"), ("rollout.started", "rollout_start"), ("rollout.changed", "rollout_change"),
        ("rollout.completed", "rollout_promote"), ("alias.moved", "rollout_promote"),
        ("rollout.started", "rollout_start"), ("rollout.aborted", "rollout_abort"), ("alias.moved", "delete"),
    ]
    completed = next(data for kind, data, _ in outbox_rows(app) if kind == "rollout.completed")
    assert completed["canary"] == {"version": 2, "percent": 30} and completed["figures"]["canary"]["version"] == 2
    deleted = [data for kind, data, _ in outbox_rows(app) if kind == "alias.moved"][-1]
    assert (deleted["from_version"], deleted["to_version"], deleted["reason"]) == (2, None, "retired")


def test_a_promote_whose_event_cannot_be_written_does_not_move_the_alias(app, client, admin, ci, monkeypatch):
    subscribed(client, admin)
    upload_ok(client, ci, "m", scaled_sum(1))

    def record_then_fail(event_type, data):
        outbox.record(event_type, data)
        raise RuntimeError("the transaction fails after the event was added")

    monkeypatch.setattr(aliases.outbox, "record", record_then_fail)
    monkeypatch.setattr(app, "testing", False)  # answer the failure rather than raise it into the test
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 500

    assert client.get("/models/m/aliases").get_json() == {}
    assert client.get("/models/m/history").get_json()["total"] == 0
    assert [kind for kind, _, _ in outbox_rows(app)] == ["version.created"]


def test_recording_outside_a_committed_transaction_leaves_nothing(app):
    with app.app_context():
        db.session.add(WebhookSubscription(url=PUBLIC_URL, events=["*"], secret="whsec_x", created_by="t"))
        db.session.commit()
        outbox.record("version.archived", {"model": "m", "version": 1})
        db.session.rollback()
    assert outbox_rows(app) == []


def test_recording_an_unknown_event_type_is_a_programming_error(app):
    with app.app_context(), pytest.raises(ValueError, match="EVENT_TYPES"):
        outbox.record("model.renamed", {})


def test_the_delivery_log_is_paged_newest_first_with_event_and_state(client, admin, ci):
    hook = subscribed(client, admin)
    for factor in (1, 2, 3):
        upload_ok(client, ci, "m", scaled_sum(factor))

    page = client.get(f"/webhooks/{hook['id']}/deliveries", query_string={"per_page": 2}, headers=admin).get_json()

    assert (page["total"], page["page"], page["per_page"], len(page["items"])) == (3, 1, 2, 2)
    first = page["items"][0]
    assert set(first) == {"id", "webhook_id", "event_id", "event_type", "status", "attempts", "last_status_code",
                          "last_error", "next_attempt_at", "delivered_at", "created_at"}
    assert (first["event_type"], first["status"], first["attempts"], first["delivered_at"]) == (
        "version.created", "pending", 0, None)
    assert first["event_id"].startswith("msg_") and first["next_attempt_at"]
    assert page["items"][0]["id"] > page["items"][1]["id"]
    detail = client.get(f"/webhooks/{hook['id']}/deliveries/{first['id']}", headers=admin).get_json()
    assert detail["payload"]["type"] == "version.created" and detail["payload"]["data"]["version"] == 3
    assert detail["attempt_log"] == []


def test_ping_and_redeliver_queue_deliveries_of_one_subscription(app, client, admin, ci):
    hook, other = subscribed(client, admin), subscribed(client, admin)
    upload_ok(client, ci, "m", scaled_sum(1))
    [original] = client.get(f"/webhooks/{hook['id']}/deliveries", headers=admin).get_json()["items"]

    pinged = client.post(f"/webhooks/{hook['id']}/ping", headers=admin)
    again = client.post(f"/webhooks/{hook['id']}/deliveries/{original['id']}/redeliver", headers=admin)

    assert pinged.status_code == 202 and pinged.get_json()["event_type"] == "ping"
    assert again.status_code == 202 and again.get_json()["event_id"] == original["event_id"]
    assert again.get_json()["id"] != original["id"]
    assert client.get(f"/webhooks/{hook['id']}/deliveries", headers=admin).get_json()["total"] == 3
    assert client.get(f"/webhooks/{other['id']}/deliveries", headers=admin).get_json()["total"] == 1


def test_ping_redeliver_and_lookups_of_unknown_or_inactive_subscriptions_are_refused(client, admin, ci):
    hook = subscribed(client, admin)
    other = subscribed(client, admin)
    upload_ok(client, ci, "m", scaled_sum(1))
    [delivery] = client.get(f"/webhooks/{other['id']}/deliveries", headers=admin).get_json()["items"]

    assert_problem(client.post("/webhooks/999/ping", headers=admin), 404, "999")
    assert_problem(client.post(f"/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver", headers=admin), 404)
    assert_problem(client.get(f"/webhooks/{hook['id']}/deliveries/{delivery['id']}", headers=admin), 404)
    client.patch(f"/webhooks/{hook['id']}", json={"active": False}, headers=admin)
    assert_problem(client.post(f"/webhooks/{hook['id']}/ping", headers=admin), 409, "inactive")


def test_the_openapi_document_describes_the_webhook_routes(client):
    document = client.get("/openapi.json").get_json()
    paths, schemas = document["paths"], document["components"]["schemas"]

    for path in ("/webhooks", "/webhooks/{webhook_id}", "/webhooks/{webhook_id}/deliveries",
                 "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", "/webhooks/{webhook_id}/ping"):
        assert path in paths
    assert paths["/webhooks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("WebhookCreatedOut")
    assert "secret" in schemas["WebhookCreatedOut"]["properties"] and "secret" not in schemas["WebhookOut"]["properties"]
    assert "422" in paths["/webhooks"]["post"]["responses"]
