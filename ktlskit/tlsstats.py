"""kTLS statistics: /proc/net/tls_stat, ethtool -S, and per-socket kTLS state.

Runs inside the guest (``python -m ktlskit.tlsstats snapshot --json``). The
parsers keep every counter the kernel prints, known or not, in its order.
ethtool statistics are read with the ethtool ioctl (``netnsenter``) from a socket
opened inside each interface's network namespace; socket state comes from
``ss -tinHe`` (the kernel's INET_DIAG_ULP_INFO, decoded by iproute2).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import netnsenter

TLS_STAT = Path("/proc/net/tls_stat")


def parse_tls_stat(text: str) -> dict[str, int]:
    """``Name<spaces/tab>value`` per line; unknown names are kept."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_ethtool_s(text: str) -> dict[str, int]:
    """``ethtool -S`` text (``NIC statistics:`` then ``name: value``)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^\s+([^:]+):\s+(-?\d+)\s*$", line)
        if m:
            out[m[1].strip()] = int(m[2])
    return out


@dataclass(frozen=True)
class SocketTls:
    netns: str
    local: str
    peer: str
    version: str = ""
    cipher: str = ""
    txconf: str = ""
    rxconf: str = ""
    flags: tuple[str, ...] = ()


_SS_FIELD = re.compile(r"\b(version|cipher|txconf|rxconf): (\S+)")


def parse_ss(text: str, netns: str = "") -> list[SocketTls]:
    """Sockets with a ``tcp-ulp-tls`` section in ``ss -tinHe`` output.

    ss prints each socket on one line with ``-H`` and ``-e``/``-i`` details
    possibly wrapped onto indented continuation lines; they are joined first.
    """
    joined: list[str] = []
    for line in text.splitlines():
        if line[:1].isspace() and joined:
            joined[-1] += " " + line.strip()
        elif line.strip():
            joined.append(line.strip())
    out = []
    for line in joined:
        if "tcp-ulp-tls" not in line:
            continue
        cols = line.split()
        # "state established" leaves the State column out: Recv-Q Send-Q Local Peer ...
        at = 2 if cols[0].isdigit() else 3
        local, peer = (cols[at], cols[at + 1]) if len(cols) > at + 1 else ("", "")
        tls = line.split("tcp-ulp-tls", 1)[1]
        fields = dict(_SS_FIELD.findall(tls))
        flags = tuple(w for w in ("zerocopy_sendfile", "rxnopad") if w in tls.split())
        out.append(SocketTls(netns, local, peer, fields.get("version", ""),
                             fields.get("cipher", ""), fields.get("txconf", ""),
                             fields.get("rxconf", ""), flags))
    return out


@dataclass
class Snapshot:
    tls_stat: dict[str, int] = field(default_factory=dict)
    ethtool: dict[str, dict[str, int]] = field(default_factory=dict)  # "ns/ifname" -> stats
    sockets: list[SocketTls] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"tls_stat": self.tls_stat, "ethtool": self.ethtool,
                "sockets": [asdict(s) for s in self.sockets]}

    @classmethod
    def from_json(cls, d: dict) -> Snapshot:
        socks = [SocketTls(**{**s, "flags": tuple(s["flags"])}) for s in d.get("sockets", [])]
        return cls(dict(d.get("tls_stat", {})), {k: dict(v) for k, v in d["ethtool"].items()},
                   socks)


def delta(before: Snapshot, after: Snapshot) -> dict[str, int]:
    """Counter changes keyed by the kernel's own names.

    tls_stat counters keep their names (``TlsTxRekeyOk``); ethtool counters
    are summed over the topology's interfaces under their names
    (``tx_tls_encrypted_packets``) and also given per interface as
    ``ns/ifname:name``. Counters that did not change are left out.
    """
    out: dict[str, int] = {}
    for k, v in after.tls_stat.items():
        d = v - before.tls_stat.get(k, 0)
        if d:
            out[k] = d
    for dev, stats in after.ethtool.items():
        prev = before.ethtool.get(dev, {})
        for k, v in stats.items():
            d = v - prev.get(k, 0)
            if d:
                out[f"{dev}:{k}"] = d
                if k not in after.tls_stat:
                    out[k] = out.get(k, 0) + d
    return out


# ---- collection (inside the guest) ----------------------------------------

def ss_sockets(netns: str | None) -> list[SocketTls]:
    argv = ["ss", "-tinHe", "state", "established"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return parse_ss(res.stdout, netns or "")


def tls_stat_in(netns: str | None) -> dict[str, int]:
    """/proc/net/tls_stat of one network namespace (the counters are per namespace)."""
    if not netns:
        return parse_tls_stat(TLS_STAT.read_text()) if TLS_STAT.exists() else {}
    with netnsenter.entered(netns):
        return parse_tls_stat(Path("/proc/thread-self/net/tls_stat").read_text())


def snapshot(devices: list[str], namespaces: list[str]) -> Snapshot:
    """``devices`` are ``ns/ifname`` (``/ifname`` for the initial namespace).

    ``tls_stat`` sums the initial namespace and every namespace in ``namespaces``.
    """
    snap = Snapshot(tls_stat_in(None))
    for ns in dict.fromkeys(n for n in namespaces if n):
        for k, v in tls_stat_in(ns).items():
            snap.tls_stat[k] = snap.tls_stat.get(k, 0) + v
    for dev in devices:
        ns, _, ifname = dev.rpartition("/")
        snap.ethtool[dev] = netnsenter.ethtool_stats(ifname, ns or None)
    for ns in namespaces or [""]:
        snap.sockets += ss_sockets(ns or None)
    return snap


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ktlskit.tlsstats")
    p.add_argument("action", choices=["snapshot"])
    p.add_argument("--dev", action="append", default=[], help="NS/IFNAME (repeatable)")
    p.add_argument("--netns", action="append", default=[], help="namespace for sockets")
    args = p.parse_args(argv)
    json.dump(snapshot(args.dev, args.netns).to_json(), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
