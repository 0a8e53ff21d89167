"""A topology's undo journal: written as setup goes, replayed by a later call (or after a
killed run), gone once undone; a failed setup undoes itself; a damaged journal is named.

The builders here are test ones; their undo steps are ktlskit's real ones, given names that
exist nowhere (so they find nothing to remove) or, to fail, ``ip netns delete`` of one."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from ktlskit import topologies, topology
from ktlskit.cleanup import CleanupError, Defer
from ktlskit.topologies import TopologyKind
from ktlskit.topology import Names, Topology, TopologyError


@pytest.fixture(autouse=True)
def journals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def build_two_steps(names: Names, undo: Defer) -> Topology:
    for ns in names.ns:  # as _namespaces() does, without the namespaces
        undo.defer(topology.delete_namespace, ns)
    undo.defer(topology.delete_nsim, names.nsim_ids[0])
    return Topology("two-steps", names.ns[0], names.ns[1], "192.0.2.1", "2001:db8::1",
                    run_id=names.run_id)


def build_then_fail(names: Names, undo: Defer) -> Topology:
    build_two_steps(names, undo)
    raise TopologyError("topology step 'link netdevsim ports' failed: test")


def build_then_fail_and_undo_fails(names: Names, undo: Defer) -> Topology:
    undo.defer(topology._ip, "", f"netns delete {names.ns[0]}-not-there")
    raise TopologyError("topology step 'address kta0' failed: test")


@pytest.fixture(autouse=True)
def kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    for fn in (build_two_steps, build_then_fail, build_then_fail_and_undo_fails):
        monkeypatch.setitem(topologies.KINDS, fn.__name__, TopologyKind(fn.__name__, "test", fn))


def test_setup_journals_and_teardown_replays(journals: Path) -> None:
    topo = topologies.build("build_two_steps", False, Names.generate())
    journal = topology.journal_path(topo.run_id)
    assert journal.parent == journals
    steps = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [s["fn"] for s in steps] == ["ktlskit.topology:delete_namespace"] * 2 + \
        ["ktlskit.topology:delete_nsim"]
    assert topologies.teardown(topo.run_id) is True
    assert not journal.exists()
    assert topologies.teardown(topo.run_id) is False  # already gone: said, not an error


def test_a_failed_setup_leaves_no_journal(journals: Path) -> None:
    names = Names.generate()
    with pytest.raises(TopologyError, match="link netdevsim ports"):
        topologies.build("build_then_fail", False, names)
    assert not topology.journal_path(names.run_id).exists()


def test_a_failed_undo_is_reported_with_the_setup_error(journals: Path) -> None:
    names = Names.generate()
    with pytest.raises(TopologyError, match=r"address kta0.*and undoing the setup failed: "
                                            r"undo failed: _ip\(.., .netns delete"):
        topologies.build("build_then_fail_and_undo_fails", False, names)


def test_teardown_all_finds_what_killed_runs_left(journals: Path) -> None:
    ids = sorted(topologies.build("build_two_steps", False, Names.generate()).run_id
                 for _ in range(2))
    assert topologies.teardown_all() == ids
    assert not list(journals.glob("ktlskit-topology-*.json"))
    assert topologies.teardown_all() == []


def test_a_damaged_journal_is_undone_as_far_as_it_can_be_and_named(journals: Path) -> None:
    names = Names.generate()
    topologies.build("build_two_steps", False, names)
    journal = topology.journal_path(names.run_id)
    with journal.open("a") as f:  # killed while writing the next step
        f.write('{"fn": "ktlskit.topology:delete_li')
    undo = Defer.replay(journal)
    assert len(undo) == 4
    with pytest.raises(CleanupError, match=r"json:4: cannot read .*undo that step by hand"):
        undo.run()
    assert not journal.exists()


def test_a_journal_naming_something_else_is_refused(journals: Path) -> None:
    journal = journals / "ktlskit-topology-abcdef.json"
    journal.write_text('{"fn": "os:system", "args": ["true"]}\n')
    with pytest.raises(CleanupError, match="outside ktlskit"):
        topologies.teardown("abcdef")
