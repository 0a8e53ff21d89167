"""What the kernel says besides the TLS counters: a namespace's TCP counters, a port's drop
count, and the kernel log since a case started (its splats and kTLS lines)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from .. import netnsenter
from ..hosts.splat import find_splats
from .netns import COMMAND_TIMEOUT

TCP_KEYS = ("TcpRetransSegs", "TcpExtTCPLossProbes", "TcpExtTCPTimeouts",
            "TcpExtTCPSpuriousRTOs", "TcpExtTCPDSACKRecv")
"""The TCP counters a case reports: retransmitted segments and what made them."""
KMSG = Path("/dev/kmsg")
LOG_LINE = re.compile(r"WARNING|BUG|Oops|KASAN|tls", re.IGNORECASE)
MAX_LOG_LINES = 60


def parse_snmp(text: str) -> dict[str, int]:
    """/proc/net/snmp or /proc/net/netstat: pairs of ``Proto: names`` and ``Proto: values``
    lines; keys as nstat spells them (``TcpRetransSegs``, ``TcpExtTCPLossProbes``)."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        proto, _, names = head.partition(":")
        vproto, _, nums = values.partition(":")
        if proto != vproto:
            raise ValueError(f"snmp lines out of pairs: {head!r} / {values!r}")
        for name, num in zip(names.split(), nums.split(), strict=True):
            out[proto + name] = int(num)
    return out


def tcp_counters(ns: str, keys: tuple[str, ...] = TCP_KEYS) -> dict[str, int]:
    """The ``keys`` counters (``TCP_KEYS``) of namespace ``ns``."""
    with netnsenter.entered(ns):
        both = {**parse_snmp(Path("/proc/thread-self/net/snmp").read_text()),
                **parse_snmp(Path("/proc/thread-self/net/netstat").read_text())}
    return {k: both.get(k, 0) for k in keys}


def rx_dropped(ns: str, dev: str) -> int:
    """The port's RX drops (``ip -s link``: stats64.rx.dropped)."""
    res = subprocess.run(["ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev],
                         capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=True)
    return int(json.loads(res.stdout)[0]["stats64"]["rx"]["dropped"])


def delta(now: dict[str, int], then: dict[str, int]) -> dict[str, int]:
    return {k: v - then.get(k, 0) for k, v in now.items()}


def parse_kmsg(record: str) -> str | None:
    """One /dev/kmsg record (``PRIO,SEQ,USEC,FLAGS;MESSAGE`` and ``KEY=value`` lines) as a
    console line, ``[   SECONDS] MESSAGE``; None for anything else."""
    head, sep, rest = record.partition(";")
    fields = head.split(",")
    if not sep or len(fields) < 3 or not fields[2].isdigit():
        return None
    return f"[{int(fields[2]) / 1e6:12.6f}] {rest.splitlines()[0] if rest else ''}"


class KernelLog:
    """The kernel log from now on: open /dev/kmsg at its end, read what came since."""

    def __init__(self) -> None:
        self._fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self._fd, 0, os.SEEK_END)
        self.lines: list[str] = []

    def close(self) -> list[str]:
        """Read what came since the start, stop reading, and return every line."""
        if self._fd >= 0:
            self._read()
            os.close(self._fd)
            self._fd = -1
        return self.lines

    def _read(self) -> None:
        while True:
            try:
                rec = os.read(self._fd, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:  # records overwritten before we read them
                self.lines.append("[ktlskit: kernel log records lost]")
                continue
            line = parse_kmsg(rec.decode(errors="replace"))
            if line is not None:
                self.lines.append(line)

    def facts(self) -> dict[str, list[str]]:
        """The splats (``hosts.splat``) and the lines that look like trouble or kTLS."""
        lines = self.close()
        return {"splats": [str(s) for s in find_splats("\n".join(lines))],
                "log": [ln for ln in lines if LOG_LINE.search(ln)][:MAX_LOG_LINES]}


SYSRQ = Path("/proc/sysrq-trigger")
BLOCKED_HEAD = "Show Blocked State"
MAX_BLOCKED_LINES = 400


def blocked_tasks() -> list[str]:
    """The kernel's list of tasks in uninterruptible sleep, with their stacks (SysRq-w): what
    a case reports when something it waits for is late, so that a hang names its lock."""
    log = KernelLog()
    SYSRQ.write_text("w")
    lines = log.close()
    start = next((i for i, ln in enumerate(lines) if BLOCKED_HEAD in ln), 0)
    return lines[start:start + MAX_BLOCKED_LINES]
