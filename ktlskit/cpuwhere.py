"""Where a guest's CPU went during a transfer: per-CPU ticks by kind (``/proc/stat``) and
softirqs raised by kind (``/proc/softirqs``), as deltas between two snapshots.

Under QEMU's ``-icount`` the guest clock counts instructions, so a transfer that is slower in
guest time executed more instructions; these deltas say on which CPU and in which context
(task, softirq, idle) they went. Ticks are the kernel's own accounting at ``HZ``: coarse, but
taken by the guest, so they need no tracer and no kernel option.
"""

from __future__ import annotations

from pathlib import Path

STAT_KINDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq")
"""The first seven columns of a ``cpuN`` line of /proc/stat, in the kernel's order."""
SOFTIRQ_KINDS = ("NET_TX", "NET_RX", "TIMER", "HRTIMER", "SCHED", "RCU", "TASKLET")
"""The softirqs a network transfer moves."""

Snapshot = dict[str, dict[str, int]]
"""``{"cpu0": {"user": ticks, ..., "NET_RX": count, ...}, ...}``"""


def parse_stat(text: str) -> Snapshot:
    """The per-CPU lines of /proc/stat (not the ``cpu`` total)."""
    out: Snapshot = {}
    for line in text.splitlines():
        name, *cols = line.split()
        if name.startswith("cpu") and name != "cpu":
            out[name] = dict(zip(STAT_KINDS, map(int, cols[:len(STAT_KINDS)]), strict=True))
    return out


def parse_softirqs(text: str) -> Snapshot:
    """/proc/softirqs: a header of CPU names, then one line per softirq kind."""
    lines = text.splitlines()
    cpus = [c.lower() for c in lines[0].split()]
    out: Snapshot = {c: {} for c in cpus}
    for line in lines[1:]:
        kind, *counts = line.split()
        kind = kind.rstrip(":")
        if kind in SOFTIRQ_KINDS:
            for cpu, n in zip(cpus, counts, strict=True):
                out[cpu][kind] = int(n)
    return out


def snapshot(proc: Path = Path("/proc")) -> Snapshot:
    stat = parse_stat((proc / "stat").read_text())
    soft = parse_softirqs((proc / "softirqs").read_text())
    return {cpu: {**ticks, **soft.get(cpu, {})} for cpu, ticks in stat.items()}


def since(now: Snapshot, then: Snapshot) -> Snapshot:
    """Per CPU, what moved; kinds that did not are left out."""
    out: Snapshot = {}
    for cpu, vals in now.items():
        moved = {k: v - then.get(cpu, {}).get(k, 0) for k, v in vals.items()}
        out[cpu] = {k: d for k, d in moved.items() if d}
    return out
