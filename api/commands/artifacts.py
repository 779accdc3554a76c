"""``flask artifacts …``: collect what crashes left in the artifact store, verify what is stored, scrub
the served artifacts' copies, and copy a local store to S3."""
import sys
from collections.abc import Iterable, Iterator

import click
from flask import current_app
from flask.cli import AppGroup
from tqdm import tqdm

from api import background, domain
from registry.artifacts.gc import collect_garbage
from registry.artifacts.local_store import LocalStore
from registry.artifacts.migrate import migrate_store
from registry.artifacts.store import key_for
from registry.artifacts.verify import verify_artifacts
from registry.errors import RegistryError
from registry.integrity.scrub import scrub as scrub_now

group = AppGroup("artifacts", help="Collect leftovers in the artifact store, verify stored files, copy a store to S3.")

MB = 1024 * 1024


def _bar(desc: str):
    """A progress bar on a terminal's stderr; silent when stderr is not a TTY (cron, CI, pipes)."""
    def progress(items: Iterable, total: int) -> Iterator:
        yield from tqdm(items, total=total, desc=desc, unit="file", file=sys.stderr, disable=None, leave=False)

    return progress


@group.command("gc")
@click.option("--grace-minutes", type=click.FloatRange(min=0), default=60, show_default=True,
              help="Leave files younger than this: an upload may be writing them right now.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
def gc(grace_minutes: float, dry_run: bool):
    """Remove stored files no version references and unfinished uploads, older than the grace period."""
    store = domain.store()
    try:
        collected = collect_garbage(store, grace_seconds=grace_minutes * 60, dry_run=dry_run, progress=_bar("gc"))
    except RegistryError as exc:  # e.g. a read-only store: one line, not a traceback
        raise click.ClickException(exc.detail) from None
    verb = "would remove" if dry_run else "removed"
    for found in collected.removed:
        if found.misplaced:
            what = "misplaced file"
        else:
            what = f"unreferenced artifact {found.sha256}" if found.sha256 else "unfinished upload"
        click.echo(f"{verb} {what}: {found.key} ({found.size / MB:.1f} MB)")
    for found in collected.kept_misplaced:
        click.echo(f"kept misplaced copy of a referenced artifact: {found.key} (its place is {key_for(found.sha256)})")
    misplaced = f", {len(collected.kept_misplaced)} misplaced" if collected.kept_misplaced else ""
    click.echo(
        f"gc{' (dry run)' if dry_run else ''}: {verb} {len(collected.removed)} file(s), "
        f"{collected.removed_bytes / MB:.1f} MB; kept {collected.kept_referenced} referenced{misplaced} and "
        f"{collected.kept_recent} younger than {grace_minutes:g} min"
    )


@group.command("verify")
def verify():
    """Re-hash the file of every version; list the damaged or missing ones (exit code 1 when any)."""
    checked = verify_artifacts(domain.store(), progress=_bar("verify"))
    bad = [item for item in checked if not item.ok]
    for item in bad:
        click.echo(f"{item.status} {item.sha256}: {', '.join(item.versions)}")
    damaged = sum(item.status == "damaged" for item in bad)
    click.echo(
        f"verify: {len(checked)} artifact(s) checked: {len(checked) - len(bad)} ok, "
        f"{damaged} damaged, {len(bad) - damaged} missing"
        + ("; re-upload the original files (or restore them from a backup) to repair them" if bad else "")
    )
    if bad:
        sys.exit(1)


@group.command("scrub")
def scrub():
    """Re-hash the stored copy of every served artifact (and of every one found damaged before) now, as the
    background scrub does, at ARTIFACT_SCRUB_MB_PER_SECOND; exit code 1 when one is damaged or missing."""
    result = scrub_now(domain.store(), background.scrub_settings(current_app))
    report = background.damage_report(current_app)
    report.refresh()
    for found in report.current():
        click.echo(f"{found.status} {found.sha256}: {', '.join(found.versions)}")
    bad = len(report.current())
    click.echo(f"scrub: {len(result.checked)} stored copies checked, {bad} damaged or missing"
               + (f"; stopped early: {result.stopped}" if result.stopped else "")
               + ("; re-upload the original files (or restore them from a backup) to repair them" if bad else ""))
    if bad or result.stopped:
        sys.exit(1)


@group.command("migrate")
@click.option("--to", "target_url", required=True, metavar="s3://BUCKET/PREFIX",
              help="The object store to copy this directory store into.")
def migrate(target_url: str):
    """Copy the local store (ARTIFACT_ROOT, a directory) to S3 and verify every object there; resumable.

    Afterwards set ARTIFACT_ROOT to the same s3:// URL and restart the replicas.
    """
    source = domain.store()
    if not isinstance(source, LocalStore):
        raise click.ClickException(f"ARTIFACT_ROOT={source.location} is not a directory: migrate copies a local store")
    if not target_url.startswith("s3://"):
        raise click.ClickException(f"--to {target_url}: name an S3 store, s3://bucket/prefix")
    target = domain.open_configured_store(target_url)
    try:
        migrated = migrate_store(source, target, progress=_bar("migrate"))
    except RegistryError as exc:  # the store does not answer: what was copied so far stays, rerun to go on
        raise click.ClickException(f"{exc.detail}; what was copied so far stays: run the command again") from None
    for digest, why in migrated.failed.items():
        click.echo(f"not copied {digest}: {why}; re-upload the original file, then run the command again")
    click.echo(
        f"migrate: {len(migrated.copied)} artifact(s) copied and verified ({migrated.copied_bytes / MB:.1f} MB), "
        f"{len(migrated.present)} already in {target.location}, {len(migrated.failed)} not copied"
        + ("" if migrated.failed else f"; now set ARTIFACT_ROOT={target_url} and restart the replicas")
    )
    if migrated.failed:
        sys.exit(1)
