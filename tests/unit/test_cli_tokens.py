"""``flask tokens create|list|revoke``: what an operator types on the server."""
import pytest

from registry.access import tokens


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def flask(runner, *args):
    return runner.invoke(args=["tokens", *args])


def test_create_prints_a_token_that_works_against_the_api(runner, client):
    result = flask(runner, "create", "ci-nightly", "--role", "ci")

    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("mr_") and "\n" not in token
    listed = client.get("/tokens", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 403  # a ci token: valid, but not for token management
    assert client.get("/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_an_admin_token_made_on_the_cli_can_manage_tokens(runner, client):
    token = flask(runner, "create", "ops", "--role", "admin").output.strip()

    response = client.get("/tokens", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert [t["name"] for t in response.get_json()["items"]] == ["ops"]


def test_list_shows_names_roles_and_times_but_never_tokens(runner):
    secrets = [flask(runner, "create", name, "--role", role).output.strip() for name, role in [("b-ci", "ci"), ("a-ops", "admin")]]

    result = flask(runner, "list")

    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["a-ops", "admin"], ["b-ci", "ci"]]
    assert all("last used never" in line for line in lines)
    assert not any(secret in result.output for secret in secrets)


def test_list_with_no_tokens_prints_nothing(runner):
    result = flask(runner, "list")

    assert (result.exit_code, result.output) == (0, "")


def test_revoke_stops_the_token(runner, client):
    token = flask(runner, "create", "ci-nightly", "--role", "ci").output.strip()

    result = flask(runner, "revoke", "ci-nightly")

    assert result.exit_code == 0
    assert result.output.strip() == "revoked ci-nightly"
    assert client.get("/tokens", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with client.application.app_context():
        assert tokens.list_tokens() == []


@pytest.mark.parametrize("args, message", [
    (["create", "ci-nightly", "--role", "ci"], "a token named 'ci-nightly' exists"),
    (["create", "admin", "--role", "admin"], "'admin' is the bootstrap admin token's name"),
    (["create", "bad name", "--role", "ci"], "invalid token name 'bad name'"),
    (["revoke", "nope"], "no token named 'nope'"),
])
def test_a_domain_error_is_one_clean_line_and_a_non_zero_exit(runner, args, message):
    flask(runner, "create", "ci-nightly", "--role", "ci")

    result = flask(runner, *args)

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {message}")
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("args", [
    ["create", "x", "--role", "boss"],
    ["create", "x"],
    ["create"],
    ["revoke"],
])
def test_bad_usage_is_a_usage_error(runner, args):
    result = flask(runner, *args)

    assert result.exit_code == 2
    assert "Usage:" in result.output and "Traceback" not in result.output


def test_nothing_is_created_by_a_refused_command(runner, app):
    flask(runner, "create", "bad name", "--role", "ci")
    flask(runner, "create", "x", "--role", "boss")

    with app.app_context():
        assert tokens.list_tokens() == []
