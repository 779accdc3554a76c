"""``model-registry-client`` (also ``python -m registry_client``): the registry as declared state.

``plan -f FILE`` prints what ``apply -f FILE`` would change and exits 0 (nothing), 2 (something) or 1 (an
error); ``apply`` exits 0 when the registry matches the file or waits only for approvals, 1 when the file is
refused or a change failed; ``export`` writes the live registry as such a file. The registry is
``$REGISTRY_URL`` with the token ``$REGISTRY_TOKEN`` (docs/declared-state.md).
"""
from __future__ import annotations

import argparse
import os
import sys

from registry_client.client import RegistryClient
from registry_client.errors import RegistryError

try:  # the client's "declared" extra (PyYAML, jsonschema): the library itself needs only requests
    import yaml

    from registry_client.declared import apply as applying
    from registry_client.declared.changes import PlanRefused, summary
    from registry_client.declared.files import DeclaredFileError, read
    from registry_client.declared.state import export, plan
except ModuleNotFoundError as missing:
    WITHOUT = missing.name
else:
    WITHOUT = None

NO_CHANGES, ERROR, CHANGES = 0, 1, 2
COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA")  # what GitHub Actions and GitLab CI name the commit


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status."""
    args = _parser().parse_args(argv)
    if WITHOUT:
        print(f"error: {WITHOUT} is not installed: plan, apply and export need the client's declared extra "
              "(pip install 'model-registry-client[declared]')", file=sys.stderr)
        return ERROR
    client = RegistryClient(args.url)
    try:
        return args.command(client, args)
    except (DeclaredFileError, PlanRefused) as exc:
        print(f"error: {exc.args[0].split(':', 1)[0]}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return ERROR
    except (RegistryError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR


def _plan(client: RegistryClient, args) -> int:
    changes = plan(client, read(args.file, sys.stdin.buffer))
    for change in changes:
        print(change.line())
    print(summary(changes))
    return CHANGES if changes else NO_CHANGES


def _apply(client: RegistryClient, args) -> int:
    declared = read(args.file, sys.stdin.buffer)
    reason = applying.reason_of(declared, args.commit or _commit_of_ci())
    changes = plan(client, declared)
    outcomes = applying.apply(client, changes, reason)
    for outcome in outcomes:
        print(outcome.line())
    left = changes[len(outcomes):]
    if outcomes and outcomes[-1].state == "refused":
        print(f"Stopped: {len(outcomes) - 1} of {len(changes)} changes applied; not applied:" if left else
              f"Stopped: {len(outcomes) - 1} of {len(changes)} changes applied.")
        for change in left:
            print(f"  {change.line()}")
        return ERROR
    waiting = sum(outcome.state == "waiting" for outcome in outcomes)
    if not changes:
        print("No changes: the registry matches the file.")
    else:
        print(f"Applied {len(changes) - waiting} of {len(changes)} changes"
              + (f"; {waiting} waiting for approvals." if waiting else "."))
    return NO_CHANGES


def _export(client: RegistryClient, args) -> int:
    sys.stdout.write(yaml.safe_dump(export(client), sort_keys=False, allow_unicode=True, width=120))
    return NO_CHANGES


def _commit_of_ci() -> str | None:
    return next((os.environ[name] for name in COMMIT_VARIABLES if os.environ.get(name)), None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-registry-client", description="The registry as declared state: plan, apply "
                                     "and export registry.yaml (docs/declared-state.md).")
    parser.add_argument("--url", help="the registry (default: $REGISTRY_URL, else http://127.0.0.1:8000); "
                                      "the token is $REGISTRY_TOKEN")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for name, command, summary_line in (("plan", _plan, "print what apply would change (exit 0: nothing, 2: "
                                                        "something, 1: an error)"),
                                        ("apply", _apply, "make the registry match the file")):
        sub = commands.add_parser(name, help=summary_line, description=summary_line)
        sub.add_argument("-f", "--file", required=True, help="the declared state (registry.yaml; - for stdin)")
        if name == "apply":
            sub.add_argument("--commit", help="the git commit the file is at, named in the history "
                                              f"(default: ${' or $'.join(COMMIT_VARIABLES)})")
        sub.set_defaults(command=command)
    export = commands.add_parser("export", help="write the live registry as a declared-state file on stdout")
    export.set_defaults(command=_export)
    return parser
