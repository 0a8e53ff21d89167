"""Defer: undo newest first, every step even after a failure, and across processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktlskit import topology
from ktlskit.cleanup import CleanupError, Defer

DONE: list[str] = []


def record(what: str) -> None:
    DONE.append(what)


def fail(what: str) -> None:
    raise OSError(f"cannot undo {what}")


def test_newest_first_and_all_of_them() -> None:
    DONE.clear()
    undo = Defer()
    undo.defer(record, "namespace")
    undo.defer(fail, "device")
    undo.defer(record, "address")
    with pytest.raises(CleanupError, match="cannot undo device"):
        undo.run()
    assert DONE == ["address", "namespace"]
    undo.run()  # nothing left
    assert DONE == ["address", "namespace"]


def test_the_block_runs_it_and_its_own_error_wins() -> None:
    DONE.clear()
    with pytest.raises(ValueError, match="setup broke"), Defer() as undo:
        undo.defer(fail, "x")
        undo.defer(record, "y")
        raise ValueError("setup broke")
    assert DONE == ["y"]


def test_a_journal_lets_another_process_undo(tmp_path: Path) -> None:
    journal = tmp_path / "j.json"
    undo = Defer(journal)
    # real undo steps; nothing of these names exists here, so they find nothing to remove
    undo.defer(topology.delete_namespace, "ktls-test-none-a")
    undo.defer(topology.delete_nsim, 9999)
    assert len(journal.read_text().splitlines()) == 2
    again = Defer.replay(journal)  # as a later process would
    assert [e.fn for e in again._entries] == [topology.delete_namespace, topology.delete_nsim]
    again.run()
    assert not journal.exists()
    assert len(Defer.replay(journal)) == 0


def test_only_module_level_functions_are_journaled(tmp_path: Path) -> None:
    undo = Defer(tmp_path / "j.json")
    with pytest.raises(CleanupError, match="module-level"):
        undo.defer(lambda: None)
