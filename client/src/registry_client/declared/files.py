"""Reading a declared-state file: bounded in size, plain YAML only, checked against its JSON Schema before
anything is asked of the registry."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import yaml
from jsonschema import Draft202012Validator

MAX_FILE_BYTES = 1 << 20  # a registry of hundreds of models is tens of kB
MAX_ERRORS = 20  # schema errors listed at most


class DeclaredFileError(ValueError):
    """The file cannot be taken: too large, not YAML, YAML this reader refuses, or not of the schema.
    ``problems`` lists each thing to change."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source} is refused: " + "; ".join(problems))
        self.source = source
        self.problems = problems


@dataclass(frozen=True)
class Declared:
    """A checked file: its ``document`` (plain dicts, lists and scalars), where it came from, and the sha256 of
    its bytes (named in every ledger entry an apply of it writes)."""

    document: dict
    source: str
    sha256: str


def schema() -> dict:
    """The file's JSON Schema (published as docs/registry.schema.json)."""
    return json.loads(resources.files(__package__).joinpath("registry.schema.json").read_text("utf-8"))


def read(path: str | Path, stdin: BinaryIO) -> Declared:
    """The file at ``path`` (``-``: ``stdin``) checked: at most MAX_FILE_BYTES, YAML without anchors, aliases,
    tags of its own or repeated keys, and valid against :func:`schema`."""
    source = str(path)
    if source == "-":
        content = stdin.read(MAX_FILE_BYTES + 1)
    else:
        with open(path, "rb") as file:
            content = file.read(MAX_FILE_BYTES + 1)
    return parse(content, source)


def parse(content: bytes, source: str) -> Declared:
    """``content`` checked as :func:`read` checks a file's bytes."""
    if len(content) > MAX_FILE_BYTES:
        raise DeclaredFileError(source, [f"it is larger than {MAX_FILE_BYTES} bytes; a declared registry is far smaller"])
    try:
        document = yaml.load(content, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader that also refuses aliases
    except yaml.YAMLError as exc:
        raise DeclaredFileError(source, [f"not YAML this reader takes: {_yaml_problem(exc)}"]) from None
    except RecursionError:
        raise DeclaredFileError(source, ["it nests too deep"]) from None
    if document is None:
        document = {}
    problems = [_said(error) for error in sorted(_VALIDATOR.iter_errors(document), key=lambda e: list(e.path))]
    if problems:
        raise DeclaredFileError(source, problems[:MAX_ERRORS] + ([f"and {len(problems) - MAX_ERRORS} more"]
                                                                 if len(problems) > MAX_ERRORS else []))
    return Declared(document, source, hashlib.sha256(content).hexdigest())


class _PlainLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases (so no alias bomb: a few lines that name one list a
    billion times) and a key given twice (the second would silently win)."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "YAML anchors and aliases (&name, *name) are not taken here: write the value out",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Instants stay text (the schema says where they go): PyYAML would make an unquoted one a datetime.
_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_VALIDATOR = Draft202012Validator(schema())


def _said(error) -> str:
    where = "/".join(str(part) for part in error.absolute_path) or "the file"
    return f"{where}: {error.message}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where in the file and what, in one line."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    what = " ".join(str(problem or exc).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else what
