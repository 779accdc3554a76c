"""``flask policy …``: protect an alias, show or lift its policy, and list its approval requests, from a shell
on the server (changes are recorded under ``--actor``, as the API records a token's name)."""
import json

import click
from flask.cli import AppGroup
from marshmallow import ValidationError

from api.commands.tokens import clean_errors
from api.errors import describe_errors
from api.schemas.policies import PolicyOut, PolicyRequest, RequestOut, policy_document
from registry.approvals import requests
from registry.governance import policies

group = AppGroup("policy", help="Protected aliases: policies and approval requests.")
ACTOR = click.option("--actor", default="flask-cli", show_default=True, help="the name the history records")


@group.command("set")
@click.argument("model")
@click.argument("alias")
@click.argument("document", type=click.File("r"))
@click.option("--reason", default="", help="why, kept in the history")
@ACTOR
@clean_errors
def set_(model: str, alias: str, document, reason: str, actor: str):
    """Protect ALIAS of MODEL with the policy in DOCUMENT (a JSON file, or - for stdin), as PUT …/policy takes it;
    print the policy as stored."""
    try:
        body = PolicyRequest().load({**json.load(document), "reason": reason})
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"the policy is not JSON: {exc}") from None
    except ValidationError as exc:
        raise click.ClickException(describe_errors(exc.messages)) from None
    view = policies.set_policy(model, alias, policy_document(body), reason=body["reason"], actor=actor)
    click.echo(json.dumps(PolicyOut().dump(view), indent=2))


@group.command("show")
@click.argument("model")
@click.argument("alias")
@clean_errors
def show(model: str, alias: str):
    """Print the policy of ALIAS of MODEL as JSON (exit 1 when it is not protected)."""
    click.echo(json.dumps(PolicyOut().dump(policies.get_policy(model, alias)), indent=2))


@group.command("delete")
@click.argument("model")
@click.argument("alias")
@click.option("--reason", default="", help="why, kept in the history")
@ACTOR
@clean_errors
def delete(model: str, alias: str, reason: str, actor: str):
    """Lift the policy of ALIAS of MODEL."""
    policies.delete_policy(model, alias, reason=reason, actor=actor)
    click.echo(f"{model}/{alias} is no longer protected")


@group.command("requests")
@click.argument("model")
@click.argument("alias")
@click.option("--state", type=click.Choice(requests.STATES), default=None, help="only requests in this state")
@clean_errors
def list_requests(model: str, alias: str, state: str | None):
    """Print the approval requests of ALIAS of MODEL, newest first, as JSON lines."""
    for view in requests.list_requests(model, alias, state=state, page=1, per_page=500).items:
        click.echo(json.dumps(RequestOut().dump(view)))
