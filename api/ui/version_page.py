"""A version's page, which is also its model card: everything the registry knows about it, its words
edited in place, and its file for a signed-in ci or admin token."""
from flask import Response, flash, redirect, render_template, url_for

from api import domain
from api.ui.blueprint import bp
from api.ui.forms import CardForm
from api.ui.session import action, may, page, signed_in
from registry.access.scopes import READ, UPLOAD
from registry.aliases import moves as aliases
from registry.aliases import rollouts as rollouts
from registry.artifacts.safe_pickle import artifact_format
from registry.batch import runs as batch_runs
from registry.catalog import models as catalog
from registry.catalog import versions
from registry.evaluations import scores as evaluations

HISTORY_SCAN = 500  # the newest history events searched for this version's moves
BATCH_RUNS_SHOWN = 20  # the newest batch runs on the card (GET …/batch-runs lists them all)


@bp.route("/models/<name>/versions/<int:number>")
@page
def version(name, number):
    """The version's card: kind, words, file, signature, example, params, lineage, metrics, evaluations,
    batch runs, where it serves, its history, and the actions that apply to it."""
    found = versions.get_version(name, str(number))
    form = CardForm(data=CardForm.filled(found))
    return render_template("ui/version.html", **_card(name, found), form=form, editable=may("ci"))


@bp.route("/models/<name>/versions/<int:number>/card", methods=["POST"])
@action("ci", right=UPLOAD)  # as PATCH of the version asks of a scoped token
def edit_card(name, number):
    """Save the version's description, tags, intended use and limitations (CSRF-checked)."""
    found = versions.get_version(name, str(number))
    form = CardForm()
    if not form.validate_on_submit():
        return render_template("ui/version.html", **_card(name, found), form=form, editable=True), 400
    versions.update_version(name, number, {
        "description": form.description.data, "tags": form.parsed_tags(),
        "intended_use": form.intended_use.data, "limitations": form.limitations.data,
    }, actor=signed_in().name)
    flash(f"Saved the card of version {number}.", "ok")
    return redirect(url_for("ui.version", name=name, number=number))


@bp.route("/models/<name>/versions/<int:number>/artifact")
@action("ci", right=READ)  # as GET …/artifact asks of a scoped token
def download(name, number):
    """The version's file, as ``GET …/artifact`` answers it to a ci or admin token."""
    found, data = versions.read_artifact(domain.store(), name, str(number))
    return Response(data, mimetype="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{name}-v{found.number}.{artifact_format(data)}"',
        "ETag": f'"{found.sha256}"',
    })


def _card(name: str, found) -> dict:
    """What the card shows beside the version itself."""
    serving = [(alias, settings) for (_, alias), settings in rollouts.running_rollouts(name).items()
               if found.number in {(settings.get(arm) or {}).get("version") for arm in ("canary", "shadow")}]
    moves = [event for event in aliases.history(name, alias=None, page=1, per_page=HISTORY_SCAN).items
             if found.number in (event.from_version, event.to_version)]
    return {
        "model": catalog.get_model(name), "version": found, "rollouts": serving, "moves": moves,
        "evaluations": evaluations.version_evaluations(name, str(found.number), page=1, per_page=500).items,
        "batch_runs": batch_runs.version_batch_runs(name, str(found.number), page=1, per_page=BATCH_RUNS_SHOWN),
    }
