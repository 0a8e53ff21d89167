"""The netdevsim ports of the offload cases: setup, fault knobs, counters of both sides."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import topology
from ..netnsenter import ethtool_stats
from ..tlsstats import tls_stat_in

DEV_A, DEV_B = "kta0", "ktb0"
DEBUGFS = Path("/sys/kernel/debug")
KMEMLEAK = DEBUGFS / "kmemleak"
KNOBS = ("fail_tx_add", "fail_rx_add", "tx_corrupt", "rx_drop_sync", "refuse_rekey",
         "hold_resync", "drop_acks", "refuse_aes_gcm_128", "refuse_aes_gcm_256")
"""The port's knobs: the first seven count events to fail (one-shot: write 1; with
tls-rekey, refuse_rekey refuses that many key switches ahead, hold_resync turns down that
many resync confirmations, drop_acks drops that many received pure ACKs), the rest are flags
(Y/N)."""


def mount_debugfs() -> None:
    if not (DEBUGFS / "netdevsim").is_dir():
        subprocess.run(["mount", "-t", "debugfs", "none", str(DEBUGFS)], capture_output=True,
                       timeout=30, check=False)


def setup(knobs: bool = False) -> topology.Topology:
    """The netdevsim pair with TLS offload on; debugfs mounted when the case uses knobs."""
    topo = topology.setup("netdevsim", offload=True)
    if knobs:
        mount_debugfs()
    return topo


def knob_dir(side: str) -> Path:
    dev_id = topology.NSIM_IDS[0 if side == "a" else 1]
    return DEBUGFS / "netdevsim" / f"netdevsim{dev_id}" / "ports" / "0" / "tls"


def set_knob(side: str, name: str, value: int | bool) -> None:
    """A counter knob takes a number, a flag knob a bool."""
    if name not in KNOBS:
        raise ValueError(f"unknown knob {name!r}")
    text = ("Y" if value else "N") if isinstance(value, bool) else str(value)
    (knob_dir(side) / name).write_text(text)


def read_knob(side: str, name: str) -> str:
    return (knob_dir(side) / name).read_text().strip()


def delete_devices() -> None:
    for dev_id in topology.NSIM_IDS:
        (topology.NSIM_BUS / "del_device").write_text(str(dev_id))


@dataclass
class Counters:
    """/proc/net/tls_stat of each namespace (``a``/``b``) and each port's ``ethtool -S``."""

    a: dict[str, int] = field(default_factory=dict)
    b: dict[str, int] = field(default_factory=dict)
    a_eth: dict[str, int] = field(default_factory=dict)
    b_eth: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, eth: bool = True) -> Counters:
        c = cls(tls_stat_in(topology.NS_A), tls_stat_in(topology.NS_B))
        if eth:
            c.a_eth = ethtool_stats(DEV_A, topology.NS_A)
            c.b_eth = ethtool_stats(DEV_B, topology.NS_B)
        return c

    @classmethod
    def settled(cls, timeout: float = 10.0) -> Counters:
        """The counters once every device context has been deleted, read after closing the
        sockets. A TX context is released by a work item once its last record is acked
        (``tls_device_queue_ctx_destruction()``), so ``tx_tls_del`` can lag the close; a
        context still live at the deadline is returned as it is, for the test to see."""
        deadline = time.monotonic() + timeout
        while True:
            c = cls.read()
            live = [k for e in (c.a_eth, c.b_eth) for k in ("tx", "rx")
                    if e.get(f"{k}_tls_ctx", 0) != e.get(f"{k}_tls_del", 0)]
            if not live or time.monotonic() > deadline:
                return c
            time.sleep(0.05)

    def since(self, before: Counters) -> dict[str, dict[str, int]]:
        """Every counter's change (zeros included, so a test can tell 0 from absent)."""
        out = {}
        for name in ("a", "b", "a_eth", "b_eth"):
            now, then = getattr(self, name), getattr(before, name)
            out[name] = {k: v - then.get(k, 0) for k, v in now.items()}
        return out

    def current(self) -> dict[str, int]:
        """The non-zero TlsCurr* gauges of both namespaces, summed."""
        out: dict[str, int] = {}
        for side in (self.a, self.b):
            for k, v in side.items():
                if k.startswith("TlsCurr") and v:
                    out[k] = out.get(k, 0) + v
        return out
