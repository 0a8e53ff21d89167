"""PNG plots for the benchmarks (matplotlib, Agg canvas, no pyplot state).

Every function draws into an Axes or writes one PNG; nothing here knows a benchmark's JSON:
the report modules pass plain numbers. ``stage_bars()`` is for ``bench pipeline``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib costs 0.6 s to import: only the commands that plot pay it
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from .benchstats import Spread

DPI = 100


def figure(rows: int, cols: int = 1, size: tuple[float, float] = (8.0, 4.0)) -> Figure:
    """A figure with ``rows`` x ``cols`` axes, each ``size`` inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    FigureCanvasAgg(fig)
    fig.subplots(rows, cols, squeeze=False)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG (parent directories created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def spread_bars(ax: Axes, labels: Sequence[str], spreads: Sequence[Spread],
                samples: Sequence[Sequence[float]], ylabel: str, title: str = "") -> None:
    """A bar per label at the median, an error bar from min to max, and every round's value."""
    xs = range(len(labels))
    medians = [s.median for s in spreads]
    err = [[s.median - s.min for s in spreads], [s.max - s.median for s in spreads]]
    ax.bar(xs, medians, color="#9ecae1", edgecolor="#3182bd", label="median")
    ax.errorbar(xs, medians, yerr=err, fmt="none", ecolor="black", capsize=6,
                label="min..max")
    for x, values in zip(xs, samples, strict=True):
        ax.scatter([x] * len(values), values, s=14, color="#08519c", zorder=3)
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")


def distribution(ax: Axes, groups: Mapping[str, Sequence[float]], ylabel: str,
                 floor: float | None = None, floor_label: str = "", title: str = "") -> None:
    """A box per group with every sample on it; ``floor`` as a dashed line (log scale)."""
    names = [n for n, v in groups.items() if v]
    data = [list(groups[n]) for n in names]
    if data:
        ax.boxplot(data, showfliers=False)
        for i, values in enumerate(data, start=1):
            offsets = [i + ((k % 7) - 3) * 0.03 for k in range(len(values))]
            ax.scatter(offsets, values, s=8, alpha=0.6, color="#e6550d", zorder=3)
        ax.set_xticks(range(1, len(names) + 1), names)
        ax.set_yscale("log")
    if floor is not None and floor > 0:
        ax.axhline(floor, linestyle="--", color="black", label=floor_label or "floor")
        ax.set_yscale("log")
        ax.legend(loc="best", fontsize="small")
    if not data:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def rates(samples: Sequence[tuple[float, int]]) -> tuple[list[float], list[float]]:
    """Cumulative (seconds, bytes) samples -> (midpoint times, MB/s between samples)."""
    ts, mbs = [], []
    for (t0, b0), (t1, b1) in pairwise(samples):
        if t1 > t0:
            ts.append((t0 + t1) / 2)
            mbs.append((b1 - b0) / (t1 - t0) / 1e6)
    return ts, mbs


def timeseries(ax: Axes, series: Mapping[str, Sequence[tuple[float, int]]],
               events: Mapping[str, Sequence[float]] | None = None,
               windows: Mapping[str, Sequence[tuple[float, float]]] | None = None,
               title: str = "", event_color: str | None = None,
               window_color: str | None = None) -> None:
    """Throughput over time per series; ``events`` (e.g. KeyUpdates) as vertical marks and
    ``windows`` (e.g. software fallback periods) shaded, both keyed like ``series`` and in
    its colour unless ``event_color``/``window_color`` is given."""
    colors = ["#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#de2d26"]
    for i, (name, samples) in enumerate(series.items()):
        color = colors[i % len(colors)]
        ts, mbs = rates(samples)
        ax.plot(ts, mbs, color=color, label=name, drawstyle="steps-mid")
        for t in (events or {}).get(name, ()):
            ax.axvline(t, color=event_color or color, alpha=0.35, linewidth=0.8)
        for t0, t1 in (windows or {}).get(name, ()):
            ax.axvspan(t0, t1, color=window_color or color, alpha=0.3 if window_color else 0.12,
                       linewidth=0)
    ax.set_xlabel("seconds since the first byte")
    ax.set_ylabel("MB/s")
    ax.set_ylim(bottom=0)
    if series:
        ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title)


def stage_bars(path: Path, stages: Sequence[tuple[str, float]],
               title: str = "ktlskit bench pipeline") -> Path:
    """A horizontal bar per (stage, seconds), the seconds written on each bar; one PNG."""
    fig = figure(1, 1, (8.0, 0.6 * max(len(stages), 1) + 1.2))
    ax = fig.axes[0]
    names = [s for s, _ in stages]
    secs = [float(v) for _, v in stages]
    ys = range(len(stages))
    ax.barh(ys, secs, color="#9ecae1", edgecolor="#3182bd")
    for y, v in zip(ys, secs, strict=True):
        ax.text(v, y, f" {v:.1f} s", va="center")
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_xlim(0, max(secs, default=1) * 1.2 or 1)
    ax.set_title(title)
    return save(fig, path)
