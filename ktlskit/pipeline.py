"""From "nothing" to "a built kernel": resolve the source, apply the series, build."""

from __future__ import annotations

from dataclasses import dataclass

from .kernel import build, series, source
from .kernel.build import BuildResult
from .kernel.source import KernelSource


@dataclass(frozen=True)
class KernelOptions:
    kernel_src: str | None = None  # a path, "debian", or None for the remembered choice
    profile: str = "default"


def ensure_kernel(opts: KernelOptions) -> tuple[KernelSource, BuildResult]:
    """Fetch if needed and (re)build; make decides what is out of date."""
    src = source.resolve(opts.kernel_src)
    return src, build.build(src, opts.profile, series.load())
