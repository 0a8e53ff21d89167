"""Plots are real PNG files with the content drawn (checked through matplotlib's artists)."""

from pathlib import Path

from matplotlib.collections import PathCollection

from ktlskit import benchplot
from ktlskit.benchstats import Spread

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_stage_bars_writes_a_png(tmp_path: Path) -> None:
    out = benchplot.stage_bars(tmp_path / "sub" / "pipeline.png",
                               [("fetch", 12.5), ("cold build", 600.0), ("boot", 15.2)])
    assert out.is_file()
    w, h = _png_size(out)
    assert w == 800 and h > 100


def test_spread_bars_draws_medians_and_every_round(tmp_path: Path) -> None:
    fig = benchplot.figure(1, 1)
    ax = fig.axes[0]
    samples = [[1.0, 2.0, 3.0], [5.0, 6.0]]
    benchplot.spread_bars(ax, ["a", "b"], [Spread.of(s) for s in samples], samples, "MB/s")
    heights = [p.get_height() for p in ax.patches]
    assert heights == [2.0, 5.5]
    points = [tuple(p) for c in ax.collections if isinstance(c, PathCollection)
              for p in c.get_offsets()]
    assert sorted(points) == [(0, 1), (0, 2), (0, 3), (1, 5), (1, 6)]
    benchplot.save(fig, tmp_path / "bars.png")
    _png_size(tmp_path / "bars.png")


def test_distribution_with_a_floor_and_an_empty_group(tmp_path: Path) -> None:
    fig = benchplot.figure(1, 1)
    ax = fig.axes[0]
    benchplot.distribution(ax, {"stall": [1.0, 2.0, 5.0], "none": []}, "ms", 0.05, "install")
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["stall"]
    assert any(line.get_label() == "install" for line in ax.get_lines())
    benchplot.save(fig, tmp_path / "dist.png")


def test_rates_from_cumulative_samples() -> None:
    ts, mbs = benchplot.rates([(0.0, 0), (1.0, 2_000_000), (3.0, 4_000_000)])
    assert ts == [0.5, 2.0] and mbs == [2.0, 1.0]


def test_timeseries_marks_events_and_windows(tmp_path: Path) -> None:
    fig = benchplot.figure(1, 1)
    ax = fig.axes[0]
    benchplot.timeseries(ax, {"offload": [(0.0, 0), (1.0, 10**6), (2.0, 3 * 10**6)]},
                         {"offload": [0.5, 1.5]}, {"offload": [(0.5, 0.7)]})
    vlines = [ln for ln in ax.get_lines() if ln.get_xdata()[0] == ln.get_xdata()[-1]]
    assert len(vlines) == 2
    assert len(ax.patches) == 1  # the shaded window
    benchplot.save(fig, tmp_path / "ts.png")
