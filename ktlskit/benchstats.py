"""Statistics every ktlskit benchmark reports: spread over rounds, per-round ratios, warnings.

A benchmark runs its modes in N *rounds* (each round runs every mode once, interleaved), so
slow drifts of a shared host hit all modes of a round alike. Every figure is reported as
min / median / max over the rounds (:class:`Spread`), and a comparison between two modes is
the ratio computed *inside each round* (:func:`compare`), never the ratio of two medians.

The spread warning says in plain words when the rounds do not support the difference being
reported: the per-round ratios span a wider range (as a factor, max/min) than the factor
between their median and the reference (1.0 for "A vs B": a 1.05x "speed-up" whose rounds
range 0.90..1.20 is noise).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import KtlskitError


class BenchStatsError(KtlskitError):
    """Samples that cannot be summarised (none, or rounds that do not pair up)."""


@dataclass(frozen=True)
class Spread:
    """min / median / max of one figure over the rounds."""

    n: int
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        if not samples:
            raise BenchStatsError("no samples to summarise")
        return cls(len(samples), float(min(samples)), float(statistics.median(samples)),
                   float(max(samples)))

    @property
    def width(self) -> float:
        """max - min."""
        return self.max - self.min

    @property
    def relative(self) -> float:
        """(max - min) / median; 0 when the median is 0."""
        return self.width / self.median if self.median else 0.0

    def to_json(self, digits: int = 3) -> dict[str, float | int]:
        return {"n": self.n, "min": round(self.min, digits),
                "median": round(self.median, digits), "max": round(self.max, digits)}

    def text(self, digits: int = 2) -> str:
        """``median (min..max)``, the form every table uses."""
        if self.n == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} ({self.min:.{digits}f}..{self.max:.{digits}f})"


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """numerator[i] / denominator[i] for each round i."""
    if len(numerator) != len(denominator):
        raise BenchStatsError(f"rounds do not pair up: {len(numerator)} against "
                              f"{len(denominator)} samples")
    if not numerator:
        raise BenchStatsError("no rounds to compare")
    if any(d == 0 for d in denominator):
        raise BenchStatsError("a round's denominator is 0: cannot form its ratio")
    return [n / d for n, d in zip(numerator, denominator, strict=True)]


@dataclass(frozen=True)
class Comparison:
    """A per-round ratio, summarised, with its spread warning (None when the rounds agree)."""

    label: str
    ratios: tuple[float, ...]
    spread: Spread
    reference: float | None
    warning: str | None

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "ratios": [round(r, 4) for r in self.ratios],
                **self.spread.to_json(), "reference": self.reference, "warning": self.warning}

    def text(self) -> str:
        """``label: 1.23x (1.10..1.30 over 5 rounds)``."""
        s = self.spread
        rng = f" ({s.min:.2f}..{s.max:.2f} over {s.n} rounds)" if s.n > 1 else " (1 round)"
        return f"{self.label}: {s.median:.2f}x{rng}"


def spread_warning(label: str, spread: Spread, reference: float = 1.0,
                   per: str = "round") -> str | None:
    """A plain warning when the rounds do not support the difference being reported.

    Ratios are multiplicative, so both sides are factors: the rounds support a reported
    ``median`` only when the factor between their smallest and largest value
    (``max / min``) is below the factor between the median and the reference. For ratios
    near 1 that is "the spread is smaller than the distance from 1" (and the sign of the
    difference is then the same in every round); a stall 20x..50x the key install does not
    warn, a kTLS/ssl ratio of 0.98x from rounds between 0.90x and 1.39x does. ``per`` names
    what gave one value each ("round"; "pair" of boots for a before/after benchmark).

    When every value lies within ``SAME`` (1%) of the reference the rounds show no
    difference at that resolution, and neither does the median: nothing to warn about (the
    before/after of a fast path under ``-icount``: 0.998..1.002 in every pair). Figures in a
    warning get three decimals when the spread is under a factor 1.1.
    """
    if spread.n < 2:
        return (f"{label}: one {per} only, so no spread was measured; the figure may be "
                f"noise (use more {per}s)")
    if spread.min <= 0 or spread.median <= 0 or reference <= 0:
        spread_factor, diff_factor = spread.width, abs(spread.median - reference)
    else:
        spread_factor = spread.max / spread.min
        diff_factor = max(spread.median, reference) / min(spread.median, reference)
    if spread_factor <= diff_factor or _all_near(spread, reference):
        return None
    if spread.min < reference < spread.max:
        verdict = f"the {per}s disagree on the direction: they do not show a difference"
    else:
        verdict = (f"every {per} agrees on the direction, but the size of the difference is "
                   "within the noise")
    d = 3 if spread_factor < 1.1 else 2
    return (f"{label}: the per-{per} values span {spread.min:.{d}f}..{spread.max:.{d}f} (a "
            f"factor {spread_factor:.{d}f} between {per}s), more than the factor "
            f"{diff_factor:.{d}f} between the reported {spread.median:.{d}f} and {reference:g}; "
            f"{verdict}")


SAME = 1.01
"""Values within this factor of the reference, every one of them, show no difference."""


def _all_near(spread: Spread, reference: float) -> bool:
    if spread.min <= 0 or reference <= 0:
        return False
    return spread.max <= reference * SAME and spread.min >= reference / SAME


def compare(label: str, numerator: Sequence[float], denominator: Sequence[float],
            reference: float | None = 1.0, per: str = "round") -> Comparison:
    """Per-round ratios of two figures; ``reference=None`` for a fraction (no warning);
    ``per`` as in ``spread_warning()``."""
    r = ratios(numerator, denominator)
    spread = Spread.of(r)
    warning = spread_warning(label, spread, reference, per) if reference is not None else None
    return Comparison(label, tuple(r), spread, reference, warning)
