"""The dashboard's governance actions: edit or remove an alias's policy, ask for an approval, approve or reject one.

Each goes through the same schema and use case as its JSON route; a refusal (a bad value, the requester
approving their own request, a move the policy still refuses) re-shows the form with the server's own
message under the API's status, and changes nothing.
"""
from flask import flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from api import domain
from api.errors import describe, describe_errors
from api.schemas.policies import PolicyRequest, policy_document
from api.ui.blueprint import bp
from api.ui.actions import ready_versions, version_label
from api.ui.forms import ApproveForm, BreakGlassForm, PolicyForm, RejectForm, RequestApprovalForm, RolloutEndForm
from api.ui.session import action, signed_in
from registry.access.scopes import APPROVE
from registry.aliases import moves
from registry.approvals import requests
from registry.catalog import models as catalog
from registry.errors import Conflict, Forbidden, InvalidInput, PolicyNotFound, RegistryError
from registry.governance import policies

# Where a schema message about a part of the policy's body shows on the form.
FIELD_OF = {"movers": "mover_roles", "approvals": "approvals", "freeze": "freeze", "reason": "reason",
            "require": "evaluation_dataset"}


@bp.route("/models/<name>/aliases/<alias>/policy", methods=["GET", "POST"])
@action("admin")
def policy_edit(name, alias):
    """Confirm, then protect the alias with the policy the form describes (or replace its policy), as ``PUT …/policy``."""
    current = _policy(name, alias)
    form = PolicyForm(data=PolicyForm.filled(current)) if request.method == "GET" else PolicyForm()
    heading = f"Edit the policy of {alias} of {name}" if current else f"Protect {alias} of {name} with a policy"
    if form.validate_on_submit():
        try:
            body = PolicyRequest().load(form.body(current))
            policies.set_policy(name, alias, policy_document(body), reason=body["reason"], actor=signed_in().name)
        except ValidationError as exc:
            return _refused(form, heading, 422, describe_errors(exc.messages), exc.messages)
        except InvalidInput as exc:
            return _refused(form, heading, describe(exc).status, exc.detail, exc.errors)
        flash(f"The policy of {alias!r} is set.", "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias))
    return _page(form, heading)


@bp.route("/models/<name>/aliases/<alias>/policy/remove", methods=["GET", "POST"])
@action("admin")
def policy_remove(name, alias):
    """Confirm, then lift the alias's policy, as ``DELETE …/policy``."""
    form = RolloutEndForm()
    if form.validate_on_submit():
        policies.delete_policy(name, alias, reason=form.reason.data, actor=signed_in().name)
        flash(f"The policy of {alias!r} is lifted: it moves as any alias again.", "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias))
    return _page(form, f"Remove the policy of {alias} of {name}")


@bp.route("/models/<name>/aliases/<alias>/requests/new", methods=["GET", "POST"])
@action("ci")
def request_open(name, alias):
    """Confirm, then ask for the alias to point at a version, as ``POST …/requests``."""
    form = RequestApprovalForm(version=request.args.get("version"))
    serving = catalog.get_model(name).aliases.get(alias)
    form.version.choices = [(str(v.number), version_label(v)) for v in ready_versions(name) if v.number != serving]
    heading = f"Ask for approval to move {alias} of {name}" + (f" (it serves version {serving})" if serving else "")
    if form.validate_on_submit():
        who = signed_in()
        try:
            opened = requests.open_approval_request(name, alias, number=int(form.version.data),
                                                    reason=form.reason.data, actor=who.name, owner=who.person,
                                                    role=who.role, groups=who.groups)
        except (Conflict, Forbidden) as exc:
            return _refused(form, heading, describe(exc).status, exc.detail, None, exc)
        needed = opened.approvals_needed
        flash(f"Opened request #{opened.id} for version {opened.version}: it needs {needed} "
              f"approval{'s' if needed != 1 else ''} from other people.", "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias, _anchor="policy"))
    return _page(form, heading)


@bp.route("/models/<name>/aliases/<alias>/requests/<int:request_id>/approve", methods=["GET", "POST"])
@action("ci", right=APPROVE)
def request_approve(name, alias, request_id):
    """Confirm, then approve the request, as ``POST …/approve``; the approval that completes it moves the alias."""
    form = ApproveForm()
    asked = requests.get_request(name, alias, request_id)
    heading = f"Approve request #{request_id}: {alias} of {name} to version {asked.version}"
    if form.validate_on_submit():
        try:
            done = requests.approve(domain.runtime(), name, alias=alias, request_id=request_id,
                                    reason=form.reason.data or "", actor=signed_in().name, owner=signed_in().person)
        except (Conflict, Forbidden) as exc:
            return _refused(form, heading, describe(exc).status, exc.detail, None, exc)
        if done.state == "done":
            flash(f"Approved request #{request_id}: {alias!r} moved to version {done.version}.", "ok")
        else:
            flash(f"Approved request #{request_id}: {len(done.approvals)} of {done.approvals_needed} approvals.", "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias, _anchor="policy"))
    return _page(form, heading, asked=asked)


@bp.route("/models/<name>/aliases/<alias>/requests/<int:request_id>/reject", methods=["GET", "POST"])
@action("ci", right=APPROVE)
def request_reject(name, alias, request_id):
    """Confirm, then reject the request with a reason, as ``POST …/reject`` (its requester may withdraw it so)."""
    form = RejectForm()
    asked = requests.get_request(name, alias, request_id)
    heading = f"Reject request #{request_id}: {alias} of {name} to version {asked.version}"
    if form.validate_on_submit():
        try:
            requests.reject(name, alias, request_id=request_id, reason=form.reason.data, actor=signed_in().name,
                            owner=signed_in().person)
        except (Conflict, Forbidden, InvalidInput) as exc:
            return _refused(form, heading, describe(exc).status, exc.detail, None, exc)
        flash(f"Rejected request #{request_id}: {form.reason.data}", "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias, _anchor="policy"))
    return _page(form, heading, asked=asked)


@bp.route("/models/<name>/aliases/<alias>/break-glass", methods=["GET", "POST"])
@action("admin")
def break_glass(name, alias):
    """Confirm, then move the alias past its policy (its movers, freezes, evidence and approvals), as
    ``POST …/break-glass``: an admin's, with the emergency as reason; loud in the history, the webhooks and
    a banner on the model page until the alias moves again."""
    form = BreakGlassForm(version=request.args.get("version"))
    serving = catalog.get_model(name).aliases.get(alias)
    form.version.choices = [(str(v.number), version_label(v)) for v in ready_versions(name) if v.number != serving]
    heading = f"Break the glass: move {alias} of {name} past its policy" + (f" (it serves version {serving})" if serving else "")
    if form.validate_on_submit():
        try:
            move = moves.break_glass(domain.runtime(), name, number=int(form.version.data), alias=alias,
                                     reason=form.reason.data, force=form.force.data, actor=signed_in().name,
                                     role=signed_in().role)
        except (Forbidden, InvalidInput) as exc:
            return _refused(form, heading, describe(exc).status, exc.detail, None, exc)
        flash(f"Broke the glass: {alias!r} moved to version {move.version}; the model page says so until it moves "
              "again.", "ok")
        return redirect(url_for("ui.alias", name=name, alias=alias))
    return _page(form, heading, glass=True)


def _policy(name: str, alias: str) -> dict | None:
    try:
        return policies.get_policy(name, alias).policy
    except PolicyNotFound:
        return None


def _page(form, heading: str, status: int | None = None, **context):
    return render_template("ui/confirm.html", form=form, heading=heading, **context), status or (400 if form.errors else 200)


def _refused(form, heading: str, status: int, detail: str, errors: dict | None, exc: RegistryError | None = None):
    """The form again, with the server's message (and, on the fields it names, theirs); nothing was changed."""
    for key, messages in (errors or {}).items():
        target = getattr(form, FIELD_OF.get(key, ""), None)
        if target is not None:
            target.errors = list(target.errors) + [describe_errors({key: messages})]
    missing = getattr(exc, "missing", None)
    return _page(form, heading, status, problem=detail, missing=missing)
