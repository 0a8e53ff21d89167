"""Topology builders: namespaces, a veth pair, linked netdevsim ports (``ip -batch``, sysfs and
setns, on the host that runs the peers; no pyroute2, whose import alone took 10-13 s in a
TCG guest).

Each builder takes the names to use (``Names``: generated per run, so two runs coexist) and a
``Defer`` on which it registers the undo of every step right after the step, so a failed
setup leaves nothing behind and ``topologies.teardown(run_id)`` removes the rest later.
The table of topologies and the entry points are in ``topologies.py``.

Addresses come from the documentation ranges (192.0.2.0/24, 2001:db8::/64) and live only in
the run's own namespaces. Each step that fails raises TopologyError naming the step.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from . import ethfeatures, netnsenter
from .cleanup import Defer
from .errors import KtlskitError

V4 = ("192.0.2.1", "192.0.2.2")
V6 = ("2001:db8::1", "2001:db8::2")
NSIM_BUS = Path("/sys/bus/netdevsim")
# The fixed names ktlskit/offload/ builds its pair with (``setup()`` below).
NS_A, NS_B = "ktls-a", "ktls-b"
NSIM_IDS = (4201, 4202)
T = TypeVar("T")


class TopologyError(KtlskitError):
    """A topology step failed; the message names the step."""


@dataclass(frozen=True)
class Names:
    """What one run's topology is called: namespaces, interfaces, netdevsim device ids."""

    run_id: str
    ns: tuple[str, str]
    ifnames: tuple[str, str]
    nsim_ids: tuple[int, int]

    @classmethod
    def generate(cls, run_id: str = "") -> Names:
        rid = run_id or secrets.token_hex(3)
        base = 10000 + 2 * (int(rid, 16) % 40000)
        return cls(rid, (f"ktls-{rid}-a", f"ktls-{rid}-b"), (f"kt{rid}a", f"kt{rid}b"),
                   (base, base + 1))

    @classmethod
    def fixed(cls) -> Names:
        return cls("fixed", (NS_A, NS_B), ("kta0", "ktb0"), NSIM_IDS)


@dataclass
class Topology:
    kind: str
    server_ns: str  # "" = the initial namespace
    client_ns: str
    server_v4: str
    server_v6: str
    devices: list[str] = field(default_factory=list)  # "ns/ifname", for ethtool stats
    offload: bool = False
    run_id: str = ""  # topologies.teardown(run_id) removes it

    def namespaces(self) -> list[str]:
        return sorted({self.server_ns, self.client_ns})

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def journal_path(run_id: str) -> Path:
    """Where a run's undo steps are written as setup goes."""
    return Path(tempfile.gettempdir()) / f"ktlskit-topology-{run_id}.json"


def _step(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (OSError, subprocess.CalledProcessError, KeyError, ValueError, IndexError) as exc:
        raise TopologyError(f"topology step '{what}' failed: {exc}") from exc


def _ip(ns: str, *lines: str) -> None:
    """``ip [-n NS] -batch -``: several link/addr steps for the price of one process (each
    exec costs 0.1-0.3 s under TCG). ``ns`` "" is this process's namespace."""
    argv = ["ip", *(["-n", ns] if ns else []), "-batch", "-"]
    res = subprocess.run(argv, input="".join(f"{line}\n" for line in lines),
                         capture_output=True, text=True, timeout=120, check=False)
    if res.returncode:
        raise OSError(f"{' '.join(argv)} <<< {'; '.join(lines)}: "
                      f"{(res.stderr or res.stdout).strip()}")


def _ifindex(ns: str, ifname: str) -> int:
    with netnsenter.entered(ns):
        return socket.if_nametoindex(ifname)


def _address(ns: str, ifname: str, v4: str, v6: str) -> None:
    # nodad: the IPv6 address is usable at once, no duplicate address detection wait
    _ip(ns, f"addr add {v4}/24 dev {ifname}", f"addr add {v6}/64 dev {ifname} nodad",
        f"link set dev {ifname} up", "link set dev lo up")


# ---- undo steps (module-level: they are journaled by name) --------------------

def delete_namespace(name: str) -> None:
    """``ip netns delete`` without a process: the namespace lives on while its file is
    bind-mounted, so detach the mount and remove the file."""
    path = netnsenter.NETNS_RUN / name
    if path.exists():
        netnsenter.unmount_detached(path)
        path.unlink()


def delete_link(ifname: str) -> None:
    """Delete an interface of the initial namespace, if it is still there."""
    if Path("/sys/class/net", ifname).exists():
        _ip("", f"link del dev {ifname}")


def delete_nsim(dev_id: int) -> None:
    if (NSIM_BUS / "devices" / f"netdevsim{dev_id}").exists():
        (NSIM_BUS / "del_device").write_text(str(dev_id))


# ---- builders ------------------------------------------------------------------

def _namespaces(names: Names, undo: Defer) -> None:
    """Both namespaces with one ``ip -batch`` (it returns to its own namespace after each
    ``netns add``); their undo is registered first, so a batch that fails half way is undone."""
    for ns in names.ns:
        if (netnsenter.NETNS_RUN / ns).exists():
            raise TopologyError(f"topology step 'create namespace {ns}' failed: it exists "
                                "(another run's, or a leftover: python -m ktlskit.topologies "
                                "teardown --all)")
    for ns in names.ns:
        undo.defer(delete_namespace, ns)
    _step(f"create namespaces {' '.join(names.ns)}",
          lambda: _ip("", *(f"netns add {ns}" for ns in names.ns)))


def build_loopback(names: Names, undo: Defer) -> Topology:
    return Topology("loopback", "", "", "127.0.0.1", "::1", run_id=names.run_id)


def build_veth(names: Names, undo: Defer) -> Topology:
    (ns_a, ns_b), (if_a, if_b) = names.ns, names.ifnames
    _namespaces(names, undo)

    _step(f"create veth pair {if_a}/{if_b}",
          lambda: _ip("", f"link add {if_a} type veth peer name {if_b}"))
    undo.defer(delete_link, if_a)

    _step(f"move {if_a}/{if_b} into {ns_a}/{ns_b}",
          lambda: _ip("", f"link set dev {if_a} netns {ns_a}", f"link set dev {if_b} netns {ns_b}"))
    _step(f"address {if_a}", lambda: _address(ns_a, if_a, V4[0], V6[0]))
    _step(f"address {if_b}", lambda: _address(ns_b, if_b, V4[1], V6[1]))
    return Topology("veth", ns_a, ns_b, V4[0], V6[0], [f"{ns_a}/{if_a}", f"{ns_b}/{if_b}"],
                    run_id=names.run_id)


def _udev_settle() -> None:
    """Wait until udev has handled the new ports (it renames them)."""
    subprocess.run(["udevadm", "settle", "-t", "30"], capture_output=True, timeout=60,
                   check=False)


def _nsim_netdev(dev_id: int) -> int:
    """The ifindex of the device's port: names are unstable while udev renames it."""
    ndir = NSIM_BUS / "devices" / f"netdevsim{dev_id}" / "net"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = sorted(os.listdir(ndir)) if ndir.is_dir() else []
        if found:
            return int((ndir / found[0] / "ifindex").read_text())
        time.sleep(0.05)
    raise TopologyError(f"netdevsim{dev_id} created no netdev under {ndir}")


def build_netdevsim(names: Names, undo: Defer) -> Topology:
    if not (NSIM_BUS / "new_device").exists():
        raise TopologyError("topology step 'netdevsim bus' failed: no /sys/bus/netdevsim "
                            "(kernel without CONFIG_NETDEVSIM)")
    _namespaces(names, undo)
    for dev_id in names.nsim_ids:
        if (NSIM_BUS / "devices" / f"netdevsim{dev_id}").exists():
            raise TopologyError(f"topology step 'new netdevsim{dev_id}' failed: the id is "
                                "taken (another run's, or a leftover)")
        _step(f"new netdevsim{dev_id}",
              lambda d=dev_id: (NSIM_BUS / "new_device").write_text(f"{d} 1 1"))
        undo.defer(delete_nsim, dev_id)
    _udev_settle()
    moves = []
    for dev_id, ns, new in zip(names.nsim_ids, names.ns, names.ifnames, strict=True):
        idx = _step(f"find netdevsim{dev_id}'s port", lambda d=dev_id: _nsim_netdev(d))
        # by index: the name was udev's until now (settled above)
        old = _step(f"name of netdevsim{dev_id}'s port (ifindex {idx})",
                    lambda idx=idx: socket.if_indextoname(idx))
        moves += [f"link set dev {old} name {new}", f"link set dev {new} netns {ns}"]
    _step(f"move the netdevsim ports into {' and '.join(names.ns)}", lambda: _ip("", *moves))
    _step("link netdevsim ports", lambda: _link_nsim(names))
    (ns_a, ns_b), (if_a, if_b) = names.ns, names.ifnames
    _step(f"address {if_a}", lambda: _address(ns_a, if_a, V4[0], V6[0]))
    _step(f"address {if_b}", lambda: _address(ns_b, if_b, V4[1], V6[1]))
    return Topology("netdevsim", ns_a, ns_b, V4[0], V6[0], [f"{ns_a}/{if_a}", f"{ns_b}/{if_b}"],
                    run_id=names.run_id)


def _link_nsim(names: Names) -> None:
    (ns_a, ns_b), (if_a, if_b) = names.ns, names.ifnames
    fa = os.open(netnsenter.NETNS_RUN / ns_a, os.O_RDONLY)
    fb = os.open(netnsenter.NETNS_RUN / ns_b, os.O_RDONLY)
    try:
        line = f"{fa}:{_ifindex(ns_a, if_a)} {fb}:{_ifindex(ns_b, if_b)}"
        (NSIM_BUS / "link_device").write_text(line)
    finally:
        os.close(fa)
        os.close(fb)


TLS_FEATURES = ("tls-hw-tx-offload", "tls-hw-rx-offload")


def set_offload(topo: Topology, on: bool) -> None:
    """Turn the devices' TLS offload features on or off (``ethtool -K`` as an ioctl), and
    check that they took (the kernel changes what it can and says nothing of the rest).

    RX offload needs RX checksumming (the kernel drops ``tls-hw-rx-offload`` without it),
    which netdevsim leaves off by default: turning offload on asks for ``rx-checksum`` in
    the same request (the kernel fixes up the wanted features as a whole, so the order
    within one request does not matter).
    """
    if not topo.devices:
        raise TopologyError(f"--offload needs a device; topology {topo.kind} has none")
    state = "on" if on else "off"
    tls = dict.fromkeys(TLS_FEATURES, on)
    wanted = tls | ({"rx-checksum": True} if on else {})
    for dev in topo.devices:
        ns, _, ifname = dev.rpartition("/")
        what = f"ethtool -K {ifname} tls-hw-*-offload {state}"
        now = _step(what, lambda ifname=ifname, ns=ns: ethfeatures.set_features(
            ifname, wanted, ns or None))
        wrong = ethfeatures.not_taken(tls, now)
        if wrong:
            raise TopologyError(f"topology step '{what}' did not take: {'; '.join(wrong)}")
        topo.offload = on


# ---- the fixed-name pair ktlskit/offload/ uses (until it takes Names) -----------

def setup(kind: str, offload: bool = False) -> Topology:
    """The topology under the fixed names (``ktls-a``/``ktls-b``), replacing a previous one."""
    from . import topologies

    teardown()
    return topologies.build(kind, offload, Names.fixed())


def teardown() -> None:
    """Remove the fixed-name topology, journaled or not (idempotent)."""
    names = Names.fixed()
    Defer.replay(journal_path(names.run_id)).run()
    if (NSIM_BUS / "del_device").exists():
        for dev_id in names.nsim_ids:
            _step(f"delete netdevsim{dev_id}", lambda d=dev_id: delete_nsim(d))
    for ns in names.ns:
        _step(f"remove namespace {ns}", lambda ns=ns: delete_namespace(ns))
