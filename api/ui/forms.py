"""The dashboard's forms; each carries a CSRF token that Flask-WTF checks on submit."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, FloatField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from registry.names import ALIAS_NAME, DEFAULT_ALIAS

REASON = [DataRequired(message="say why: the reason is kept in the history"), Length(max=2_000)]
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
