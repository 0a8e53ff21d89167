"""``ktlskit bench pipeline``: how long each stage of the pipeline takes here.

Runs in scratch directories so the user's cache and builds stay as they
are: a fresh fetch into a temporary cache, a cold build into an empty build
directory (ccache as it is unless ``no_ccache``), a no-op rebuild, a rebuild
after a one-line change to one netdevsim file, and boot-to-SSH.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .guest import Guest, GuestConfig
from .kernel import kconfig, series, source
from .kernel.build import make
from .pipeline import build_lock
from .progress import say

ONE_FILE = "drivers/net/netdevsim/netdev.c"


@dataclass(frozen=True)
class Timing:
    stage: str
    seconds: float
    note: str = ""


def _timed(stage: str, fn: Callable[[], object], note: str = "") -> Timing:
    say(f"bench: {stage} ...")
    start = time.monotonic()
    fn()
    t = Timing(stage, round(time.monotonic() - start, 1), note)
    say(f"bench: {stage}: {t.seconds}s")
    return t


def _fetch_fresh() -> None:
    scratch = paths.cache_dir() / "bench" / "fetch"
    shutil.rmtree(scratch, ignore_errors=True)
    old = os.environ.get("KTLSKIT_CACHE")
    os.environ["KTLSKIT_CACHE"] = str(scratch)
    try:
        source.fetch_debian()
    finally:
        if old is None:
            del os.environ["KTLSKIT_CACHE"]
        else:
            os.environ["KTLSKIT_CACHE"] = old
        shutil.rmtree(scratch, ignore_errors=True)


def run(profile: str = "default", *, no_ccache: bool = False, fetch: bool = True,
        guest: GuestConfig | None = None) -> list[Timing]:
    timings = []
    if fetch:
        timings.append(_timed("fetch (apt download + unpack)", _fetch_fresh))
    src = source.resolve(None)
    bdir = paths.cache_dir() / "build" / src.ident / f"{profile}-bench"
    with build_lock():  # the one-file change below is made in the shared patched tree
        tree = series.prepared_tree(src, series.load())
        shutil.rmtree(bdir, ignore_errors=True)
        if no_ccache:
            os.environ["CCACHE_DISABLE"] = "1"
        try:
            timings.append(_timed("configure (tinyconfig + fragments)", lambda: kconfig.configure(
                tree, bdir, kconfig.profile_fragments(profile))))
            timings += _builds(tree, bdir, no_ccache)
        finally:
            os.environ.pop("CCACHE_DISABLE", None)
    timings.append(_boot(bdir / "arch/x86/boot/bzImage", guest or GuestConfig()))
    return timings


def _builds(tree: Path, bdir: Path, no_ccache: bool) -> list[Timing]:
    def mk() -> None:
        make(tree, bdir, ["bzImage"], what="bench build")

    out = [_timed("cold build", mk, "no ccache" if no_ccache else "empty O=, ccache as is"),
           _timed("no-op rebuild", mk)]
    target = tree / ONE_FILE
    original = target.read_bytes()
    try:
        # real code, not a comment: ccache must not be able to answer from its cache
        stamp = time.time_ns()
        line = f"\nstatic int __maybe_unused ktlskit_bench_{stamp};\n"
        target.write_bytes(original + line.encode())
        out.append(_timed("one-file rebuild", mk, ONE_FILE))
    finally:
        target.write_bytes(original)
    mk()
    return out


def _boot(bzimage: Path, cfg: GuestConfig) -> Timing:
    start = time.monotonic()
    with Guest.boot(bzimage, cfg) as g:
        up = time.monotonic() - start
        g.run("true", timeout=30)
        accel = g.accel
    return Timing("boot to SSH", round(up, 1), f"{accel}, {cfg.cpus} CPUs")
