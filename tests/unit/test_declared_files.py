"""Reading a declared-state file (registry_client.declared.files): what is refused before the registry is asked."""
import json

import pytest

from config import BASE_DIR
from registry_client.declared.files import MAX_FILE_BYTES, DeclaredFileError, parse, schema

SHA = "ab" * 32
GOOD = f"""
models:
  churn:
    description: who leaves
    tags: {{team: growth}}
    aliases:
      production: {{version: 3, sha256: "{SHA}"}}
prune: {{aliases: true}}
""".encode()

# Nine levels of nine lists each, each naming the level before: a few hundred bytes that stand for 9**9 strings.
ALIAS_BOMB = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 9)}]\n".encode() for n in range(8)) + b"models: {}\n"


def refused(content: bytes) -> list[str]:
    with pytest.raises(DeclaredFileError) as caught:
        parse(content, "registry.yaml")
    return caught.value.problems


def test_a_good_file_is_taken_with_the_sha256_of_its_bytes():
    declared = parse(GOOD, "registry.yaml")
    assert declared.document["models"]["churn"]["aliases"] == {"production": {"version": 3, "sha256": SHA}}
    assert len(declared.sha256) == 64 and declared.source == "registry.yaml"
    assert parse(b"", "empty.yaml").document == {}


def test_the_published_schema_is_the_one_the_client_checks_with():
    assert json.loads((BASE_DIR / "docs" / "registry.schema.json").read_text()) == schema()


CARD = b"models:\n  churn:\n    cards: [{version: 2, sha256: \"" + SHA.encode() + b"\",\n"
ROLLOUT = (b"models:\n  churn:\n    rollouts: {production: {version: 2, sha256: \"" + SHA.encode() + b"\"")


@pytest.mark.parametrize(("content", "said"), [
    (GOOD.replace(b"tags:", b"colour: red\n    tags:"), "models/churn: Additional properties are not allowed ('colour'"),
    (b"secrets: {}\n", "the file: Additional properties are not allowed ('secrets'"),
    (GOOD.replace(SHA.encode(), b"AB" * 32), "models/churn/aliases/production/sha256: 'ABAB"),
    (GOOD.replace(b"version: 3", b"version: '3'"), "models/churn/aliases/production/version: '3' is not of type 'integer'"),
    (GOOD.replace(b"production:", b"latest:"), "models/churn/aliases: 'latest' should not be valid"),
    (GOOD.replace(b", sha256: \"" + SHA.encode() + b"\"", b""), "'sha256' is a required property"),
    (b"- a list\n", "the file: ['a list'] is not of type 'object'"),
    (CARD + b"      owner: me}]\n", "models/churn/cards/0: Additional properties are not allowed ('owner'"),
    (b"models:\n  churn:\n    cards: [{version: 2}]\n", "models/churn/cards/0: 'sha256' is a required property"),
    (CARD + b"      limitations: 7}]\n", "models/churn/cards/0/limitations: 7 is not of type 'string'"),
    (ROLLOUT + b"}}\n", "models/churn/rollouts/production: 'plan' is a required property"),
    (ROLLOUT + b", plan: {steps: [{percent: 100}]}}}\n",
     "models/churn/rollouts/production/plan/steps/0/percent: 100 is greater than or equal to the maximum of 100"),
    (ROLLOUT + b", plan: {on_success: walk}}}\n", "models/churn/rollouts/production/plan/on_success: 'walk' is not one of"),
    (ROLLOUT + b", plan: {}, sticky_header: 'X User'}}\n", "models/churn/rollouts/production/sticky_header: 'X User'"),
])
def test_a_file_off_the_schema_is_refused_saying_where(content, said):
    assert any(said in problem for problem in refused(content)), refused(content)


def test_a_yaml_alias_bomb_is_refused_at_its_first_alias():
    assert len(ALIAS_BOMB) < 1000
    assert refused(ALIAS_BOMB) == [
        "not YAML this reader takes: line 1, column 4: YAML anchors and aliases (&name, *name) are not taken here: "
        "write the value out"]


def test_a_key_given_twice_is_refused():
    problems = refused(GOOD + b"models: {}\n")
    assert problems == ["not YAML this reader takes: line 9, column 1: key 'models' is given twice"]


def test_a_file_past_the_cap_is_refused_unread():
    assert refused(b"#" * (MAX_FILE_BYTES + 1)) == [
        f"it is larger than {MAX_FILE_BYTES} bytes; a declared registry is far smaller"]


@pytest.mark.parametrize("content", [b"models: [", b"!!python/object:os.system {}\n", b"a: !custom 1\n",
                                     b"[" * 10_000 + b"]" * 10_000])
def test_what_is_not_plain_yaml_is_refused(content):
    assert refused(content)[0].startswith(("not YAML this reader takes", "it nests too deep"))
