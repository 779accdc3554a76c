"""Protected aliases: their policies, approval requests, approvals and rejections, and break-glass moves."""
from flask_smorest import Blueprint

from api import domain
from api.auth import principal, reads, requires
from api.content import accepts
from api.openapi import errors
from api.schemas.aliases import MoveOut, ReasonArgs
from api.schemas.paging import PageArgs, page_of
from api.schemas.policies import (
    ApprovalRequestIn, BreakGlassRequest, PolicyOut, PolicyRequest, ReasonRequest, RejectRequest, RequestArgs, RequestOut,
    policy_document,
)
from registry.aliases import moves
from registry.approvals import requests
from registry.governance import policies

blp = Blueprint("policies", __name__, description="Protected aliases: policies, approvals and break-glass")

ALIAS = "/models/<name>/aliases/<alias>"


@blp.route(f"{ALIAS}/policy", methods=["PUT"])
@requires("admin")
@accepts("application/json")
@blp.arguments(PolicyRequest())
@blp.response(200, PolicyOut)
def set_policy(body, name, alias):
    """Protect the alias with a policy (or replace it); recorded in the history as ``policy_set``."""
    return policies.set_policy(name, alias, policy_document(body), reason=body["reason"], actor=principal().name)


@blp.route(f"{ALIAS}/policy")
@reads
@blp.response(200, PolicyOut)
def get_policy(name, alias):
    """The alias's policy; 404 when it is not protected."""
    return policies.get_policy(name, alias)


@blp.route("/models/<name>/policies")
@reads
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(PolicyOut))
def list_policies(args, name):
    """The policies of the model's aliases, by alias name (only its protected aliases are listed)."""
    return policies.list_policies(name, page=args["page"], per_page=args["per_page"])


@blp.route(f"{ALIAS}/policy", methods=["DELETE"])
@requires("admin")
@blp.arguments(ReasonArgs, location="query")
@blp.response(204)
def delete_policy(args, name, alias):
    """Lift the alias's policy; recorded in the history as ``policy_delete``."""
    policies.delete_policy(name, alias, reason=args["reason"], actor=principal().name)


@blp.route(f"{ALIAS}/requests", methods=["POST"])
@requires("ci")
@errors(409, 410)
@accepts("application/json")
@blp.arguments(ApprovalRequestIn())
@blp.response(201, RequestOut)
def open_request(body, name, alias):
    """Ask for the alias to point at a version (or for a canary of it, with ``rollout``); people other than the
    requester and the uploader approve, and the last approval makes the change."""
    who = principal()
    return requests.open_approval_request(name, alias, number=body["version"], reason=body["reason"], actor=who.name,
                                          role=who.role, groups=who.groups, rollout=body["rollout"], owner=who.person)


@blp.route(f"{ALIAS}/requests")
@reads
@blp.arguments(RequestArgs, location="query")
@blp.response(200, page_of(RequestOut))
def list_requests(args, name, alias):
    """The alias's approval requests, newest first; ``?state=`` filters."""
    return requests.list_requests(name, alias, state=args["state"], page=args["page"], per_page=args["per_page"])


@blp.route(f"{ALIAS}/requests/<int:request_id>")
@reads
@blp.response(200, RequestOut)
def get_request(name, alias, request_id):
    """One request, its approvals, and what its move still lacks."""
    return requests.get_request(name, alias, request_id)


@blp.route(f"{ALIAS}/requests/<int:request_id>/approve", methods=["POST"])
@requires("ci")
@errors(409, 410)
@accepts("application/json", body_optional=True)
@blp.arguments(ReasonRequest(), required=False)
@blp.response(200, RequestOut)
def approve(body, name, alias, request_id):
    """Approve the request; the approval that completes it moves the alias (as a promote)."""
    return requests.approve(domain.runtime(), name, alias=alias, request_id=request_id, reason=body["reason"],
                            actor=principal().name, owner=principal().person)


@blp.route(f"{ALIAS}/requests/<int:request_id>/reject", methods=["POST"])
@requires("ci")
@errors(409)
@accepts("application/json")
@blp.arguments(RejectRequest())
@blp.response(200, RequestOut)
def reject(body, name, alias, request_id):
    """Reject the request, with a reason (its requester may withdraw it so)."""
    return requests.reject(name, alias, request_id=request_id, reason=body["reason"], actor=principal().name,
                           owner=principal().person)


@blp.route(f"{ALIAS}/break-glass", methods=["POST"])
@requires("admin")
@errors(410)
@accepts("application/json")
@blp.arguments(BreakGlassRequest())
@blp.response(200, MoveOut)
def break_glass(body, name, alias):
    """Move the alias past its policy, for an emergency: admin only, with a reason; loud in the history,
    the webhooks and the dashboard."""
    who = principal()
    return moves.break_glass(domain.runtime(), name, number=body["version"], alias=alias, reason=body["reason"],
                             force=body["force"], actor=who.name, role=who.role)
