"""``flask audit …``: check the history's hash chain, and export it as JSON lines to check elsewhere."""
import sys

import click
from flask.cli import AppGroup

from registry.integrity import ledger

group = AppGroup("audit", help="Check the ledger's hash chain, or export it.")


@group.command("verify")
def verify():
    """Walk the history's hash chain; name the first entry that does not hold (exit code 1 when one does not)."""
    verdict = ledger.verify()
    if verdict.ok:
        click.echo(f"ok: {verdict.entries} entries hold; head {verdict.head}")
        return
    broken = verdict.first_broken
    at = f" at {broken.at.isoformat()}" if broken.at is not None else ""
    kind = f" ({broken.kind})" if broken.kind else ""
    click.echo(f"broken: entry {broken.id}{kind}{at} is {broken.problem}: {broken.detail}")
    click.echo(f"{verdict.entries} entries hold before it; the last of them has hash {verdict.head}")
    sys.exit(1)


@group.command("export")
@click.option("--output", "-o", type=click.File("w", encoding="ascii"), default="-", show_default=True,
              help="Where to write the JSON lines ('-': standard output).")
def export(output):
    """Write the whole chain as JSON lines, oldest first: each entry's canonical fields and its hash."""
    for line in ledger.export():
        output.write(line)
