"""The rules for model names, alias names and version references."""
import re

from registry.errors import InvalidInput, VersionNotFound

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LATEST = "latest"
DEFAULT_ALIAS = "production"
MAX_ID = 2**31 - 1  # the largest number every database integer column holds (PostgreSQL integer): no id or version is above it
MAX_ROW_ID = 2**63 - 1  # the largest id of a table whose ids are 64-bit (the prediction log's ROW_ID)


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise InvalidInput saying the rule."""
    if not MODEL_NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid model name {name!r}: use 1-128 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_alias_name(alias: str) -> str:
    """Return ``alias`` if it can be set, else raise InvalidInput; ``latest`` is computed, not set."""
    if alias == LATEST:
        raise InvalidInput("'latest' is computed (the highest non-archived version) and cannot be set")
    if not ALIAS_NAME.fullmatch(alias):
        raise InvalidInput(
            f"invalid alias {alias!r}: use 1-64 lowercase letters, digits, '_' or '-', starting with a letter"
        )
    return alias


def check_token_name(name: str) -> str:
    """Return ``name`` if it is a valid token name, else raise InvalidInput saying the rule."""
    if not TOKEN_NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid token name {name!r}: use 1-128 ASCII letters, digits, '.', '_' or '-'"
        )
    return name


def parse_ref(ref: str) -> int | str:
    """A path reference as a version number (int) or an alias name (str).

    An unparseable reference cannot name anything, so it is a 404 rather than a 422.
    """
    if ref.isascii() and ref.isdigit():
        number = int(ref)
        if number < 1:
            raise VersionNotFound(f"version {ref} does not exist: versions start at 1")
        if number > MAX_ID:
            raise VersionNotFound(f"version {ref} does not exist: no version is above {MAX_ID}")
        return number
    if ref == LATEST or ALIAS_NAME.fullmatch(ref):
        return ref
    raise VersionNotFound(f"{ref!r} is neither a version number nor a valid alias name")
