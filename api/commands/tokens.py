"""``flask tokens …``: create, list and revoke API tokens from a shell on the server."""
from collections.abc import Callable
from functools import wraps

import click
from flask.cli import AppGroup

from registry.access import tokens
from registry.errors import RegistryError

# AppGroup runs every command inside the app context, where the database is bound.
group = AppGroup("tokens", help="Create, list and revoke API tokens.")


def clean_errors(command: Callable) -> Callable:
    """Report a domain error as one ``Error: …`` line and exit 1, rather than a traceback."""

    @wraps(command)
    def wrapped(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RegistryError as exc:
            raise click.ClickException(exc.detail) from None

    return wrapped


@group.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(tokens.ROLES), required=True, help="admin, ci, reader, feedback, analyst (reader who may read logged inputs) or metrics (scrapes /metrics only)")
@click.option("--scope", "scopes", multiple=True, metavar="MODELS:RIGHTS",
              help="act on these models only, with these of the role's rights: 'team-a-*,churn:read,predict,promote' "
                   "(repeatable; without it, the role's rights on every model)")
@click.option("--owner", default=None, help="the person the token belongs to (default: its name); approvals count owners")
@clean_errors
def create(name: str, role: str, scopes: tuple[str, ...], owner: str | None):
    """Create a token and print it; it is shown only this once."""
    _, token = tokens.create_token(name, role, [_grant(scope) for scope in scopes] if scopes else None, owner=owner)
    click.echo(token)


def _grant(scope: str) -> dict:
    """``MODELS:RIGHTS`` (each a comma-separated list) as a grant."""
    models, separator, rights = scope.partition(":")
    if not separator:
        raise click.BadParameter(f"{scope!r} is not MODELS:RIGHTS, e.g. 'team-a-*:read,predict'", param_hint="--scope")
    return {"models": [m.strip() for m in models.split(",") if m.strip()],
            "rights": [r.strip() for r in rights.split(",") if r.strip()]}


@group.command("list")
@clean_errors
def list_():
    """List token names, roles, owners and when they were created and last used."""
    for row in tokens.list_tokens():
        last = row.last_used_at.isoformat() if row.last_used_at else "never"
        scoped = "" if row.scopes is None else "\tscopes " + "; ".join(
            f"{','.join(grant['models'])}:{','.join(grant['rights'])}" for grant in row.scopes)
        click.echo(f"{row.name}\t{row.role}\towner {row.owner}\tcreated {row.created_at.isoformat()}\tlast used {last}"
                   f"{scoped}")


@group.command("revoke")
@click.argument("name")
@clean_errors
def revoke(name: str):
    """Revoke a token; it stops working at once."""
    tokens.revoke_token(name)
    click.echo(f"revoked {name}")
