"""The dashboard's actions: each a confirmation page (GET) and the change itself (POST, CSRF-checked).

They call the same use cases as the JSON API; a refusal shows the server's problem detail. Every
form carries a CSRF token: a POST without a valid one re-renders the confirmation and changes nothing.
"""
from flask import flash, redirect, render_template, request, url_for

from api.services import services
from api.ui import bp
from api.ui.forms import ArchiveForm, PromoteForm, RollbackForm
from api.ui.session import action, signed_in
from registry import aliases, catalog, versions
from registry.names import DEFAULT_ALIAS


@bp.route("/models/<name>/versions/<int:number>/promote", methods=["GET", "POST"])
@action("ci")
def promote(name, number):
    """Confirm, then point an alias at this version."""
    form = PromoteForm(alias=request.args.get("alias") or DEFAULT_ALIAS)
    version = versions.get_version(name, str(number))
    if form.validate_on_submit():
        move = aliases.promote(
            services().server, name, number, form.alias.data, form.reason.data, form.force.data, signed_in().name
        )
        flash(_moved("Promoted", move), "ok")
        return redirect(url_for("ui.model", name=name))
    return _confirm_page(form, f"Promote version {number} of {name}", version=version)


@bp.route("/models/<name>/rollback", methods=["GET", "POST"])
@action("ci")
def rollback(name):
    """Confirm, then undo the alias's latest promote (or jump back to a version)."""
    form = RollbackForm(alias=request.args.get("alias") or DEFAULT_ALIAS)
    model = catalog.get_model(name)
    if form.validate_on_submit():
        move = aliases.rollback(
            services().server, name, form.alias.data, form.to_version.data, form.reason.data, signed_in().name
        )
        flash(_moved("Rolled back", move), "ok")
        return redirect(url_for("ui.model", name=name))
    return _confirm_page(form, f"Roll back an alias of {name}", model=model)


@bp.route("/models/<name>/versions/<int:number>/archive", methods=["GET", "POST"])
@action("admin")
def archive(name, number):
    """Confirm, then archive a version (refused while an alias points at it)."""
    form = ArchiveForm()
    version = versions.get_version(name, str(number))
    if form.validate_on_submit():
        versions.archive_version(services().server, name, number)
        flash(f"Archived version {number} of {name}: {form.reason.data}", "ok")
        return redirect(url_for("ui.model", name=name))
    return _confirm_page(form, f"Archive version {number} of {name}", version=version)


def _confirm_page(form, heading: str, **context):
    status = 400 if form.errors else 200
    return render_template("ui/confirm.html", form=form, heading=heading, **context), status


def _moved(verb: str, move) -> str:
    if move.event_id is None:
        return f"{move.alias!r} already served version {move.version}; nothing changed."
    return f"{verb} {move.alias!r} from version {move.previous_version} to {move.version}."
