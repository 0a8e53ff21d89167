"""Network topologies inside the guest, made with pyroute2.

``loopback``: one namespace (the initial one), 127.0.0.1 / ::1.
``veth``: a veth pair across namespaces ``ktls-a`` and ``ktls-b``.
``netdevsim``: two netdevsim ports, one per namespace, joined through
``/sys/bus/netdevsim/link_device`` (which takes namespace file descriptors
open in the writing process, so this must run in the guest).

Addresses come from the documentation ranges (192.0.2.0/24, 2001:db8::/64)
and live only inside the guest's own namespaces. Each step that fails raises
TopologyError naming the step. Run as ``python -m ktlskit.topology``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from . import topologies
from .errors import KtlskitError

KINDS = topologies.names()
NS_A, NS_B = "ktls-a", "ktls-b"
V4 = ("192.0.2.1", "192.0.2.2")
V6 = ("2001:db8::1", "2001:db8::2")
NSIM_IDS = (4201, 4202)
NSIM_BUS = Path("/sys/bus/netdevsim")
T = TypeVar("T")


class TopologyError(KtlskitError):
    """A topology step failed; the message names the step."""


@dataclass
class Topology:
    kind: str
    server_ns: str  # "" = the initial namespace
    client_ns: str
    server_v4: str
    server_v6: str
    devices: list[str] = field(default_factory=list)  # "ns/ifname", for ethtool stats
    offload: bool = False

    def namespaces(self) -> list[str]:
        return sorted({self.server_ns, self.client_ns})

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _step(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (OSError, subprocess.CalledProcessError, KeyError, ValueError, IndexError) as exc:
        raise TopologyError(f"topology step '{what}' failed: {exc}") from exc
    except Exception as exc:  # pyroute2's NetlinkError and friends
        raise TopologyError(f"topology step '{what}' failed: {exc!r}") from exc


@contextmanager
def _ipr(ns: str | None = None) -> Iterator[object]:
    from pyroute2 import IPRoute

    ipr = IPRoute(netns=ns) if ns else IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _ifindex(ns: str, ifname: str) -> int:
    with _ipr(ns) as ipr:
        return ipr.link_lookup(ifname=ifname)[0]  # type: ignore[attr-defined]


def _address(ns: str, ifname: str, v4: str, v6: str) -> None:
    with _ipr(ns) as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]  # type: ignore[attr-defined]
        ipr.addr("add", index=idx, address=v4, prefixlen=24)  # type: ignore[attr-defined]
        # IFA_F_NODAD: usable at once, no duplicate address detection wait
        ipr.addr("add", index=idx, address=v6, prefixlen=64, flags=0x02)  # type: ignore
        ipr.link("set", index=idx, state="up")  # type: ignore[attr-defined]
        lo = ipr.link_lookup(ifname="lo")[0]  # type: ignore[attr-defined]
        ipr.link("set", index=lo, state="up")  # type: ignore[attr-defined]


def _ip_netns(*args: str) -> None:
    """``ip netns ...`` with a timeout. pyroute2's netns.create() waits for a helper child
    with a short fixed timeout that a loaded TCG guest (KASAN kernel) can miss."""
    res = subprocess.run(["ip", "netns", *args], capture_output=True, text=True, timeout=120,
                         check=False)
    if res.returncode:
        raise TopologyError(f"ip netns {' '.join(args)}: {(res.stderr or res.stdout).strip()}")


def _make_namespaces() -> None:
    from pyroute2 import netns

    for ns in (NS_A, NS_B):
        if ns in netns.listnetns():
            _ip_netns("delete", ns)
        _ip_netns("add", ns)


def _veth() -> Topology:
    _step("create namespaces", _make_namespaces)

    def make() -> None:
        with _ipr() as ipr:
            ipr.link("add", ifname="kta0", kind="veth", peer="ktb0")  # type: ignore
            a = ipr.link_lookup(ifname="kta0")[0]  # type: ignore[attr-defined]
            b = ipr.link_lookup(ifname="ktb0")[0]  # type: ignore[attr-defined]
            ipr.link("set", index=a, net_ns_fd=NS_A)  # type: ignore[attr-defined]
            ipr.link("set", index=b, net_ns_fd=NS_B)  # type: ignore[attr-defined]

    _step("create veth pair kta0/ktb0", make)
    _step("address kta0", lambda: _address(NS_A, "kta0", V4[0], V6[0]))
    _step("address ktb0", lambda: _address(NS_B, "ktb0", V4[1], V6[1]))
    return Topology("veth", NS_A, NS_B, V4[0], V6[0], [f"{NS_A}/kta0", f"{NS_B}/ktb0"])


def _nsim_netdev(dev_id: int) -> int:
    """The ifindex of the device's port: names are unstable while udev renames it."""
    subprocess.run(["udevadm", "settle", "-t", "30"], capture_output=True, timeout=60,
                   check=False)
    ndir = NSIM_BUS / "devices" / f"netdevsim{dev_id}" / "net"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        names = sorted(os.listdir(ndir)) if ndir.is_dir() else []
        if names:
            return int((ndir / names[0] / "ifindex").read_text())
        time.sleep(0.05)
    raise TopologyError(f"netdevsim{dev_id} created no netdev under {ndir}")


def _netdevsim() -> Topology:
    if not (NSIM_BUS / "new_device").exists():
        raise TopologyError("topology step 'netdevsim bus' failed: no /sys/bus/netdevsim "
                            "(kernel without CONFIG_NETDEVSIM)")
    _step("create namespaces", _make_namespaces)
    _delete_nsim()
    names = []
    for dev_id, ns, new in zip(NSIM_IDS, (NS_A, NS_B), ("kta0", "ktb0"), strict=True):
        _step(f"new netdevsim{dev_id}",
              lambda d=dev_id: (NSIM_BUS / "new_device").write_text(f"{d} 1 1"))
        idx = _step(f"find netdevsim{dev_id}'s port", lambda d=dev_id: _nsim_netdev(d))

        def move(idx: int = idx, ns: str = ns, new: str = new) -> None:
            with _ipr() as ipr:
                ipr.link("set", index=idx, ifname=new)  # type: ignore[attr-defined]
                ipr.link("set", index=idx, net_ns_fd=ns)  # type: ignore[attr-defined]

        _step(f"move netdevsim{dev_id}'s port (ifindex {idx}) into {ns} as {new}", move)
        names.append(new)
    _step("link netdevsim ports", _link_nsim)
    _step("address kta0", lambda: _address(NS_A, "kta0", V4[0], V6[0]))
    _step("address ktb0", lambda: _address(NS_B, "ktb0", V4[1], V6[1]))
    return Topology("netdevsim", NS_A, NS_B, V4[0], V6[0], [f"{NS_A}/kta0", f"{NS_B}/ktb0"])


def _link_nsim() -> None:
    fa = os.open(f"/run/netns/{NS_A}", os.O_RDONLY)
    fb = os.open(f"/run/netns/{NS_B}", os.O_RDONLY)
    try:
        line = f"{fa}:{_ifindex(NS_A, 'kta0')} {fb}:{_ifindex(NS_B, 'ktb0')}"
        (NSIM_BUS / "link_device").write_text(line)
    finally:
        os.close(fa)
        os.close(fb)


def _delete_nsim() -> None:
    for dev_id in NSIM_IDS:
        if (NSIM_BUS / "devices" / f"netdevsim{dev_id}").exists():
            (NSIM_BUS / "del_device").write_text(str(dev_id))


TLS_FEATURES = ("tls-hw-tx-offload", "tls-hw-rx-offload")


def set_offload(topo: Topology, on: bool) -> None:
    """Turn the devices' TLS offload features on or off (``ethtool -K``), and check with
    ``ethtool -k`` that they are (ethtool exits 0 when it changed only some of the features).

    RX offload needs RX checksumming (the kernel drops ``tls-hw-rx-offload`` without it),
    which netdevsim leaves off by default: turning offload on turns ``rx`` on first.
    """
    state = "on" if on else "off"
    for dev in topo.devices:
        ns, _, ifname = dev.rpartition("/")
        if on:
            _ethtool(ns, ["-K", ifname, "rx", "on"])
        _ethtool(ns, ["-K", ifname, *[w for f in TLS_FEATURES for w in (f, state)]])
        shown = _features(_ethtool(ns, ["-k", ifname]))
        wrong = [f"{f}: {shown.get(f, 'absent')}" for f in TLS_FEATURES
                 if not shown.get(f, "").startswith(state)]
        if wrong:
            raise TopologyError(f"topology step 'ethtool -K {ifname} tls-hw-*-offload {state}' "
                                f"did not take: {'; '.join(wrong)}")
        topo.offload = on


def _ethtool(ns: str, args: list[str]) -> str:
    argv = ["ethtool", *args]
    if ns:
        argv = ["ip", "netns", "exec", ns, *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if res.returncode != 0:
        raise TopologyError(f"topology step '{' '.join(argv[-len(args) - 1:])}' failed: "
                            f"{(res.stderr or res.stdout).strip()}")
    return res.stdout


def _features(text: str) -> dict[str, str]:
    """``ethtool -k`` output as feature -> state (``on``, ``off [fixed]``, ...)."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition(": ")
        if sep:
            out[name] = value.strip()
    return out


def setup(kind: str, offload: bool = False) -> Topology:
    if kind not in KINDS:
        raise TopologyError(f"unknown topology {kind!r}; known: {', '.join(KINDS)}")
    teardown()
    if kind == "loopback":
        topo = Topology("loopback", "", "", "127.0.0.1", "::1")
    else:
        topo = _veth() if kind == "veth" else _netdevsim()
    if offload:
        if kind == "loopback":
            raise TopologyError("--offload needs a device: use --topology veth or netdevsim")
        set_offload(topo, True)
    return topo


def teardown() -> None:
    """Remove whatever a previous setup made (idempotent)."""
    from pyroute2 import netns

    if (NSIM_BUS / "del_device").exists():
        _step("delete netdevsim devices", _delete_nsim)
    for ns in (NS_A, NS_B):
        if ns in netns.listnetns():
            _step(f"remove namespace {ns}", lambda ns=ns: _ip_netns("delete", ns))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ktlskit.topology")
    p.add_argument("action", choices=["setup", "teardown"])
    p.add_argument("kind", nargs="?", default="veth", choices=KINDS)
    p.add_argument("--offload", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.action == "teardown":
            teardown()
            return 0
        json.dump(setup(args.kind, args.offload).to_json(), sys.stdout)
        sys.stdout.write("\n")
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
