"""Single sign-on: what a person signed in through the OpenID provider may do, from their groups.

The deployment maps the provider's groups to roles and scopes (``OIDC_GROUPS``, JSON, in order)::

    {"ml-admins": {"role": "admin"},
     "team-a": {"role": "ci", "scopes": [{"models": ["team-a-*"], "rights": ["read", "promote"]}]}}

The first group of the mapping that the person is in decides their role and scopes (list the most
powerful first); a person in none of them is refused. Their groups themselves also count where an
alias's policy names groups among its movers.
"""
import json
from dataclasses import dataclass

from registry.access import scopes as scoping
from registry.access.scopes import Grant
from registry.access.tokens import METRICS, ROLES, Principal
from registry.errors import Forbidden, InvalidInput

PREFIX = "oidc:"  # a signed-in person's actor name is "oidc:<email or sub>"; no token's name holds a ':'
MAX_ACTOR = 128  # the history's actor column


class SignOnConfigError(ValueError):
    """OIDC_* settings that cannot work: the service refuses to start, naming the setting."""


@dataclass(frozen=True)
class GroupRule:
    """What membership of one group gives: a role, and for a scoped rule the models it acts on."""

    group: str
    role: str
    scopes: tuple[Grant, ...] | None


@dataclass(frozen=True)
class Person:
    """Who signed in, as the provider says: its subject, email and name, and its groups."""

    sub: str
    email: str | None
    name: str | None
    groups: tuple[str, ...]

    @property
    def actor(self) -> str:
        """The name the history records this person's actions under."""
        return (PREFIX + (self.email or self.sub))[:MAX_ACTOR]


def group_rules(raw: str) -> tuple[GroupRule, ...]:
    """The checked mapping of ``OIDC_GROUPS``; SignOnConfigError naming what is wrong."""
    try:
        mapping = json.loads(raw)
    except ValueError as exc:
        raise SignOnConfigError(f"OIDC_GROUPS is not valid JSON: {exc}") from None
    if not isinstance(mapping, dict) or not mapping:
        raise SignOnConfigError('OIDC_GROUPS must be a JSON object of one group or more, e.g. '
                                '{"ml-admins": {"role": "admin"}}')
    rules = []
    roles = [role for role in ROLES if role != METRICS]  # a person reads pages; a metrics token only scrapes
    for group, rule in mapping.items():
        if not isinstance(rule, dict) or set(rule) - {"role", "scopes"} or rule.get("role") not in roles:
            raise SignOnConfigError(f"OIDC_GROUPS[{group!r}] must be {{\"role\": one of {', '.join(roles)}}} "
                                    "with optional \"scopes\" (a list of {\"models\": [...], \"rights\": [...]})")
        try:
            grants = scoping.checked_scopes(rule["role"], rule.get("scopes"))
        except InvalidInput as exc:
            raise SignOnConfigError(f"OIDC_GROUPS[{group!r}]: {exc.detail}") from None
        rules.append(GroupRule(group, rule["role"], grants))
    return tuple(rules)


def check_settings(sign_on) -> tuple[GroupRule, ...] | None:
    """The group rules when sign-on is configured (None when OIDC_ISSUER is unset); SignOnConfigError when
    a setting it needs is missing or wrong. ``sign_on``: the settings' sign_on group (config.SignOn)."""
    if not sign_on.issuer:
        return None
    needed = {"OIDC_CLIENT_ID": sign_on.client_id, "OIDC_CLIENT_SECRET": sign_on.client_secret,
              "OIDC_GROUPS": sign_on.groups}
    for name, value in needed.items():
        if not value:
            raise SignOnConfigError(f"OIDC_ISSUER is set but {name} is not: set it (or unset OIDC_ISSUER)")
    if not sign_on.issuer.startswith(("https://", "http://localhost", "http://127.")):
        raise SignOnConfigError("OIDC_ISSUER must be an https:// URL (http only on this machine's loopback)")
    if "openid" not in sign_on.scopes.split():
        raise SignOnConfigError("OIDC_SCOPES must include openid")
    if not sign_on.group_claim:
        raise SignOnConfigError("OIDC_GROUP_CLAIM must name the claim that holds a person's groups")
    return group_rules(sign_on.groups)


def person_of(claims: dict, group_claim: str) -> Person:
    """The person the provider's claims (the ID token's, with the userinfo's) describe."""
    groups = claims.get(group_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise Forbidden(f"the provider's {group_claim!r} claim is not a list of group names")
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    return Person(str(claims["sub"]), email, name, tuple(groups))


def principal_of(person: Person, rules: tuple[GroupRule, ...]) -> Principal:
    """What ``person`` may do: the first rule of a group they are in; Forbidden when none is theirs."""
    rule = next((rule for rule in rules if rule.group in person.groups), None)
    if rule is None:
        held = ", ".join(person.groups) or "no group"
        raise Forbidden(f"{person.email or person.sub} is in {held}, and this registry gives no role to "
                        f"any of them: ask an admin to map one of your groups (OIDC_GROUPS)")
    return Principal(person.actor, rule.role, rule.scopes, person.groups)
