"""Guest side of the rekey timing in ``bench offload`` (see ``ktlskit.rekeywindows``).

For a transfer of an offload mode with KeyUpdates: the sender's KeyUpdate times (stamped in
the forked sender, handed back through a file), the receiver's per-read progress (kept by
``benchstream.receive_ktls``) and, once the sockets are closed and every device context
deleted, the entries of both ports' ``tls/epochs`` newer than the last one listed before the
transfer. ``refuse()`` sets netdevsim's ``refuse_rekey`` on both ports: the stack then takes
the 2023 netdev path (TX: software until the old key's records are acknowledged, then
tls_dev_del + tls_dev_add; RX: tls_dev_del, software until re-added and resynced).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .offload import nsim
from .offload.rekey import REFUSE_ALL, read_epochs

SIDES = ("a", "b")


class KeyUpdateTimes:
    """``time.monotonic_ns()`` at each KeyUpdate of a forked sender, back in the parent."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="ktlskit-keyupdates-")
        os.close(fd)
        self.path = Path(name)
        self.times: list[int] = []

    def stamp(self) -> None:
        """Right before the sender sends a KeyUpdate."""
        self.times.append(time.monotonic_ns())

    def hand_back(self) -> None:
        """In the sender, once it is done."""
        self.path.write_text(" ".join(map(str, self.times)))

    def collect(self) -> list[int]:
        """In the parent, after the sender exited; removes the file."""
        try:
            return [int(t) for t in self.path.read_text().split()]
        finally:
            self.path.unlink(missing_ok=True)


def refuse(on: bool) -> None:
    """Both ports refuse every key switch (``on``), or take keys themselves again."""
    nsim.mount_debugfs()
    for side in SIDES:
        nsim.set_knob(side, "refuse_rekey", REFUSE_ALL if on else 0)


def last_indexes() -> dict[str, int]:
    """Per port, the INDEX of the newest ``tls/epochs`` entry (-1: none yet)."""
    nsim.mount_debugfs()
    return {side: max((int(e["index"]) for e in read_epochs(side)), default=-1)
            for side in SIDES}


def epochs_since(seen: dict[str, int]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Per port, the entries newer than ``seen``, and how many of them the 256-entry ring
    dropped before this read."""
    epochs, lost = {}, {}
    for side in SIDES:
        new = [e for e in read_epochs(side) if int(e["index"]) > seen[side]]
        epochs[side] = new
        lost[side] = int(new[0]["index"]) - seen[side] - 1 if new else 0
    return epochs, lost


def timing(seen: dict[str, int], key_updates: list[int], progress: list[tuple[int, int]],
           layout: dict[str, Any]) -> dict[str, Any]:
    """A transfer's timing (``ktlskit.rekeywindows``), read once its sockets are closed and
    its device contexts deleted; ``seen``: ``last_indexes()`` before it."""
    epochs, lost = epochs_since(seen)
    return {"key_updates_ns": key_updates, "progress": progress, "epochs": epochs,
            "epochs_lost": lost, **layout}
