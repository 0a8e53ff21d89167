"""Out-of-tree kernel builds in the cache, with ccache and visible progress."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import paths
from ..errors import KtlskitError
from ..progress import say
from . import kconfig, series, treesync
from .source import KernelSource

BUILD_TIMEOUT = 3 * 3600


class BuildError(KtlskitError):
    """``make`` failed; the message carries the tail of its output."""


@dataclass(frozen=True)
class BuildResult:
    bzimage: Path
    build_dir: Path
    tree: Path
    profile: str
    series_digest: str
    source: str
    seconds: float
    fingerprint: str = ""
    """What the build was made from (``fingerprint()``); a later build with the same one and an
    unchanged source tree is a no-op that needs no make at all."""

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def build_dir_for(src: KernelSource, profile: str, variant: str = "") -> Path:
    """The ``O=`` directory of ``profile``; a prefix of the series (``Series.variant``,
    ``-until-NAME``) has its own, so the two builds never evict each other."""
    return paths.cache_dir() / "build" / src.ident / f"{profile}{variant}"


def make_env() -> dict[str, str]:
    """ccache in the cache dir, in depend mode; fixed build stamps so no-op rebuilds stay
    no-ops.

    Depend mode: on a miss ccache runs the compiler once and takes the headers from its
    ``-MMD`` file (kbuild always asks for one), instead of running the preprocessor first to
    hash its output and then compiling. A kernel file's preprocessing is a large part of its
    compile, so a cold build paid for it twice: ``net/ipv4/`` + ``net/core/`` (108 objects,
    2 cores) took 125-127 s through a cold cache, 96-98 s in depend mode and 79-94 s with no
    ccache. A hit still needs the same source, headers and command line; what is lost is the
    preprocessor-mode hit on a header change that leaves the preprocessed output alone (3% of
    the hits in this project's cache). ``CCACHE_NODEPEND`` in the environment turns it off.
    """
    depend = {} if "CCACHE_NODEPEND" in os.environ else {"CCACHE_DEPEND": "1"}
    return {
        **os.environ,
        **depend,
        "CCACHE_DIR": str(paths.cache_dir() / "ccache"),
        "CCACHE_MAXSIZE": os.environ.get("CCACHE_MAXSIZE", "10G"),
        "KBUILD_BUILD_TIMESTAMP": "ktlskit",
        "KBUILD_BUILD_USER": "ktlskit",
        "KBUILD_BUILD_HOST": "ktlskit",
    }


GCC_VARS = ("CC=ccache gcc", "HOSTCC=ccache gcc")


def make(tree: Path, build_dir: Path, targets: list[str], *, what: str,
         timeout: float = BUILD_TIMEOUT, make_vars: Sequence[str] = GCC_VARS,
         on_line: Callable[[str], None] | None = None) -> None:
    """Run make with progress lines every 15 s; raise BuildError with the tail on failure.

    ``make_vars`` picks the toolchain (default: gcc through ccache); ``on_line``
    sees every line of output (stdout and stderr together).
    """
    argv = ["make", "-C", str(tree), f"O={build_dir}", f"-j{os.cpu_count() or 1}",
            *make_vars, *targets]
    tail: deque[str] = deque(maxlen=40)
    compiled = 0
    start = last = time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", env=make_env(), start_new_session=True) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                tail.append(line.rstrip())
                if on_line is not None:
                    on_line(line.rstrip("\n"))
                if line.lstrip().startswith(("CC ", "AS ", "LD ")):
                    compiled += 1
                now = time.monotonic()
                if now - start > timeout:
                    raise BuildError(f"{what}: timed out after {timeout:.0f}s")
                if now - last >= 15:
                    say(f"{what}: {compiled} steps, {now - start:.0f}s ({line.strip()[:60]})")
                    last = now
            rc = proc.wait(timeout=60)
        except BaseException:
            os.killpg(proc.pid, 9)
            raise
    if rc != 0:
        raise BuildError(f"{what} failed (make {' '.join(targets)}, exit {rc}):\n"
                         + "\n".join(tail))


#: Bump when the way ktlskit builds changes (flags, targets), so old builds are redone.
RECIPE = "bzImage-1"
SRC_STAMP = ".ktlskit-src-stamp"


def fingerprint(src: KernelSource, profile: str, ser: series.Series) -> str:
    """Source, series, config fragments and recipe: everything a build of a pristine source
    depends on. A user's tree can also change in place: see ``source_changed()``."""
    frags = kconfig.fragments_digest(kconfig.profile_fragments(profile))
    return f"{RECIPE}:{src.kind}:{src.ident}:{ser.digest if ser.patches else '-'}:{frags}"


def source_changed(src: KernelSource, build_dir: Path) -> bool:
    """Whether a user's tree has a file or directory newer than the last build's start
    (a deleted file shows as a newer directory). Debian and tarball sources never change."""
    if src.kind != "tree":
        return False
    stamp = build_dir / SRC_STAMP
    if not stamp.is_file():
        return True
    res = treesync.find_newer(src.path, stamp, "-print", "-quit")
    return res.returncode != 0 or bool(res.stdout.strip())


def up_to_date(src: KernelSource, profile: str, ser: series.Series) -> BuildResult | None:
    """The last build, when nothing it was made from changed since (no rsync, no make)."""
    last = last_build(src, profile, ser.variant)
    if (last is None or not last.bzimage.is_file()
            or last.fingerprint != fingerprint(src, profile, ser)
            or source_changed(src, last.build_dir)):
        return None
    return last


def build(src: KernelSource, profile: str = "default",
          the_series: series.Series | None = None) -> BuildResult:
    """Configure and build bzImage for ``profile`` with the project's series applied."""
    start = time.monotonic()
    ser = the_series if the_series is not None else series.load()
    bdir = build_dir_for(src, profile, ser.variant)
    bdir.mkdir(parents=True, exist_ok=True)
    # Until this build finishes, nothing may take the last one as current (already_built).
    (bdir / "ktlskit-build.json").unlink(missing_ok=True)
    started = time.time()
    tree = series.prepared_tree(src, ser)
    kconfig.configure(tree, bdir, kconfig.profile_fragments(profile))
    upto = f" (up to {ser.until}, {len(ser.patches)} patches)" if ser.until else ""
    say(f"building Linux {src.version} ({src.ident}), profile {profile}, "
        f"series {ser.digest if ser.patches else 'empty'}{upto} in {bdir}")
    make(tree, bdir, ["bzImage"], what="kernel build")
    result = BuildResult(bdir / "arch/x86/boot/bzImage", bdir, tree, profile,
                         ser.digest if ser.patches else "", src.ident,
                         round(time.monotonic() - start, 1), fingerprint(src, profile, ser))
    (bdir / "ktlskit-build.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    # Edits made to a user's tree after this moment are seen by the next source_changed().
    stamp = bdir / SRC_STAMP
    stamp.touch()
    os.utime(stamp, (started, started))
    return result


def last_build(src: KernelSource, profile: str, variant: str = "") -> BuildResult | None:
    f = build_dir_for(src, profile, variant) / "ktlskit-build.json"
    if not f.is_file():
        return None
    d = json.loads(f.read_text())
    return BuildResult(Path(d["bzimage"]), Path(d["build_dir"]), Path(d["tree"]), d["profile"],
                       d["series_digest"], d["source"], d["seconds"], d.get("fingerprint", ""))
