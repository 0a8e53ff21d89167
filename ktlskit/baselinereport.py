"""Host side of ``ktlskit bench offload --baseline-until``: boots of two kernels -> figures.

The raw document (``ktlskit.commands.offloadbaseline``) holds, per boot, which kernel ran
(*before*: the series up to a sub-series; *after*: the whole series), its pair, and the raw
rounds of ``ktlskit.offloadbench``. Derived here, with ``ktlskit.benchstats``:

- a boot's figure for a mode is the median of its rounds; MB/s per kernel is the spread
  (median, min..max) of its boots' figures;
- after / before is one ratio per pair of boots (the before boot and the after boot right
  behind it), summarised with the spread warning;
- offload / software per kernel is the per-round ratio inside each boot, over all boots of
  that kernel; its after / before again per pair of boots (boot speed cancels out in it).

``BUDGET`` is what the fast path may lose: the issue allows the offload path without rekey
to be at most 2% slower after the series. It is judged on MB/s and, where the rounds have it,
on MB per CPU-second (``benchstream.Transfer.cpu_s``: both ends' and the kernel threads' CPU
time, without the waits MB/s include; under ``--icount`` an instruction count).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import benchplot, table
from .benchreport import clock_line, per_round
from .benchstats import Comparison, Spread, compare
from .offloadbench import ModeSpec

KERNELS = ("before", "after")
PATHS = ("offload", "software")
BUDGET = 0.98
RATE = "mbytes_per_s"
CPU_RATE = "mbytes_per_cpu_s"
CPU = " cpu"  # suffix of the after_before and budget keys of CPU_RATE


def mode_name(version: str, path: str) -> str:
    """The offloadbench mode of a TLS version and path (``tls1.3-offload``)."""
    return ModeSpec(version, path == "offload").name


def boots_of(raw: dict[str, Any], kernel: str) -> list[dict[str, Any]]:
    """The offloadbench documents of ``kernel``'s boots, in pair order."""
    return [b["raw"] for b in sorted(raw["boots"], key=lambda b: b["pair"])
            if b["kernel"] == kernel]


def boot_figures(raw: dict[str, Any], kernel: str, mode: str,
                 key: str = RATE) -> list[float] | None:
    """Per boot of ``kernel``, the median ``key`` (MB/s) of ``mode`` over its rounds; None
    when a boot did not run the mode (or its rounds lack ``key``)."""
    out = []
    for boot in boots_of(raw, kernel):
        rates = per_round(boot, "transfers", mode, key)
        if rates is None:
            return None
        out.append(statistics.median(rates))
    return out


def pooled_rounds(raw: dict[str, Any], kernel: str, mode: str) -> list[float] | None:
    """Every round's MB/s of ``mode`` over all boots of ``kernel``, boot after boot."""
    out: list[float] = []
    for boot in boots_of(raw, kernel):
        rates = per_round(boot, "transfers", mode, "mbytes_per_s")
        if rates is None:
            return None
        out += rates
    return out


def unsupported(raw: dict[str, Any]) -> dict[str, str]:
    """``mode: "before kernel: reason"`` for each mode a boot did not run."""
    out: dict[str, str] = {}
    for b in raw["boots"]:
        for mode, why in b["raw"].get("unsupported", {}).items():
            out.setdefault(mode, f"{b['kernel']} kernel: {why}")
    return out


@dataclass(frozen=True)
class Budget:
    """Whether an after / before ratio stays within ``BUDGET``: only every pair on one side
    of it decides; pairs on both sides leave it open, whatever the median says."""

    median: float
    pairs_below: int
    pairs: int

    @classmethod
    def of(cls, c: Comparison) -> Budget:
        return cls(c.spread.median, sum(r < BUDGET for r in c.ratios), c.spread.n)

    @property
    def verdict(self) -> str:
        if self.pairs_below == 0:
            return "met"
        return "missed" if self.pairs_below == self.pairs else "not resolved"

    def text(self) -> str:
        if self.verdict == "met":
            return f"met by every pair (all >= {BUDGET:.3f})"
        if self.verdict == "missed":
            return f"missed by every pair (all < {BUDGET:.3f})"
        side = "above" if self.median >= BUDGET else "below"
        return (f"not resolved by this run: {self.pairs_below} of {self.pairs} pairs below "
                f"{BUDGET:.3f}, the others not (median {self.median:.3f}, {side} it)")


@dataclass
class BaselineSummary:
    rates: dict[str, dict[str, Spread]] = field(default_factory=dict)  # kernel -> mode ->
    cpu_rates: dict[str, dict[str, Spread]] = field(default_factory=dict)  # same, CPU_RATE
    after_before: dict[str, Comparison] = field(default_factory=dict)  # mode or tlsV-ratio
    offload_vs_software: dict[str, dict[str, Comparison]] = field(default_factory=dict)
    budget: dict[str, Budget] = field(default_factory=dict)  # offload mode ->
    unsupported: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"mbytes_per_s": {k: {m: s.to_json() for m, s in v.items()}
                                 for k, v in self.rates.items()},
                "mbytes_per_cpu_s": {k: {m: s.to_json() for m, s in v.items()}
                                     for k, v in self.cpu_rates.items()},
                "after_before": {k: c.to_json() for k, c in self.after_before.items()},
                "offload_vs_software": {k: {v: c.to_json() for v, c in d.items()}
                                        for k, d in self.offload_vs_software.items()},
                "budget": {"min_ratio": BUDGET, **{k: {"verdict": b.verdict,
                                                       "pairs_below": b.pairs_below,
                                                       "pairs": b.pairs}
                                                   for k, b in self.budget.items()}},
                "unsupported": self.unsupported, "warnings": self.warnings}


def ratio_key(version: str) -> str:
    """The after_before key of offload / software of a TLS version."""
    return f"tls{version}-offload/software"


def summarize(raw: dict[str, Any]) -> BaselineSummary:
    s = BaselineSummary(unsupported=unsupported(raw))
    for kernel in KERNELS:
        s.rates[kernel] = {}
        s.cpu_rates[kernel] = {}
        s.offload_vs_software[kernel] = {}
        for v in raw["versions"]:
            for path in PATHS:
                if (figs := boot_figures(raw, kernel, mode_name(v, path))) is not None:
                    s.rates[kernel][mode_name(v, path)] = Spread.of(figs)
                if (figs := boot_figures(raw, kernel, mode_name(v, path), CPU_RATE)) is not None:
                    s.cpu_rates[kernel][mode_name(v, path)] = Spread.of(figs)
            off, sw = (pooled_rounds(raw, kernel, mode_name(v, p)) for p in PATHS)
            if off is not None and sw is not None:
                s.offload_vs_software[kernel][v] = compare(
                    f"tls{v} {kernel}: offload / software (per round)", off, sw, reference=None)
    for v in raw["versions"]:
        for path in PATHS:
            _add_after_before(s, raw, v, path)
            _add_after_before(s, raw, v, path, CPU_RATE)
        _add_ratio_after_before(s, raw, v)
    s.warnings = [c.warning for c in s.after_before.values() if c.warning]
    return s


def _add_after_before(s: BaselineSummary, raw: dict[str, Any], version: str,
                      path: str, key: str = RATE) -> None:
    mode = mode_name(version, path)
    before, after = (boot_figures(raw, k, mode, key) for k in KERNELS)
    if before is None or after is None or 0.0 in before:
        return  # not run (or rounds without ``key``), or a zero rate: no ratio
    name = mode + (CPU if key == CPU_RATE else "")
    c = compare(f"{name} after / before", after, before, per="pair")
    s.after_before[name] = c
    if path == "offload":
        s.budget[name] = Budget.of(c)


def _add_ratio_after_before(s: BaselineSummary, raw: dict[str, Any], version: str) -> None:
    per_kernel = []
    for kernel in KERNELS:
        off, sw = (boot_figures(raw, kernel, mode_name(version, p)) for p in PATHS)
        if off is None or sw is None:
            return
        per_kernel.append([o / w for o, w in zip(off, sw, strict=True)])
    s.after_before[ratio_key(version)] = compare(
        f"tls{version} offload / software, after / before", per_kernel[1], per_kernel[0],
        per="pair")


# ---- text -------------------------------------------------------------------------------------

def _kernel_line(raw: dict[str, Any], kernel: str) -> str:
    k = raw["kernels"][kernel]
    what = f"patches/series up to {k['until']}" if k["until"] else "the whole patches/series"
    return (f"{kernel}: {what}, {k['patches']} patches (last "
            f"{k['last_patch']}), series {k['series_digest']}, {k['bzimage']}")


def header(raw: dict[str, Any], host: dict[str, Any], accel: str) -> list[str]:
    loads = [b["host"]["loadavg_before"][0] for b in raw["boots"]]
    first = raw["boots"][0]["raw"] if raw["boots"] else {}
    boot_s = [b["seconds"] for b in raw["boots"]]
    return [
        f"kernel {first.get('kernel', '?')} under {accel}, netdevsim fake TLS offload, "
        f"{raw['cipher']}, no KeyUpdates",
        _kernel_line(raw, "before"), _kernel_line(raw, "after"),
        f"host: {host.get('cpu', '?')} x{host.get('cpus', '?')}, load average "
        f"{' '.join(map(str, host.get('loadavg_before', [])))} before, "
        f"{' '.join(map(str, host.get('loadavg_after', [])))} after; 1-min load at each "
        f"boot {min(loads, default=0):.2f}..{max(loads, default=0):.2f}",
        clock_line(host),
        f"wall time {raw['wall_s']:.0f} s: builds {raw['build_s']:.0f} s, {len(boot_s)} boots "
        f"{sum(boot_s):.0f} s ({min(boot_s, default=0):.0f}..{max(boot_s, default=0):.0f} s "
        "each)",
        f"{raw['pairs']} pairs of boots (before, after, before, ...), {raw['rounds_per_boot']} "
        f"interleaved rounds per boot, {raw['bytes']} bytes per transfer (one way)",
        "MB/s: median (min..max) over the boots of each boot's median over its rounds; "
        "MB/CPU-s: the same per CPU-second (both ends and the kernel's threads; waits left "
        "out); after / before: "
        "one ratio per pair of boots; offload / software: per round inside each boot, all "
        "boots of the kernel", ""]


def _ratio_text(c: Comparison | None) -> str:
    return c.spread.text(3) if c else "-"


def _rate_text(s: BaselineSummary, kernel: str, mode: str, cpu: bool = False) -> str:
    spread = (s.cpu_rates if cpu else s.rates)[kernel].get(mode)
    return spread.text() if spread else s.unsupported.get(mode, "-")


def table_rows(raw: dict[str, Any], s: BaselineSummary) -> list[Sequence[object]]:
    rows: list[Sequence[object]] = []
    for v in raw["versions"]:
        for path in PATHS:
            mode = mode_name(v, path)
            rows.append((v, f"{path} MB/s", _rate_text(s, "before", mode),
                         _rate_text(s, "after", mode), _ratio_text(s.after_before.get(mode))))
            if mode + CPU in s.after_before:
                rows.append((v, f"{path} MB/CPU-s", _rate_text(s, "before", mode, True),
                             _rate_text(s, "after", mode, True),
                             _ratio_text(s.after_before.get(mode + CPU))))
        rows.append((v, "offload / software",
                     *(_ratio_text(s.offload_vs_software[k].get(v)) for k in KERNELS),
                     _ratio_text(s.after_before.get(ratio_key(v)))))
    return rows


def render(raw: dict[str, Any], s: BaselineSummary, host: dict[str, Any], accel: str) -> str:
    until = raw["kernels"]["before"]["until"]
    lines = header(raw, host, accel)
    lines.append(table.render(["TLS", "figure", f"before (up to {until})",
                               "after (whole series)", "after / before (ratio)"],
                              table_rows(raw, s)))
    lines.append("")
    lines += [f"budget: {mode} after / before >= {BUDGET:.3f}: {b.text()}"
              for mode, b in s.budget.items()]
    lines += [f"warning: {w}" for w in s.warnings]
    return "\n".join(lines) + "\n"


# ---- plot -------------------------------------------------------------------------------------

def plot(raw: dict[str, Any], s: BaselineSummary, path: Path) -> Path:
    """Per TLS version: MB/s of each path on each kernel (every boot's figure on its bar),
    and the after / before ratios of every pair with 1.0 and the budget marked."""
    versions = raw["versions"]
    fig = benchplot.figure(2, len(versions), (5.2, 4.0))
    for col, v in enumerate(versions):
        bars = [(f"{p}\n{k}", k, mode_name(v, p)) for p in PATHS for k in KERNELS
                if mode_name(v, p) in s.rates[k]]
        benchplot.spread_bars(fig.axes[col], [b[0] for b in bars],
                              [s.rates[k][m] for _, k, m in bars],
                              [boot_figures(raw, k, m) or [] for _, k, m in bars], "MB/s",
                              f"TLS {v}: MB/s per boot")
        keys = [k for k in (*(mode_name(v, p) for p in PATHS), ratio_key(v))
                if k in s.after_before]
        ax = fig.axes[len(versions) + col]
        comps = [s.after_before[k] for k in keys]
        benchplot.spread_bars(ax, [k.removeprefix(f"tls{v}-").replace("/", "/\n")
                                   for k in keys], [c.spread for c in comps],
                              [c.ratios for c in comps], "after / before",
                              f"TLS {v}: after / before per pair of boots")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(BUDGET, color="#de2d26", linestyle="--", linewidth=0.8,
                   label=f"budget {BUDGET:.2f}")
        low = min([c.spread.min for c in comps] + [BUDGET])
        high = max([c.spread.max for c in comps] + [1.0])
        ax.set_ylim(low - 0.05, high + 0.05)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(f"ktlskit bench offload --baseline-until {raw['baseline_until']}: "
                 f"{raw['pairs']} pairs of boots, {raw['rounds_per_boot']} rounds each")
    return benchplot.save(fig, path)
