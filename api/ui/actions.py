"""The dashboard's actions: each a confirmation page (GET) and the change itself (POST, CSRF-checked).

They call the same use cases as the JSON API; a refusal shows the server's problem detail. Every
form carries a CSRF token: a POST without a valid one re-renders the confirmation and changes nothing.
"""
from flask import flash, redirect, render_template, request, url_for

from api import domain
from api.ui.blueprint import bp
from api.ui.forms import ArchiveForm, PromoteForm, PromoteToAliasForm, RollbackForm, RolloutEndForm, RolloutForm
from api.ui.session import action, signed_in
from registry.aliases import moves as aliases
from registry.aliases import rollouts as rollouts
from registry.aliases.rollouts import ArmSpec
from registry.catalog import models as catalog
from registry.catalog import versions
from registry.names import DEFAULT_ALIAS


@bp.route("/models/<name>/versions/<int:number>/promote", methods=["GET", "POST"])
@action("ci")
def promote(name, number):
    """Confirm, then point an alias at this version."""
    form = PromoteForm(alias=request.args.get("alias") or DEFAULT_ALIAS)
    version = versions.get_version(name, str(number))
    if form.validate_on_submit():
        _promote(name, number, form.alias.data, form)
        return redirect(url_for("ui.model", name=name))
    return _confirm_page(form, f"Promote version {number} of {name}", version=version)


@bp.route("/models/<name>/aliases/<alias>/promote", methods=["GET", "POST"])
@action("ci")
def promote_to_alias(name, alias):
    """Confirm, then point the alias at a version picked from the model's ready versions."""
    form = PromoteToAliasForm()
    serving = catalog.get_model(name).aliases.get(alias)
    form.version.choices = [(str(v.number), version_label(v)) for v in ready_versions(name) if v.number != serving]
    if form.validate_on_submit():
        _promote(name, int(form.version.data), alias, form)
        return redirect(url_for("ui.alias", name=name, alias=alias))
    serves = f" (it serves version {serving})" if serving else ""
    return _confirm_page(form, f"Promote a version of {name} to {alias}{serves}")


@bp.route("/models/<name>/rollback", methods=["GET", "POST"])
@action("ci")
def rollback(name):
    """Confirm, then undo the alias's latest promote (or jump back to a version it served before)."""
    model = catalog.get_model(name)
    chosen = request.form.get("alias") or request.args.get("alias") or DEFAULT_ALIAS
    form = RollbackForm(alias=chosen)
    form.alias.choices = list(model.aliases) or [(chosen, chosen)]
    form.to_version.choices = [("", "the version before its latest promote")] + [
        (str(number), f"v{number}") for number in aliases.rollback_targets(name, chosen)]
    if form.validate_on_submit():
        move = aliases.rollback(
            domain.runtime(), name, alias=form.alias.data, to_version=int(form.to_version.data or 0) or None,
            reason=form.reason.data, actor=signed_in().name, role=signed_in().role, groups=signed_in().groups,
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
        versions.archive_version(name, number, actor=signed_in().name, reason=form.reason.data)
        flash(f"Archived version {number} of {name}: {form.reason.data}", "ok")
        return redirect(url_for("ui.model", name=name))
    return _confirm_page(form, f"Archive version {number} of {name}", version=version)


@bp.route("/models/<name>/aliases/<alias>/rollout", methods=["GET", "POST"])
@action("ci")
def rollout_start(name, alias):
    """Confirm, then start (or change) a canary and/or shadow on the alias."""
    form = RolloutForm(**_current_rollout(name, alias))
    version = versions.get_version(name, alias)
    choices = [("", "none")] + [(str(v.number), version_label(v)) for v in ready_versions(name) if v.number != version.number]
    form.canary_version.choices = form.shadow_version.choices = choices
    if form.validate_on_submit():
        rollouts.start_rollout(
            domain.runtime(), name=name, alias=alias,
            canary=_arm(form.canary_version.data, form.canary_percent.data),
            shadow=_arm(form.shadow_version.data, form.shadow_percent.data),
            sticky_header=form.sticky_header.data or None, reason=form.reason.data, force=form.force.data,
            actor=signed_in().name, role=signed_in().role, groups=signed_in().groups,
        )
        flash(f"Rollout on {alias!r} set.", "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias))
    return _confirm_page(form, f"Rollout on {alias} of {name} (serving version {version.number})", version=version)


@bp.route("/models/<name>/aliases/<alias>/rollout/complete", methods=["GET", "POST"])
@action("ci")
def rollout_complete(name, alias):
    """Confirm, then promote the canary to the alias and end the rollout."""
    form = RolloutEndForm()
    if form.validate_on_submit():
        move = rollouts.complete_rollout(domain.runtime(), name=name, alias=alias, reason=form.reason.data,
                                         actor=signed_in().name, role=signed_in().role,
                                         groups=signed_in().groups)
        flash(_moved("Completed the rollout: moved", move), "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias))
    return _confirm_page(form, f"Complete the rollout on {alias} of {name}: promote its canary")


@bp.route("/models/<name>/aliases/<alias>/rollout/abort", methods=["GET", "POST"])
@action("ci")
def rollout_abort(name, alias):
    """Confirm, then send all of the alias's traffic back to its primary version."""
    form = RolloutEndForm()
    if form.validate_on_submit():
        rollouts.abort_rollout(domain.runtime(), name=name, alias=alias, reason=form.reason.data, actor=signed_in().name)
        flash(f"Aborted the rollout on {alias!r}: all traffic goes to its primary version.", "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias))
    return _confirm_page(form, f"Abort the rollout on {alias} of {name}")


# What each plan action does, as the confirm page and the flash say it.
PLAN_ACTIONS = {
    "pause": ("paused", "Pause the plan of {alias} of {name}: traffic stays split, nothing is decided"),
    "resume": ("running", "Resume the plan of {alias} of {name}: its step counts again from now"),
    "advance": (None, "Advance the plan of {alias} of {name} past its step without waiting for its gates"),
}


@bp.route("/models/<name>/aliases/<alias>/rollout/plan/<any(pause, resume, advance):what>", methods=["GET", "POST"])
@action("ci")
def rollout_plan(name, alias, what):
    """Confirm, then pause, resume or advance the rollout's plan (the controller respects it)."""
    form = RolloutEndForm()
    state, heading = PLAN_ACTIONS[what]
    if form.validate_on_submit():
        who, reason = signed_in().name, form.reason.data
        if state is None:
            rollouts.skip_step(domain.runtime(), name=name, alias=alias, actor=who, role=signed_in().role, reason=reason,
                               groups=signed_in().groups)
        else:
            rollouts.set_plan_state(name=name, alias=alias, state=state, actor=who, reason=reason)
        flash(f"The plan of {alias!r}: {what} done.", "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias))
    return _confirm_page(form, heading.format(name=name, alias=alias))


def _promote(name: str, number: int, alias: str, form) -> None:
    """Point ``alias`` at version ``number`` as the signed-in person, for the form's reason, and say what moved."""
    move = aliases.promote(
        domain.runtime(), name, number=number, alias=alias, reason=form.reason.data,
        force=form.force.data, actor=signed_in().name, role=signed_in().role, groups=signed_in().groups,
    )
    flash(_moved("Promoted", move), "ok")


def _arm(version: str | None, percent: float | None) -> ArmSpec | None:
    """A canary or shadow, when the form gave one (the form holds that both fields come together)."""
    return ArmSpec(int(version), float(percent)) if version else None


def ready_versions(name: str) -> list:
    """The versions that may serve, newest first (the 500 newest: a picker longer than that helps no one)."""
    return versions.list_versions(name, sort="-version", include_archived=False, page=1, per_page=500).items


def version_label(version) -> str:
    """How a version reads in a picker: its number, kind, date and first metrics."""
    metrics = ", ".join(f"{key} {value:.4g}" for key, value in sorted(version.metrics.items())[:2])
    return f"v{version.number} · {version.kind} · {version.created_at:%Y-%m-%d}" + (f" · {metrics}" if metrics else "")


def _current_rollout(name: str, alias: str) -> dict:
    """The running rollout's settings, to start the form from (empty when none runs)."""
    current = rollouts.running_rollouts(name).get((name, alias))
    if current is None:
        return {}
    fields = {"sticky_header": current["sticky_header"] or ""}
    for role in ("canary", "shadow"):
        if current[role]:
            fields[f"{role}_version"] = str(current[role]["version"])
            fields[f"{role}_percent"] = current[role]["percent"]
    return fields


def _confirm_page(form, heading: str, **context):
    status = 400 if form.errors else 200
    return render_template("ui/confirm.html", form=form, heading=heading, **context), status


def _moved(verb: str, move) -> str:
    if move.event_id is None:
        return f"{move.alias!r} already served version {move.version}; nothing changed."
    if move.previous_version is None:
        return f"{verb} {move.alias!r} to version {move.version} (the alias is new)."
    return f"{verb} {move.alias!r} from version {move.previous_version} to {move.version}."
