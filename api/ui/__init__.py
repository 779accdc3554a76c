"""The dashboard at ``/ui``: server-rendered pages over the same use cases as the JSON API."""
import secrets
from pathlib import Path

from flask import Flask, Response, redirect, render_template, request, url_for

from api.errors import Problem, render_as_pages
from api.settings import settings_of
from api.ui.blueprint import bp
from api.ui.session import BrowserSessions, may


def init_ui(app: Flask) -> None:
    """Register the dashboard. Its forms are Flask-WTF forms, each checking its own CSRF token."""
    from api.ui import actions, governance, pages, sign_on, version_page  # noqa: F401  (the modules register their views on ``bp``)

    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(settings_of(app).storage.instance_dir)
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.session_interface = BrowserSessions()
    sign_on.init_sign_on(app)  # single sign-on, when OIDC_ISSUER is set
    app.register_blueprint(bp)
    app.add_url_rule("/", "ui.home", lambda: redirect(url_for("ui.models")))  # a browser at the root finds the dashboard
    # Every page names its icon; a browser that asks the root anyway (a JSON answer shown as a page) finds it too.
    app.add_url_rule("/favicon.ico", "ui.favicon", lambda: redirect(url_for("ui.static", filename="favicon.svg"), 301))
    render_as_pages(app, bp.url_prefix, _refused_page)


def _refused_page(refused: Problem) -> Response:
    """An error under /ui as a page with the server's own detail, under the API's status; a promote that
    the alias's policy refuses for want of approvals offers to ask for them."""
    missing = refused.members.get("missing") or []
    page = render_template("ui/refused.html", title=refused.title, status=refused.status, detail=refused.detail,
                           missing=missing, ask=_approval_link(missing), glass=_break_glass_link(missing))
    return Response(page, status=refused.status, headers=refused.response_headers())


def _refused_move() -> tuple[str, str, object] | None:
    """The model, alias and version of the promote just refused (None: the refusal was of something else)."""
    if request.endpoint not in ("ui.promote", "ui.promote_to_alias"):
        return None
    arguments = request.view_args or {}
    alias = arguments.get("alias") or request.form.get("alias")
    return (arguments["name"], alias, arguments.get("number") or request.form.get("version")) if alias else None


# What a request cannot wait out: its approvals would be given in vain, the last one refused too (evidence,
# such as a model card, can come while it waits).
HOPELESS = ("freeze", "movers")


def _approval_link(missing: list[dict]) -> str | None:
    """Where to ask for approval of the promote just refused, when it lacks approvals, and neither a
    freeze nor the policy's movers would refuse the request or its last approval."""
    move = _refused_move()
    rules = {m.get("rule") for m in missing}
    if move is None or "approvals" not in rules or rules & set(HOPELESS):
        return None
    name, alias, version = move
    return url_for("ui.request_open", name=name, alias=alias, version=version)


def _break_glass_link(missing: list[dict]) -> str | None:
    """For an admin whose promote the policy refused: where to move the alias past it, with a reason."""
    move = _refused_move()
    if move is None or not missing or not may("admin"):
        return None
    name, alias, version = move
    return url_for("ui.break_glass", name=name, alias=alias, version=version)


def _instance_secret(instance_dir: Path) -> str:
    """A random key made once and kept beside the database, so restarts keep sessions valid."""
    path = instance_dir / "secret_key"
    if not path.exists():
        instance_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()
