"""``flask policy …``: protect an alias from a shell, read and lift its policy, list its requests."""
import json

import pytest

from tests.helpers import scaled_sum, upload_ok


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def served(client, ci):
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


def test_set_show_and_delete_a_policy_from_the_shell(runner, client, ci, admin, served, tmp_path):
    document = tmp_path / "policy.json"
    document.write_text(json.dumps({"approvals": 1, "movers": {"roles": ["ci"]},
                                    "freeze": [{"from": "2030-12-24T00:00:00Z", "until": "2030-12-27T00:00:00Z"}]}))
    result = runner.invoke(args=["policy", "set", "m", "production", str(document), "--reason", "release rules",
                                 "--actor", "ops"])
    assert result.exit_code == 0, result.output
    stored = json.loads(result.stdout)
    assert (stored["alias"], stored["updated_by"], stored["policy"]["approvals"]) == ("production", "ops", 1)
    assert stored["policy"]["freeze"][0]["from"] == "2030-12-24T00:00:00Z"

    shown = runner.invoke(args=["policy", "show", "m", "production"])
    assert json.loads(shown.stdout)["policy"] == stored["policy"]
    assert client.get("/models/m/aliases/production/policy").get_json()["policy"] == stored["policy"]
    entry = client.get("/models/m/history").get_json()["items"][0]
    assert (entry["action"], entry["actor"], entry["reason"]) == ("policy_set", "ops", "release rules")

    opened = client.post("/models/m/aliases/production/requests", json={"version": 2}, headers=ci)
    assert opened.status_code == 201, opened.get_json()
    listed = runner.invoke(args=["policy", "requests", "m", "production", "--state", "open"])
    [line] = listed.stdout.splitlines()
    assert json.loads(line)["id"] == opened.get_json()["id"] and json.loads(line)["state"] == "open"

    assert runner.invoke(args=["policy", "delete", "m", "production", "--reason", "done"]).exit_code == 0
    gone = runner.invoke(args=["policy", "show", "m", "production"])
    assert gone.exit_code == 1 and "not protected" in gone.output


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    ('{"approvals": -1}', "approvals"),
    ('{"movers": {"roles": [], "tokens": []}}', "nobody could move"),
])
def test_a_policy_the_shell_cannot_use_exits_1_saying_why(runner, served, tmp_path, content, message):
    document = tmp_path / "policy.json"
    document.write_text(content)
    result = runner.invoke(args=["policy", "set", "m", "production", str(document)])
    assert result.exit_code == 1 and message in result.output


def test_an_unknown_model_is_one_line_not_a_traceback(runner, tmp_path):
    document = tmp_path / "policy.json"
    document.write_text("{}")
    result = runner.invoke(args=["policy", "set", "nope", "production", str(document)])
    assert result.exit_code == 1 and "does not exist" in result.output and "Traceback" not in result.output
