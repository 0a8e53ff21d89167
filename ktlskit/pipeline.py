"""From "nothing" to "a built kernel": resolve the source, apply the series, build."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .kernel import build, kconfig, series, source
from .kernel.build import BuildResult
from .kernel.source import KernelSource
from .progress import say


@dataclass(frozen=True)
class KernelOptions:
    kernel_src: str | None = None  # a path, "debian", or None for the remembered choice
    profile: str = "default"
    until: str | None = None  # build patches/series only up to this sub-series

    def check(self) -> None:
        """The profile, the source and the sub-series, checked in well under a second,
        before any work."""
        kconfig.profile_fragments(self.profile)
        if self.kernel_src and self.kernel_src != "debian":
            source.check_path(Path(self.kernel_src).expanduser().resolve())
        self.patch_series()

    def patch_series(self) -> series.Series:
        """``patches/series``, or its prefix up to ``until`` (``series.prefix``)."""
        whole = series.load()
        return series.prefix(whole, self.until) if self.until else whole


@contextmanager
def build_lock() -> Iterator[None]:
    """One patch-apply-and-build at a time per cache: the patched tree and the O= directories
    are shared, so two runs (a pytest session and ``ktlskit run``) would corrupt each other."""
    lock_dir = paths.cache_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "build.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another ktlskit build in this cache to finish")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_kernel(opts: KernelOptions) -> tuple[KernelSource, BuildResult]:
    """Fetch if needed and (re)build. When nothing the last build was made from changed (source,
    series, config fragments, and for a user's tree no file newer than that build), it is used
    as it is, without syncing the tree or running make; otherwise make decides."""
    opts.check()
    built = already_built(opts)
    if built is not None:
        return built
    with build_lock():
        src = source.resolve(opts.kernel_src)
        ser = opts.patch_series()
        last = build.up_to_date(src, opts.profile, ser)
        if last is not None:
            say(f"kernel up to date: {last.bzimage}")
            return src, last
        return src, build.build(src, opts.profile, ser)


def already_built(opts: KernelOptions) -> tuple[KernelSource, BuildResult] | None:
    """The up-to-date build of ``opts``, found without the build lock, or None.

    Only reads: a build of another profile (CI builds the debug kernel while the tests use the
    default one) must not make a user wait for the lock when there is nothing to build. A build
    in progress has removed its profile's record first (``build.build``), so a profile being
    rebuilt is never taken from here. Sources that would need fetching or unpacking (a tarball)
    go through the lock."""
    kernel_src = opts.kernel_src
    if kernel_src and kernel_src != "debian" and not Path(kernel_src).expanduser().is_dir():
        return None
    choice = source.remembered() if not kernel_src else None
    if choice and choice["kind"] not in ("debian", "tree"):
        return None
    try:
        src = source.resolve(kernel_src, fetch=False)
    except source.KernelSourceError:
        return None
    last = build.up_to_date(src, opts.profile, opts.patch_series())
    if last is None:
        return None
    say(f"kernel up to date: {last.bzimage}")
    return src, last
