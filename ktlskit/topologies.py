"""The topologies: one table, read on the controller before anything is built or booted.

Each entry names its builder (``topology.py``; it runs on the host of the peers), whether
its devices have TLS offload (for which versions and ciphers) and which of their
``ethtool -S`` counters must move when they offload. The CLI's choices, the scenario's
input checks and its verdict (``judge``), the pytest fixtures and the vmtests read it.

``link`` is the one two-machine topology: the client on the DUT, the server on the remote,
over the interface an env file names (``ktlskit.hosts.link``); it has no builder.

``setup()`` and ``teardown()`` are what the controller calls on the peers' host
(``ktlskit.hosts.call``); ``python -m ktlskit.topologies`` does the same by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import topology
from .cleanup import CleanupError, Defer
from .topology import Names, Topology, TopologyError

#: mlx5's names (the reference); netdevsim's TLS offload uses the same.
DEVICE_TLS_COUNTERS = ("tx_tls_encrypted_packets", "rx_tls_decrypted_packets")


@dataclass(frozen=True)
class OffloadCaps:
    """The TLS offload a topology's devices have (with the project's kernel series)."""

    versions: tuple[str, ...]
    ciphers: tuple[str, ...]
    device_counters: tuple[str, ...]
    """``ethtool -S`` counters that must move when the device really offloads."""


@dataclass(frozen=True)
class TopologyKind:
    name: str
    summary: str
    build: Callable[[Names, Defer], Topology] | None  # None: two machines (``link``)
    offload: OffloadCaps | None = None  # None: no device with TLS offload

    @property
    def machines(self) -> int:
        return 1 if self.build is not None else 2


KINDS: dict[str, TopologyKind] = {t.name: t for t in (
    TopologyKind("loopback", "one namespace, 127.0.0.1 / ::1", topology.build_loopback),
    TopologyKind("veth", "a veth pair between two namespaces (veth has no TLS offload)",
                 topology.build_veth),
    TopologyKind("netdevsim", "two linked netdevsim ports in two namespaces, with the fake "
                 "TLS offload of patches/tls-offload", topology.build_netdevsim,
                 OffloadCaps(versions=("1.2", "1.3"), ciphers=("aes-gcm-128", "aes-gcm-256"),
                             device_counters=DEVICE_TLS_COUNTERS)),
    TopologyKind("link", "two machines over the interface an env file names (--env): the "
                 "client on the DUT, the server on the remote", None,
                 OffloadCaps(versions=("1.2",), ciphers=("aes-gcm-128", "aes-gcm-256"),
                             device_counters=DEVICE_TLS_COUNTERS)),
)}
# Kept for callers of the first version of this table.
TOPOLOGIES = KINDS


def names(machines: int | None = None) -> tuple[str, ...]:
    """Every topology, or those for one machine (1) or two (2)."""
    return tuple(k for k, t in KINDS.items() if machines is None or t.machines == machines)


def lookup(kind: str) -> TopologyKind:
    if kind not in KINDS:
        raise TopologyError(f"unknown topology {kind!r}; valid: {', '.join(KINDS)}")
    return KINDS[kind]


def offload_problem(kind: str, version: str, cipher: str) -> str | None:
    """Why ``--offload`` cannot work on this combination, or None when it can."""
    info = lookup(kind)
    with_offload = [t.name for t in KINDS.values() if t.offload]
    if info.offload is None:
        return (f"--offload needs a device with TLS offload; topology {kind} has none "
                f"(topologies with offload: {', '.join(with_offload)})")
    caps = info.offload
    if version not in caps.versions:
        return (f"the {kind} device offloads TLS {'/'.join(caps.versions)} only, "
                f"not TLS {version}")
    if cipher not in caps.ciphers:
        return f"the {kind} device offloads {', '.join(caps.ciphers)} only, not {cipher}"
    return None


# ---- on the peers' host ------------------------------------------------------------

def build(kind: str, offload: bool, names: Names) -> Topology:
    """Build ``kind`` under ``names``; on any failure undo what was done and raise."""
    info = lookup(kind)
    if info.build is None:
        raise TopologyError(f"topology {kind} spans two machines: it is set up from an env "
                            "file (--env), not on one host")
    undo = Defer(topology.journal_path(names.run_id))
    try:
        topo = info.build(names, undo)
        if offload:
            topology.set_offload(topo, True)
    except BaseException as exc:
        try:
            undo.run()
        except CleanupError as cleanup:
            raise TopologyError(f"{exc}; and undoing the setup failed: {cleanup}") from exc
        raise
    return topo


def setup(kind: str, offload: bool = False) -> Topology:
    """A new topology under generated names; ``teardown(topo.run_id)`` removes it."""
    return build(kind, offload, Names.generate())


def teardown(run_id: str) -> bool:
    """Undo what the run's setup journaled; False when there was nothing (already gone)."""
    journal = topology.journal_path(run_id)
    undo = Defer.replay(journal)
    if not len(undo) and not journal.exists():
        return False
    undo.run()
    return True


def teardown_all() -> list[str]:
    """Every topology journaled on this host (leftovers of killed runs); their run ids."""
    found = sorted(Path(topology.journal_path("x").parent).glob("ktlskit-topology-*.json"))
    ids = [p.name.removeprefix("ktlskit-topology-").removesuffix(".json") for p in found]
    for rid in ids:
        teardown(rid)
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ktlskit.topologies",
                                description="set up or remove a topology on this machine")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("setup")
    s.add_argument("kind", choices=names(machines=1))
    s.add_argument("--offload", action="store_true")
    t = sub.add_parser("teardown")
    g = t.add_mutually_exclusive_group(required=True)
    g.add_argument("run_id", nargs="?")
    g.add_argument("--all", action="store_true", help="every ktlskit topology on this host")
    args = p.parse_args(argv)
    try:
        if args.action == "setup":
            print(json.dumps(setup(args.kind, args.offload).to_json()))
        elif args.all:
            print(" ".join(teardown_all()) or "nothing to remove")
        elif not teardown(args.run_id):
            print(f"no topology {args.run_id} on this host", file=sys.stderr)
            return 1
    except (TopologyError, CleanupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
