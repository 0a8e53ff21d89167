"""Software windows of a rekey with device offload, from netdevsim's timed key epochs.

``bench offload`` keeps, for each transfer of an offload mode with KeyUpdates, its *timing*
(the JSON the guest wrote; every time is ``CLOCK_MONOTONIC`` in ns, one clock for the guest's
Python and netdevsim's ``ktime_get_ns()``)::

    {"key_updates_ns": [...],          # the sender, right before it sent each KeyUpdate
     "key_starts": [...],              # where each new key starts (wire bytes into the stream)
     "wire_bytes": N,                  # the stream's length on the wire
     "progress": [[ns, bytes], ...],   # the receiver, after each read: bytes so far
     "epochs": {"a": [...], "b": [...]},   # the ports' tls/epochs entries of this transfer
     "epochs_lost": {"a": 0, "b": 0}}  # entries the 256-entry ring dropped before we read it

A *software window* of a direction is a gap in which the device handled none of the
stream's bytes between two of its key epochs: from the last byte under one key to the first
byte under a later one (``next.first_ns - prev.last_ns``, over epochs that had bytes; an epoch
without bytes is a key the device never used, inside the window). TX windows come from port
a's ``tx`` epochs (the sender's port), RX windows from port b's ``rx`` epochs. A stream that
ends while a direction is in software (a key starts after the device's last one) ends its
last window at the receiver's last read (``until_end``).

The epochs' TCP sequence numbers place each window in the stream (offsets from the
direction's first key, which starts the stream). ``software_bytes``: from the earlier key's
start to the later key's, less what the device handled under the earlier one; a window of
0 bytes is a pause of the stream (the KeyUpdate and the key install), not software: the
device handled every byte on both sides of it. The window is attributed to the first
KeyUpdate whose new key starts in that range (``key_update``, an index into the sender's
KeyUpdates), ``rekeys`` counts them all (more than one: the device skipped keys). Times
cannot attribute: the sender's KeyUpdate stamps run ahead of the device by what the socket
buffers hold. Everything here is arithmetic on that JSON, so ``--from-json`` recomputes it.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from .benchstats import Spread

PORTS = {"tx": "a", "rx": "b"}  # TX on the client's port, RX on the server's
BIN_NS = 20_000_000  # throughput bins of the plot: 20 ms


KEY_UPDATE_WIRE = 5 + 5 + 1 + 16  # TLS 1.3 record header, KeyUpdate, inner type, tag


def layout(nbytes: int, record: int, every: int, overhead: int) -> dict[str, Any]:
    """``key_starts`` and ``wire_bytes`` of ``benchstream.send_all``'s stream: ``nbytes`` in
    ``record``-sized records of ``overhead`` bytes more on the wire, a KeyUpdate after every
    ``every`` records but the last."""
    records = -(-nbytes // record)
    rekeys = (records - 1) // every if every else 0
    key = every * (record + overhead) + KEY_UPDATE_WIRE
    return {"key_starts": [k * key for k in range(1, rekeys + 1)],
            "wire_bytes": nbytes + records * overhead + rekeys * KEY_UPDATE_WIRE}


@dataclass(frozen=True)
class Window:
    """One software window of ``direction`` (monotonic ns)."""

    direction: str
    start_ns: int
    end_ns: int
    key_update: int | None  # the first KeyUpdate whose key starts in it; None: none
    rekeys: int = 1  # KeyUpdates whose keys start in it
    until_end: bool = False  # the stream ended before the device had bytes under a later key
    software_bytes: int = 0  # the stream's bytes in it that the device did not handle

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ms": round(self.ms, 4)}


def _window(direction: str, prev: Mapping[str, Any], end_ns: int, lo: int, hi: int,
            key_starts: Sequence[int], until_end: bool = False) -> Window:
    """The window after ``prev`` (which starts ``lo`` bytes into the stream) up to ``end_ns``
    and ``hi`` bytes into the stream."""
    first = bisect.bisect_right(key_starts, lo)
    last = bisect.bisect_right(key_starts, hi)
    return Window(direction, int(prev["last_ns"]), end_ns, first if last > first else None,
                  last - first, until_end, max(0, hi - lo - int(prev["nbytes"])))


def direction_windows(epochs: Sequence[Mapping[str, Any]], direction: str,
                      key_starts: Sequence[int], wire_bytes: int, end_ns: int) -> list[Window]:
    """The windows of ``direction`` between its ``epochs`` (``tls/epochs`` entries, any
    order; the first starts the stream); ``end_ns``: the end of the stream, for a window
    still open there."""
    own = sorted((e for e in epochs if e["direction"] == direction), key=lambda e: e["index"])
    if not own:
        return []
    base = int(own[0]["start_seq"])

    def at(e: Mapping[str, Any]) -> int:
        return (int(e["start_seq"]) - base) % (1 << 32)

    used = [e for e in own if e["nbytes"] > 0]  # a key without bytes lies inside a window
    out = [_window(direction, p, int(n["first_ns"]), at(p), at(n), key_starts)
           for p, n in pairwise(used)]
    if used and key_starts and key_starts[-1] > at(used[-1]) and end_ns > used[-1]["last_ns"]:
        out.append(_window(direction, used[-1], end_ns, at(used[-1]), wire_bytes, key_starts,
                           until_end=True))
    return out


def span(timing: Mapping[str, Any]) -> tuple[int, int]:
    """The receiver's first and last read (ns); (0, 0) without progress."""
    progress = timing.get("progress") or []
    return (int(progress[0][0]), int(progress[-1][0])) if progress else (0, 0)


def transfer_windows(timing: Mapping[str, Any]) -> dict[str, list[Window]]:
    """``{"tx": [...], "rx": [...]}`` for one transfer's timing."""
    end = span(timing)[1]
    starts = [int(k) for k in timing.get("key_starts", [])]
    wire = int(timing.get("wire_bytes", 0))
    epochs = timing.get("epochs", {})
    return {d: direction_windows(epochs.get(port, []), d, starts, wire, end)
            for d, port in PORTS.items()}


def share(windows: Sequence[Window], start_ns: int, end_ns: int) -> float:
    """The fraction of ``start_ns..end_ns`` that the windows cover (they do not overlap)."""
    if end_ns <= start_ns:
        return 0.0
    covered = sum(max(0, min(w.end_ns, end_ns) - max(w.start_ns, start_ns)) for w in windows)
    return covered / (end_ns - start_ns)


def binned(progress: Sequence[Sequence[int]], t0_ns: int,
           width_ns: int = BIN_NS) -> list[tuple[float, int]]:
    """Cumulative (seconds since ``t0_ns``, bytes) at every bin edge and at the last read:
    a per-read series made light for ``benchplot.timeseries``."""
    if not progress:
        return []
    times = [int(p[0]) for p in progress]
    out = []
    edge = t0_ns
    while edge < times[-1]:
        i = bisect.bisect_right(times, edge)
        out.append(((edge - t0_ns) / 1e9, int(progress[i - 1][1]) if i else 0))
        edge += width_ns
    out.append(((times[-1] - t0_ns) / 1e9, int(progress[-1][1])))
    return out


@dataclass(frozen=True)
class ModeWindows:
    """One mode's windows over its rounds: KeyUpdates per transfer, every window's length
    and software bytes (pooled over the rounds, ms and KiB; None: no window) and each
    round's share of time in them."""

    rekeys: Spread
    ms: dict[str, Spread | None]
    kib: dict[str, Spread | None]
    share: dict[str, Spread]
    lost_epochs: int

    def to_json(self) -> dict[str, Any]:
        return {"rekeys": self.rekeys.to_json(0),
                "windows_ms": {d: s.to_json(4) if s else None for d, s in self.ms.items()},
                "software_kib": {d: s.to_json(1) if s else None for d, s in self.kib.items()},
                "time_share": {d: s.to_json(4) for d, s in self.share.items()},
                "lost_epochs": self.lost_epochs}


def mode_windows(timings: Sequence[Mapping[str, Any]]) -> ModeWindows:
    """Summarise the timings of one mode's transfers (one per round)."""
    pooled: dict[str, list[float]] = {d: [] for d in PORTS}
    kib: dict[str, list[float]] = {d: [] for d in PORTS}
    shares: dict[str, list[float]] = {d: [] for d in PORTS}
    for t in timings:
        start, end = span(t)
        for d, ws in transfer_windows(t).items():
            pooled[d] += [w.ms for w in ws]
            kib[d] += [w.software_bytes / 1024 for w in ws]
            shares[d].append(share(ws, start, end))
    return ModeWindows(
        rekeys=Spread.of([len(t.get("key_updates_ns", [])) for t in timings]),
        ms={d: Spread.of(v) if v else None for d, v in pooled.items()},
        kib={d: Spread.of(v) if v else None for d, v in kib.items()},
        share={d: Spread.of(v) for d, v in shares.items()},
        lost_epochs=sum(sum(t.get("epochs_lost", {}).values()) for t in timings))


def describe(windows: Sequence[Window]) -> str:
    """``N windows, median X ms, max Y ms, software KiB median Z`` (or ``no window``)."""
    if not windows:
        return "no window"
    sp = Spread.of([w.ms for w in windows])
    kib = Spread.of([w.software_bytes / 1024 for w in windows])
    return (f"{sp.n} windows, median {sp.median:.2f} ms, max {sp.max:.2f} ms, software KiB "
            f"median {kib.median:.0f}")


def brief(timing: Mapping[str, Any]) -> str:
    """One transfer's windows in a few words, for a progress line."""
    return "; ".join([f"{len(timing.get('key_updates_ns', []))} KeyUpdates"] + [
        f"{d.upper()} {describe(ws)}" for d, ws in transfer_windows(timing).items()])
