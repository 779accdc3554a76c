"""``flask audit …``: check the history's hash chain, and export it as JSON lines to check elsewhere."""
import sys

import click
from flask.cli import AppGroup

from registry.integrity import ledger
from registry.ledger import timestamp

group = AppGroup("audit", help="Check the ledger's hash chain and the rows it speaks for, or export it.")


@group.command("verify")
def verify():
    """Walk the history's hash chain; name the first entry that does not hold, or every alias, rollout and
    policy row that is not what the chain says (exit code 1 then)."""
    verdict = ledger.verify()
    if verdict.ok:
        click.echo(f"ok: {_held(verdict.entries)}; head {verdict.head}")
        return
    if verdict.state:
        for row in verdict.state:
            click.echo(f"differs: {row.detail}")
        click.echo(f"{_held(verdict.entries)}; head {verdict.head}; the rows above are not what it says")
        sys.exit(1)
    broken = verdict.first_broken
    at = f" at {timestamp(broken.at)}" if broken.at is not None else ""  # as the export and GET /audit/verify
    kind = f" ({broken.kind})" if broken.kind else ""
    click.echo(f"broken: entry {broken.id}{kind}{at} is {broken.problem}: {broken.detail}")
    click.echo(f"{_held(verdict.entries)} before it; the chain holds up to hash {verdict.head}")
    sys.exit(1)


def _held(entries: int) -> str:
    return f"{entries} entry holds" if entries == 1 else f"{entries} entries hold"


@group.command("export")
@click.option("--output", "-o", type=click.File("w", encoding="ascii"), default="-", show_default=True,
              help="Where to write the JSON lines ('-': standard output).")
def export(output):
    """Write the whole chain as JSON lines, oldest first: each entry's canonical fields and its hash."""
    for line in ledger.export():
        output.write(line)
