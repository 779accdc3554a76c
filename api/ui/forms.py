"""The dashboard's forms; each carries a CSRF token that Flask-WTF checks on submit."""
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField, FloatField, PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from registry.access.tokens import ROLES
from registry.governance.policy import CARD_FIELDS
from registry.names import ALIAS_NAME, DEFAULT_ALIAS
from registry.reasons import reason_problem, written_problem


def _plain_text(form, field) -> None:
    """The rule of :mod:`registry.reasons` for every reason: no control character but tabs and line breaks."""
    problem = written_problem(field.data)
    if problem is not None:
        raise ValidationError(problem)


REASON = [DataRequired(message="say why: the reason is kept in the history"), Length(max=2_000), _plain_text]


def _visible_reason(form, field) -> None:
    """The rule of :mod:`registry.reasons`, for the forms whose reason stands in for a check (a rejection)."""
    problem = reason_problem(field.data)
    if problem is not None:
        raise ValidationError(problem)


MANDATORY_REASON = [*REASON, _visible_reason]
ALIAS = [DataRequired(), Regexp(ALIAS_NAME.pattern, message="lowercase letters, digits, '_' or '-'")]


class SignInForm(FlaskForm):
    token = PasswordField("API token", validators=[DataRequired(message="paste an API token")])


class SignOutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST so no other site can do it for you."""


class PromoteForm(FlaskForm):
    alias = StringField("Alias", default=DEFAULT_ALIAS, validators=ALIAS)
    reason = TextAreaField("Reason", validators=REASON)
    force = BooleanField("Promote even if the signature differs from what the alias serves")


class PromoteToAliasForm(FlaskForm):
    """Promote a version picked from the model's ready versions to a given alias."""

    version = SelectField("Version", validators=[DataRequired(message="pick a version")])
    reason = TextAreaField("Reason", validators=REASON)
    force = BooleanField("Promote even if the signature differs from what the alias serves")


class RollbackForm(FlaskForm):
    """The alias is picked from the model's aliases; where it goes back to from its own past."""

    alias = SelectField("Alias", validators=[DataRequired()])
    to_version = SelectField("Back to", validators=[Optional()])
    reason = TextAreaField("Reason", validators=REASON)


class ArchiveForm(FlaskForm):
    reason = TextAreaField("Reason", validators=REASON)


class RolloutForm(FlaskForm):
    """Canary and shadow versions are picked from the model's ready versions (empty: none)."""

    canary_version = SelectField("Canary version", validators=[Optional()])
    canary_percent = FloatField("Canary share of traffic (%)", validators=[Optional(), NumberRange(min=0.01, max=100)])
    shadow_version = SelectField("Shadow version", validators=[Optional()])
    shadow_percent = FloatField("Share of traffic mirrored to the shadow (%)",
                                validators=[Optional(), NumberRange(min=0.01, max=100)])
    sticky_header = StringField("Sticky header (keeps each caller on one version)", validators=[Optional(), Length(max=64)])
    reason = TextAreaField("Reason", validators=REASON)
    force = BooleanField("Start even if a signature differs from the primary's")

    def validate(self, extra_validators=None) -> bool:
        """Each of canary and shadow needs both its version and its share, or neither; one at least."""
        valid = super().validate(extra_validators)
        pairs = [(self.canary_version, self.canary_percent), (self.shadow_version, self.shadow_percent)]
        for version, percent in pairs:
            if (not version.data) != (percent.data is None):
                (percent if percent.data is None else version).errors.append("give both the version and its share")
                valid = False
        if all(not version.data and percent.data is None for version, percent in pairs):
            self.canary_version.errors.append("give a canary, a shadow or both")
            valid = False
        return valid


class RolloutEndForm(FlaskForm):
    reason = TextAreaField("Reason", validators=REASON)


class CardForm(FlaskForm):
    """A version's words: what the model card says about it. Tags are ``name=value`` lines."""

    description = TextAreaField("Description", validators=[Length(max=10_000)])
    intended_use = TextAreaField("Intended use", validators=[Length(max=10_000)])
    limitations = TextAreaField("Limitations", validators=[Length(max=10_000)])
    tags = TextAreaField("Tags, one name=value per line", validators=[Length(max=10_000)])

    @staticmethod
    def filled(version) -> dict[str, str]:
        """What the form shows of ``version``: its words, and its tags as the lines it takes back.

        Given as ``data``, not ``obj``: WTForms would take ``obj.tags``, the mapping, over any keyword."""
        return {"description": version.description, "intended_use": version.intended_use,
                "limitations": version.limitations,
                "tags": "\n".join(f"{name}={value}" for name, value in version.tags.items())}

    def validate_tags(self, field) -> None:
        """Every non-empty line is ``name=value`` with a name."""
        for line in filter(None, (line.strip() for line in (field.data or "").splitlines())):
            name, sep, _ = line.partition("=")
            if not sep or not name.strip():
                raise ValidationError(f"{line!r} is not name=value")

    def parsed_tags(self) -> dict[str, str]:
        """The tags as a mapping (a later line wins over an earlier one with the same name)."""
        pairs = (line.split("=", 1) for line in (self.tags.data or "").splitlines() if line.strip())
        return {name.strip(): value.strip() for name, value in pairs}


class CheckboxesField(SelectMultipleField):
    """Several choices, each a checkbox."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class PolicyForm(FlaskForm):
    """An alias's policy, as text the API's own schema and use case check (no second set of rules here).

    Lists are one name a line (or comma-separated); freeze windows one a line: ``FROM UNTIL [reason]``."""

    mover_roles = CheckboxesField("Roles whose tokens (and people) may move it", choices=[SelectChoice(r) for r in ROLES],
                                  validate_choice=False)
    mover_tokens = TextAreaField("Tokens that may move it, one a line (autopilot: the rollout controller)")
    mover_groups = TextAreaField("Single sign-on groups whose people may move it, one a line")
    approvals = StringField("Approvals needed, from distinct people (0: none)", default="0")
    evaluation_dataset = StringField("Evaluation: dataset (name or sha256; empty: no evaluation needed)")
    evaluation_metric = StringField("Evaluation: metric")
    evaluation_margin = StringField("Evaluation: better than the served version by at least", default="0")
    card = CheckboxesField("Model card fields that must be filled", choices=[SelectChoice(f, f.replace("_", " ")) for f in CARD_FIELDS],
                           validate_choice=False)
    compatible_signature = BooleanField("A signature compatible with the served version's")
    rollout = BooleanField("A rollout plan of the version on this alias walked to its end")
    freeze = TextAreaField("Freeze windows, one a line: FROM UNTIL reason (ISO 8601, e.g. "
                           "2026-12-24T00:00:00Z 2026-12-27T00:00:00Z holidays)")
    reason = TextAreaField("Reason", validators=REASON)

    @staticmethod
    def filled(policy: dict | None) -> dict:
        """What the form shows of a stored policy document (empty: a new policy's defaults)."""
        if policy is None:
            return {"mover_roles": ["admin", "ci"]}
        movers, require = policy.get("movers") or {}, policy.get("require") or {}
        evaluation = require.get("evaluation") or {}
        return {
            "mover_roles": movers.get("roles", []), "mover_tokens": "\n".join(movers.get("tokens", [])),
            "mover_groups": "\n".join(movers.get("groups", [])), "approvals": str(policy.get("approvals", 0)),
            "evaluation_dataset": evaluation.get("dataset", ""), "evaluation_metric": evaluation.get("metric", ""),
            "evaluation_margin": "%g" % evaluation.get("margin", 0), "card": require.get("card", []),
            "compatible_signature": require.get("compatible_signature", False), "rollout": require.get("rollout", False),
            "freeze": "\n".join(f"{w['from']} {w['until']} {w.get('reason', '')}".strip() for w in policy.get("freeze", [])),
        }

    def body(self, current: dict | None) -> dict:
        """The form as the body of ``PUT …/policy``: numbers and instants as given, for the API's schema to judge;
        what the form does not show (how long a request stays open, whether the evaluation's metric is higher
        when better) kept from the ``current`` policy."""
        require: dict = {"card": list(self.card.data or []), "compatible_signature": self.compatible_signature.data,
                         "rollout": self.rollout.data}
        if (self.evaluation_dataset.data or "").strip() or (self.evaluation_metric.data or "").strip():
            require["evaluation"] = {"dataset": self.evaluation_dataset.data.strip(),
                                     "metric": self.evaluation_metric.data.strip(),
                                     "margin": _number(self.evaluation_margin.data or "0")}
            kept = ((current or {}).get("require") or {}).get("evaluation") or {}
            if kept.get("higher_is_better") is not None:
                require["evaluation"]["higher_is_better"] = kept["higher_is_better"]
        body = {
            "movers": {"roles": list(self.mover_roles.data or []), "tokens": _names(self.mover_tokens.data),
                       "groups": _names(self.mover_groups.data)},
            "approvals": _number(self.approvals.data or "0"), "require": require,
            "freeze": [_window(line) for line in (self.freeze.data or "").splitlines() if line.strip()],
            "reason": self.reason.data,
        }
        if current and "request_hours" in current:
            body["request_hours"] = current["request_hours"]
        return body


class ApproveForm(FlaskForm):
    reason = TextAreaField("Reason (optional)", validators=[Length(max=2_000)])


class RejectForm(FlaskForm):
    reason = TextAreaField("Why reject it", validators=MANDATORY_REASON)


class RequestApprovalForm(FlaskForm):
    """Ask for an alias to point at a version picked from the model's ready versions."""

    version = SelectField("Version", validators=[DataRequired(message="pick a version")])
    reason = TextAreaField("Reason", validators=REASON)


class BreakGlassForm(FlaskForm):
    """An admin's move of a protected alias past its policy: the version, and the reason, which the history,
    the webhook and the banner show."""

    version = SelectField("Version", validators=[DataRequired(message="pick a version")])
    reason = TextAreaField("Reason (the emergency: kept in the history and shown on the model page)",
                           validators=MANDATORY_REASON)
    force = BooleanField("Move even if the signature differs from what the alias serves")


def _names(text: str | None) -> list[str]:
    """Names given one a line or comma-separated."""
    return [name.strip() for line in (text or "").splitlines() for name in line.split(",") if name.strip()]


def _number(text: str):
    """``text`` as an int or a float when it reads as one, else as given (the schema says what is wrong)."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _window(line: str) -> dict:
    """A freeze window from ``FROM UNTIL [reason]``; a missing part stays missing, for the schema to name."""
    parts = line.split(None, 2)
    window = {"from": parts[0]}
    if len(parts) > 1:
        window["until"] = parts[1]
    window["reason"] = parts[2] if len(parts) > 2 else ""
    return window
