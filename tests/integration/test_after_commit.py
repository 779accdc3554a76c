"""Changes reach the runtime after their transaction commits, and only then; an app adds no receiver
per instance and leaves the process's warning filters alone."""
import warnings

import pytest

from registry import changes
from registry.db import write_transaction


@pytest.fixture
def handed_over():
    """Every batch of changes handed over after a commit, while the test runs."""
    batches = []

    def receive(_sender, changes):
        batches.append(changes)

    changes.committed.connect(receive)
    yield batches
    changes.committed.disconnect(receive)


def test_changes_of_a_transaction_that_rolls_back_are_never_handed_over(app, handed_over):
    with app.app_context():
        with pytest.raises(RuntimeError), write_transaction():
            changes.record(changes.AliasDeleted("m", "staging"))
            raise RuntimeError("the use case failed after recording")
        with write_transaction():
            pass
    assert handed_over == []


def test_the_changes_of_a_commit_are_handed_over_once_in_order(app, handed_over):
    recorded = [changes.VersionRetired("m", 3), changes.AliasDeleted("m", "staging"), changes.EventsRecorded()]
    with app.app_context():
        with write_transaction():
            for change in recorded + recorded[:1]:  # a change recorded twice is handed over once
                changes.record(change)
        with write_transaction():
            pass  # a later transaction that changed nothing hands over nothing
    assert handed_over == [tuple(recorded)]


def test_apps_and_their_deliverers_add_no_receivers(build_app):
    build_app()
    receivers = len(changes.committed.receivers)
    for _ in range(3):
        build_app().extensions["webhook_deliverer"].start()
    assert len(changes.committed.receivers) == receivers


def test_building_an_app_installs_no_warning_filter(build_app):
    with warnings.catch_warnings():
        warnings.resetwarnings()
        build_app()
        assert warnings.filters == []
