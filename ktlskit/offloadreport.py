"""Host side of ``ktlskit bench offload``: the guest's raw rounds -> summary, table, plot.

Same machinery as ``bench traffic`` (``ktlskit.benchstats``, ``ktlskit.benchplot``): every
figure min/median/max over interleaved rounds, offload/software as a per-round ratio per TLS
version with the spread warning, and a plot of throughput per mode plus one round's
throughput over time per mode with its KeyUpdates marked. Offload modes with KeyUpdates also
get their software windows (``ktlskit.rekeywindows``): a table, and ``plot_rekey()``, the
median round's transfer of each such mode over time with the windows shaded per direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import benchplot, rekeywindows, table
from .benchreport import clock_line, per_round
from .benchstats import Comparison, Spread, compare


@dataclass
class OffloadSummary:
    rates: dict[str, Spread] = field(default_factory=dict)
    tx_share: dict[str, Spread] = field(default_factory=dict)
    rx_share: dict[str, Spread] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    windows: dict[str, rekeywindows.ModeWindows] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"mbytes_per_s": {k: v.to_json() for k, v in self.rates.items()},
                "device_share_tx": {k: v.to_json(4) for k, v in self.tx_share.items()},
                "device_share_rx": {k: v.to_json(4) for k, v in self.rx_share.items()},
                "unsupported": self.unsupported,
                "comparisons": [c.to_json() for c in self.comparisons],
                "warnings": self.warnings,
                "software_windows": {k: v.to_json() for k, v in self.windows.items()}}


def _device(raw: dict[str, Any], mode: str, key: str) -> list[float]:
    return [float(r["transfers"][mode]["device"][key]) for r in raw["round_data"]
            if mode in r["transfers"]]


def _timings(raw: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [r["transfers"][mode]["timing"] for r in raw["round_data"]
            if "timing" in r["transfers"].get(mode, {})]


def _pair_name(mode: dict[str, Any], offload: bool) -> str:
    """The name of the mode that differs from ``mode`` only in offload."""
    rekey = f"+rekey/{mode['rekey_every']}" if mode["rekey_every"] else ""
    return f"tls{mode['version']}-{'offload' if offload else 'software'}{rekey}"


def summarize(raw: dict[str, Any]) -> OffloadSummary:
    s = OffloadSummary(unsupported=dict(raw.get("unsupported", {})))
    for mode in raw["modes"]:
        name = mode["name"]
        if name in s.unsupported:
            continue
        rates = per_round(raw, "transfers", name, "mbytes_per_s")
        if rates is None:
            continue
        s.rates[name] = Spread.of(rates)
        s.tx_share[name] = Spread.of(_device(raw, name, "tx_share"))
        s.rx_share[name] = Spread.of(_device(raw, name, "rx_share"))
        if timings := _timings(raw, name):
            s.windows[name] = rekeywindows.mode_windows(timings)
    s.comparisons = [_ratio(raw, num, den) for num, den in _pairs(raw["modes"])
                     if num in s.rates and den in s.rates]
    s.warnings = [c.warning for c in s.comparisons if c.warning]
    return s


def _pairs(modes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The per-round ratios to report: offload / software, rekey / no rekey, and the
    2023 design (del + add) / the device taking keys."""
    out = [(m["name"], _pair_name(m, False)) for m in modes if m["offload"]]
    out += [(m["name"], _pair_name({**m, "rekey_every": 0}, m["offload"]))
            for m in modes if m["rekey_every"]]
    return out + [(m["name"], m["name"].removesuffix("-deladd"))
                  for m in modes if m.get("deladd")]


def _ratio(raw: dict[str, Any], num: str, den: str) -> Comparison:
    return compare(f"{num} / {den}", per_round(raw, "transfers", num, "mbytes_per_s") or [],
                   per_round(raw, "transfers", den, "mbytes_per_s") or [])


def render(raw: dict[str, Any], s: OffloadSummary, host: dict[str, Any], accel: str) -> str:
    aead = raw.get("kernel_aead", {})
    lines = [f"kernel {raw['kernel']} under {accel}, netdevsim fake TLS offload, {raw['cipher']}; "
             f"kernel AEAD {aead.get('name', '?')} = {', '.join(aead.get('in_use', [])) or '?'} "
             "(the device's crypto and software kTLS both use it)",
             f"host: {host.get('cpu', '?')} x{host.get('cpus', '?')}, load average "
             f"{' '.join(map(str, host.get('loadavg_before', [])))} before, "
             f"{' '.join(map(str, host.get('loadavg_after', [])))} after",
             clock_line(host),
             f"{raw['rounds']} interleaved rounds, {raw['bytes']} bytes per transfer (one way, "
             "client TX -> server RX); figures are median (min..max) over the rounds; device "
             "share = bytes the device encrypted (TX) / decrypted (RX) over record bytes", ""]
    rows: list[Sequence[object]] = []
    for mode in raw["modes"]:
        name = mode["name"]
        if name in s.unsupported:
            rows.append((name, s.unsupported[name], "-", "-"))
        elif name in s.rates:
            rows.append((name, s.rates[name].text(), s.tx_share[name].text(),
                         s.rx_share[name].text()))
    lines.append(table.render(["mode", "MB/s", "device share TX", "device share RX"], rows))
    lines.append("")
    lines += _windows_lines(s)
    lines += [c.text() for c in s.comparisons]
    lines += [f"warning: {w}" for w in s.warnings]
    return "\n".join(lines) + "\n"


WINDOWS_NOTE = ("software windows: gaps in which the device handled no byte of the stream, "
                "between two of its keys (tls/epochs; TX: port a, RX: port b); per transfer: "
                "windows; over every window of every round: ms and the stream's KiB the device "
                "did not handle (0 KiB: a pause, not software), median / max; time share: "
                "fraction of the transfer in windows, median (min..max) over rounds")


WINDOW_COLORS = {"tx": "#fd8d3c", "rx": "#31a354"}


def _med_max(spread: Spread | None, digits: int) -> str:
    return f"{spread.median:.{digits}f} / {spread.max:.{digits}f}" if spread else "-"


def _windows_lines(s: OffloadSummary) -> list[str]:
    if not s.windows:
        return []
    rows: list[Sequence[object]] = []
    for name, w in s.windows.items():
        for d in rekeywindows.PORTS:
            n = w.ms[d].n if w.ms[d] else 0
            rows.append((name, d.upper(), w.rekeys.text(0), f"{n / w.rekeys.n:.1f}",
                         _med_max(w.ms[d], 3), _med_max(w.kib[d], 0), w.share[d].text(3)))
    out = [WINDOWS_NOTE, table.render(
        ["mode", "dir", "KeyUpdates", "windows", "ms med / max", "KiB med / max",
         "time share"], rows), ""]
    lost = {n: w.lost_epochs for n, w in s.windows.items() if w.lost_epochs}
    return out + [f"warning: {n}: {k} epochs left the ring before they were read (windows "
                  "missing)" for n, k in lost.items()]


def _bar_label(name: str) -> str:
    """``tls1.3-offload+rekey/32-deladd`` on four lines."""
    return name.replace("-", "\n", 1).replace("+", "\n+").replace("-deladd", "\n-deladd")


def plot(raw: dict[str, Any], s: OffloadSummary, path: Path) -> Path:
    """Throughput per mode with spread; the last round's throughput over time per mode,
    KeyUpdates marked."""
    fig = benchplot.figure(1, 2, (6.5, 4.4))
    ax_b, ax_t = fig.axes
    names = list(s.rates)
    benchplot.spread_bars(ax_b, [_bar_label(n) for n in names],
                          [s.rates[n] for n in names],
                          [per_round(raw, "transfers", n, "mbytes_per_s") or [] for n in names],
                          "MB/s", f"{raw['cipher']}, {raw['rounds']} rounds")
    last = raw["round_data"][-1]["transfers"] if raw["round_data"] else {}
    benchplot.timeseries(ax_t, {n: [tuple(x) for x in t["samples"]] for n, t in last.items()},
                         {n: t["key_updates"] for n, t in last.items()},
                         title="last round, throughput over time")
    fig.suptitle(f"ktlskit bench offload: kernel {raw['kernel']}")
    return benchplot.save(fig, path)


def _median_transfer(raw: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    """(round index, transfer) of the round with the median throughput of ``name``
    (the lower of the two middle ones for an even count)."""
    runs = sorted((r["transfers"][name]["mbytes_per_s"], i, r["transfers"][name])
                  for i, r in enumerate(raw["round_data"])
                  if "timing" in r["transfers"].get(name, {}))
    _, index, t = runs[(len(runs) - 1) // 2]
    return index, t


def plot_rekey(raw: dict[str, Any], s: OffloadSummary, path: Path) -> Path | None:
    """Per offload mode with KeyUpdates, its median round's transfer: received MB/s in
    ``rekeywindows.BIN_NS`` bins, the sender's KeyUpdates marked, the software windows
    shaded, TX (left) and RX (right). None when no mode has windows to show."""
    if not s.windows:
        return None
    fig = benchplot.figure(len(s.windows), 2, (7.5, 3.2))
    label = "received MB/s"
    for row, name in enumerate(s.windows):
        index, t = _median_transfer(raw, name)
        timing = t["timing"]
        t0 = rekeywindows.span(timing)[0]
        series = {label: rekeywindows.binned(timing["progress"], t0)}
        marks = {label: [(k - t0) / 1e9 for k in timing["key_updates_ns"]]}
        for col, (d, ws) in enumerate(rekeywindows.transfer_windows(timing).items()):
            benchplot.timeseries(
                fig.axes[2 * row + col], series, marks,
                {label: [((w.start_ns - t0) / 1e9, (w.end_ns - t0) / 1e9) for w in ws]},
                title=f"{name}, round {index + 1}: {d.upper()} (port "
                      f"{rekeywindows.PORTS[d]})\n{rekeywindows.describe(ws)}",
                event_color="#636363", window_color=WINDOW_COLORS[d])
    fig.suptitle(f"ktlskit bench offload, kernel {raw['kernel']}: grey lines, the KeyUpdates "
                 "sent; shaded, the device's software windows (TX orange, RX green); "
                 f"throughput in {rekeywindows.BIN_NS // 1_000_000} ms bins")
    return benchplot.save(fig, path)
