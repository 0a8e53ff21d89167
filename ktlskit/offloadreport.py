"""Host side of ``ktlskit bench offload``: the guest's raw rounds -> summary, table, plot.

Same machinery as ``bench traffic`` (``ktlskit.benchstats``, ``ktlskit.benchplot``): every
figure min/median/max over interleaved rounds, offload/software as a per-round ratio per TLS
version with the spread warning, and a plot of throughput per mode plus one round's
throughput over time per mode with its KeyUpdates marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import benchplot, table
from .benchreport import per_round
from .benchstats import Comparison, Spread, compare


@dataclass
class OffloadSummary:
    rates: dict[str, Spread] = field(default_factory=dict)
    tx_share: dict[str, Spread] = field(default_factory=dict)
    rx_share: dict[str, Spread] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"mbytes_per_s": {k: v.to_json() for k, v in self.rates.items()},
                "device_share_tx": {k: v.to_json(4) for k, v in self.tx_share.items()},
                "device_share_rx": {k: v.to_json(4) for k, v in self.rx_share.items()},
                "unsupported": self.unsupported,
                "comparisons": [c.to_json() for c in self.comparisons],
                "warnings": self.warnings}


def _device(raw: dict[str, Any], mode: str, key: str) -> list[float]:
    return [float(r["transfers"][mode]["device"][key]) for r in raw["round_data"]
            if mode in r["transfers"]]


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
    for mode in raw["modes"]:
        if not mode["offload"]:
            continue
        off, sw = mode["name"], _pair_name(mode, False)
        if off in s.rates and sw in s.rates:
            s.comparisons.append(compare(f"{off} / {sw}",
                                         per_round(raw, "transfers", off, "mbytes_per_s") or [],
                                         per_round(raw, "transfers", sw, "mbytes_per_s") or []))
    for mode in raw["modes"]:
        if mode["rekey_every"]:
            plain = {**mode, "rekey_every": 0}
            base = _pair_name(plain, mode["offload"])
            if mode["name"] in s.rates and base in s.rates:
                s.comparisons.append(compare(
                    f"{mode['name']} / {base}",
                    per_round(raw, "transfers", mode["name"], "mbytes_per_s") or [],
                    per_round(raw, "transfers", base, "mbytes_per_s") or []))
    s.warnings = [c.warning for c in s.comparisons if c.warning]
    return s


def render(raw: dict[str, Any], s: OffloadSummary, host: dict[str, Any], accel: str) -> str:
    aead = raw.get("kernel_aead", {})
    lines = [f"kernel {raw['kernel']} under {accel}, netdevsim fake TLS offload, {raw['cipher']}; "
             f"kernel AEAD {aead.get('name', '?')} = {', '.join(aead.get('in_use', [])) or '?'} "
             "(the device's crypto and software kTLS both use it)",
             f"host: {host.get('cpu', '?')} x{host.get('cpus', '?')}, load average "
             f"{' '.join(map(str, host.get('loadavg_before', [])))} before, "
             f"{' '.join(map(str, host.get('loadavg_after', [])))} after",
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
    lines += [c.text() for c in s.comparisons]
    lines += [f"warning: {w}" for w in s.warnings]
    return "\n".join(lines) + "\n"


def plot(raw: dict[str, Any], s: OffloadSummary, path: Path) -> Path:
    """Throughput per mode with spread; the last round's throughput over time per mode,
    KeyUpdates marked."""
    fig = benchplot.figure(1, 2, (6.5, 4.4))
    ax_b, ax_t = fig.axes
    names = list(s.rates)
    benchplot.spread_bars(ax_b, [n.replace("-", "\n", 1) for n in names],
                          [s.rates[n] for n in names],
                          [per_round(raw, "transfers", n, "mbytes_per_s") or [] for n in names],
                          "MB/s", f"{raw['cipher']}, {raw['rounds']} rounds")
    last = raw["round_data"][-1]["transfers"] if raw["round_data"] else {}
    benchplot.timeseries(ax_t, {n: [tuple(x) for x in t["samples"]] for n, t in last.items()},
                         {n: t["key_updates"] for n, t in last.items()},
                         title="last round, throughput over time")
    fig.suptitle(f"ktlskit bench offload: kernel {raw['kernel']}")
    return benchplot.save(fig, path)
