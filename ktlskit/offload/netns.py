"""Sockets and commands inside the topology's two network namespaces (``ktls-a``, ``ktls-b``)."""

from __future__ import annotations

import socket
import struct
import subprocess

from .. import ethfeatures, netnsenter, topology

PORT = 4500
IO_TIMEOUT = 120.0  # seconds any single socket operation may block
COMMAND_TIMEOUT = 60.0


class CaseFailure(Exception):
    """The case could not run to its end; the message says where."""


def run_in(ns: str, *argv: str) -> None:
    """Run a command in a namespace; a failure is a CaseFailure with its output."""
    full = ["ip", "netns", "exec", ns, *argv]
    res = subprocess.run(full, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                         check=False)
    if res.returncode:
        raise CaseFailure(f"{' '.join(full)}: {(res.stderr or res.stdout).strip()}")


def ethtool_k(ns: str, dev: str, **features: bool) -> None:
    """``ethtool -K`` in a namespace, e.g. ``tls_hw_rx_offload=False``; a feature that did
    not take is a CaseFailure naming its state."""
    wanted = {name.replace("_", "-"): on for name, on in features.items()}
    try:
        wrong = ethfeatures.not_taken(wanted, ethfeatures.set_features(dev, wanted, ns))
    except (OSError, ValueError) as exc:
        raise CaseFailure(f"ethtool -K {dev} in {ns}: {exc}") from exc
    if wrong:
        raise CaseFailure(f"ethtool -K {dev} in {ns} did not take: {'; '.join(wrong)}")


def tc(ns: str, *args: str) -> None:
    run_in(ns, "tc", *args)


def _timeouts(s: socket.socket) -> None:
    """Kernel-side timeouts: the socket stays blocking (one sendmsg per send call)."""
    tv = struct.pack("@ll", int(IO_TIMEOUT), 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def connect(port: int = PORT) -> tuple[socket.socket, socket.socket]:
    """(client in ktls-a, server in ktls-b), both connected over the link."""
    with netnsenter.entered(topology.NS_B):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with netnsenter.entered(topology.NS_A):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((topology.V4[1], port))
        ls.listen(1)
        ls.settimeout(IO_TIMEOUT)
        c.settimeout(IO_TIMEOUT)
        c.connect((topology.V4[1], port))
        s, _ = ls.accept()
    finally:
        ls.close()
    for sk in (c, s):
        sk.settimeout(None)
        _timeouts(sk)
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c, s
