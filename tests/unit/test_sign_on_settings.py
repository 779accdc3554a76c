"""Single sign-on's settings are checked at start, each wrong one named; a person's groups give a role and
scopes by the configured mapping (its first group they are in), or nothing, which is refused."""
import pytest

from config import SignOn, load
from registry.access.sign_on import Person, SignOnConfigError, check_settings, group_rules, person_of, principal_of
from registry.errors import Forbidden
from registry.governance.policy import Policy

MAPPING = ('{"ml-admins": {"role": "admin"}, '
           '"team-a": {"role": "ci", "scopes": [{"models": ["team-a-*"], "rights": ["read", "promote"]}]}, '
           '"viewers": {"role": "reader"}}')
SETTINGS = {"OIDC_ISSUER": "https://id.example.com", "OIDC_CLIENT_ID": "registry", "OIDC_CLIENT_SECRET": "s",
            "OIDC_SCOPES": "openid email groups", "OIDC_GROUP_CLAIM": "groups", "OIDC_GROUPS": MAPPING}


def sign_on(variables: dict) -> SignOn:
    """The settings' sign_on group of these variables, each as given (a start would default an empty
    OIDC_SCOPES or OIDC_GROUP_CLAIM: the check holds without that)."""
    return SignOn(issuer=variables["OIDC_ISSUER"], client_id=variables["OIDC_CLIENT_ID"],
                  client_secret=variables["OIDC_CLIENT_SECRET"], scopes=variables["OIDC_SCOPES"],
                  group_claim=variables["OIDC_GROUP_CLAIM"], groups=variables["OIDC_GROUPS"],
                  provider_name="single sign-on")


def test_sign_on_is_off_without_an_issuer():
    assert check_settings(sign_on({**SETTINGS, "OIDC_ISSUER": None})) is None


@pytest.mark.parametrize(("changed", "named"), [
    ({"OIDC_CLIENT_ID": None}, "OIDC_CLIENT_ID is not"),
    ({"OIDC_CLIENT_SECRET": ""}, "OIDC_CLIENT_SECRET is not"),
    ({"OIDC_GROUPS": ""}, "OIDC_GROUPS is not"),
    ({"OIDC_ISSUER": "http://id.example.com"}, "https://"),
    ({"OIDC_SCOPES": "email groups"}, "must include openid"),
    ({"OIDC_GROUP_CLAIM": ""}, "OIDC_GROUP_CLAIM"),
    ({"OIDC_GROUPS": "{ml-admins: admin}"}, "not valid JSON"),
    ({"OIDC_GROUPS": "[]"}, "a JSON object"),
    ({"OIDC_GROUPS": '{"ops": {"role": "root"}}'}, "OIDC_GROUPS['ops'] must be"),
    ({"OIDC_GROUPS": '{"ops": {"role": "metrics"}}'}, "OIDC_GROUPS['ops'] must be"),  # a role that only scrapes
    ({"OIDC_GROUPS": '{"ops": "admin"}'}, "OIDC_GROUPS['ops'] must be"),
    ({"OIDC_GROUPS": '{"ops": {"role": "ci", "scope": []}}'}, "OIDC_GROUPS['ops'] must be"),
    ({"OIDC_GROUPS": '{"ops": {"role": "admin", "scopes": [{"models": ["a"], "rights": ["read"]}]}}'},
     "admin token cannot be scoped"),
    ({"OIDC_GROUPS": '{"ops": {"role": "reader", "scopes": [{"models": ["a"], "rights": ["promote"]}]}}'},
     "role 'reader' has no right promote"),
    ({"OIDC_GROUPS": '{"ops": {"role": "ci", "scopes": [{"models": ["a/b"], "rights": ["read"]}]}}'},
     "scopes.0.models"),
])
def test_a_wrong_setting_stops_the_start_naming_it(changed, named):
    with pytest.raises(SignOnConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        check_settings(sign_on({**SETTINGS, **changed}))


def test_an_http_issuer_is_taken_on_the_loopback_only():
    assert check_settings(sign_on({**SETTINGS, "OIDC_ISSUER": "http://127.0.0.1:9000"}))


def test_the_client_secret_may_come_from_a_file(tmp_path):
    (tmp_path / "oidc").write_text("from-the-file\n")
    assert load({"OIDC_CLIENT_SECRET_FILE": str(tmp_path / "oidc")}).sign_on.client_secret == "from-the-file"


def person(*groups, email="alice@example.com"):
    return Person(sub="u-1", email=email, name="Alice", groups=groups)


@pytest.mark.parametrize(("groups", "role", "scoped"), [
    (("ml-admins",), "admin", False),
    (("team-a",), "ci", True),
    (("viewers", "team-a"), "ci", True),  # the mapping's order decides, not the provider's
    (("viewers", "unmapped"), "reader", False),
])
def test_the_first_group_of_the_mapping_a_person_is_in_decides(groups, role, scoped):
    who = principal_of(person(*groups), group_rules(MAPPING))
    assert (who.role, who.scopes is not None, who.groups) == (role, scoped, groups)


def test_a_scoped_group_gives_its_rights_on_its_models_only():
    who = principal_of(person("team-a"), group_rules(MAPPING))
    assert who.has("promote", "team-a-churn") and who.has("read", "team-a-churn")
    assert not who.has("upload", "team-a-churn") and not who.has("read", "housing")


def test_a_person_in_no_mapped_group_is_refused_naming_their_groups():
    with pytest.raises(Forbidden, match="is in sales, support, and this registry gives no role"):
        principal_of(person("sales", "support"), group_rules(MAPPING))
    with pytest.raises(Forbidden, match="is in no group"):
        principal_of(person(), group_rules(MAPPING))


def test_the_actor_is_the_email_or_else_the_subject():
    assert principal_of(person("viewers"), group_rules(MAPPING)).name == "oidc:alice@example.com"
    assert principal_of(person("viewers", email=None), group_rules(MAPPING)).name == "oidc:u-1"


@pytest.mark.parametrize(("claims", "groups"), [
    ({"sub": "u", "groups": ["a", "b"]}, ("a", "b")),
    ({"sub": "u", "groups": "a"}, ("a",)),
    ({"sub": "u"}, ()),
])
def test_the_group_claim_is_read_as_a_list(claims, groups):
    assert person_of(claims, "groups").groups == groups


def test_a_group_claim_that_is_not_names_is_refused():
    with pytest.raises(Forbidden, match="not a list of group names"):
        person_of({"sub": "u", "groups": [{"id": 1}]}, "groups")


@pytest.mark.parametrize(("actor", "role", "groups", "may"), [
    ("oidc:bob@example.com", "ci", ("team-a",), True),
    ("oidc:bob@example.com", "ci", ("team-b",), False),
    ("ci-token", "ci", (), False),
    ("release-bot", "ci", (), True),
    ("oidc:root@example.com", "admin", (), True),
])
def test_a_policy_lets_its_roles_tokens_and_groups_move_the_alias(actor, role, groups, may):
    policy = Policy.of({"movers": {"roles": ["admin"], "tokens": ["release-bot"], "groups": ["team-a"]}})
    assert policy.may_move(actor, role, groups) is may


def test_a_policy_of_groups_alone_is_valid_and_one_of_nobody_is_not():
    assert Policy.of({"movers": {"roles": [], "groups": ["team-a"]}}).document()["movers"]["groups"] == ["team-a"]
    assert "groups" not in Policy.of({}).document()["movers"]  # as stored before groups existed
    with pytest.raises(Exception, match="role, token or group"):
        Policy.of({"movers": {"roles": [], "tokens": [], "groups": []}})
