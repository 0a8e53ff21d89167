"""``ktlskit bench pipeline``: how long each stage of the pipeline takes here, in one run.

It works the way a kernel developer does, on a scratch copy of the pristine source that
stands in for their own tree (``CACHE/bench/linux``, a ``--kernel-src`` tree kind), with a
scratch project directory whose ``kconfig/`` and ``patches/`` are this project's, so the user's
remembered source, builds and warm guests stay as they are:

- fetch: a fresh apt download + unpack into a temporary cache;
- cold build of the tree (empty O=; ccache as it is unless ``no_ccache``);
- the check before every guest command when nothing changed (no rsync, no make), and a no-op
  ``make`` for reference;
- a one-file rebuild after a real one-line change to netdevsim;
- boot to SSH;
- ``ktlskit exec -- true`` against raw ``vng --run BZIMAGE ... -- true`` on the same kernel,
  interleaved, as a ratio (each run a fresh process from a plain environment);
- edit → answer: with a warm guest up and settled (its call server ready), one line of
  netdevsim changed, then ``ktlskit retest``
  (rebuild, warm guest replaced by one on the new kernel, the offload smoke test) until it
  answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .guest import Guest, GuestConfig, warm
from .guest.vng import launch_env, tools_dir
from .hosts import callserver
from .hosts.call import call
from .kernel import build, series, source
from .kernel.build import make
from .kernel.source import KernelSource
from .pipeline import build_lock
from .progress import say
from .shell import cmd

ONE_FILE = "drivers/net/netdevsim/netdev.c"
PLAIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Timing:
    stage: str
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class BootRatio:
    """``ktlskit exec -- true`` over raw ``vng --run ... -- true``, interleaved rounds."""

    exec_s: list[float]
    vng_s: list[float]

    @property
    def per_round(self) -> list[float]:
        return [round(o / r, 3) for o, r in zip(self.exec_s, self.vng_s, strict=True)]

    @property
    def ratio(self) -> float:
        """Median over median."""
        return round(statistics.median(self.exec_s) / statistics.median(self.vng_s), 3)

    def to_json(self) -> dict[str, object]:
        return {"ratio": self.ratio, "per_round": self.per_round, "target": 1.2,
                "exec_s": [round(x, 2) for x in self.exec_s],
                "vng_s": [round(x, 2) for x in self.vng_s]}


@dataclass(frozen=True)
class PipelineBench:
    stages: list[Timing]
    boot: BootRatio
    #: ``ktlskit retest``'s output in the edit -> answer stage, each line with the seconds
    #: since the edit: where that stage's time went.
    retest_timeline: list[str]

    def to_json(self) -> dict[str, object]:
        return {"stages": [t.__dict__ for t in self.stages], "boot_ratio": self.boot.to_json(),
                "retest_timeline": self.retest_timeline}


def _timed(stage: str, fn: Callable[[], object], note: str = "") -> Timing:
    say(f"bench: {stage} ...")
    start = time.monotonic()
    fn()
    t = Timing(stage, round(time.monotonic() - start, 2), note)
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


@dataclass(frozen=True)
class BenchTree:
    """The stand-in for a developer's tree and a scratch project that builds it."""

    src: KernelSource
    project: Path

    @classmethod
    def prepare(cls) -> BenchTree:
        pristine = source.fetch_debian()
        root = paths.cache_dir() / "bench"
        tree = root / "linux"
        say(f"bench: refreshing the scratch tree {tree} from {pristine.path}")
        root.mkdir(parents=True, exist_ok=True)  # a fresh machine's cache has no bench/ yet
        cmd(["rsync", "-a", "--delete", f"{pristine.path}/", f"{tree}/"], timeout=1800)
        project = root / "project"
        project.mkdir(parents=True, exist_ok=True)
        for name in ("kconfig", "patches", "vmtests", "pyproject.toml"):
            link = project / name
            if not link.is_symlink():
                link.unlink(missing_ok=True)
                link.symlink_to(paths.project_dir() / name)
        (project / source.CONFIG_FILE).write_text(json.dumps(
            {"kernel_src": {"kind": "tree", "location": str(tree)}}) + "\n")
        return cls(_tree_source(tree), project)

    def env(self) -> dict[str, str]:
        """A plain environment (login PATH, no venv) that uses the scratch project."""
        return {"HOME": str(Path.home()), "PATH": PLAIN_PATH,
                "KTLSKIT_CACHE": str(paths.cache_dir()), "KTLSKIT_PROJECT": str(self.project)}

    def ktlskit(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_ktlskit_argv(args), env=self.env(), cwd=self.project,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def ktlskit_timeline(self, *args: str, timeout: float) -> tuple[int, list[str]]:
        """``ktlskit ARGS`` here; its exit status and its output lines, each with the seconds
        since start. After ``timeout`` seconds its whole process group is killed (its pytest
        and their guests too, which hold the output pipe open): the status is then -9."""
        start = time.monotonic()
        proc = subprocess.Popen(_ktlskit_argv(args), env={**self.env(), "PYTHONUNBUFFERED": "1"},
                                cwd=self.project, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        watchdog = threading.Timer(timeout, _kill_group, (proc,))
        watchdog.start()
        try:
            assert proc.stdout is not None
            lines = [f"{time.monotonic() - start:7.2f} {line.rstrip()}" for line in proc.stdout]
            return proc.wait(), lines
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()


def _ktlskit_argv(args: tuple[str, ...]) -> list[str]:
    return [str(Path(sys.executable).with_name("ktlskit")), *args]


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tree_source(tree: Path) -> KernelSource:
    """The scratch tree as a ``--kernel-src`` tree, without remembering it for the project."""
    return source.tree_source(tree)


def run(profile: str = "default", *, no_ccache: bool = False, fetch: bool = True,
        guest: GuestConfig | None = None, rounds: int = 5, cold: bool = True) -> PipelineBench:
    cfg = guest or GuestConfig()
    timings = []
    if fetch:
        timings.append(_timed("fetch (apt download + unpack)", _fetch_fresh))
    bt = BenchTree.prepare()
    ser = series.load(bt.project / "patches" / "series")
    bdir = build.build_dir_for(bt.src, profile)
    with build_lock():  # the bench tree's builds share ccache and the lock with everyone
        warm.stop(bdir / "arch/x86/boot/bzImage")
        if cold:
            timings.append(_cold_build(bt, profile, ser, bdir, no_ccache))
        else:
            timings.append(_timed("build as left by the last bench (--no-cold)",
                                  lambda: build.build(bt.src, profile, ser),
                                  "not a cold build: incremental"))
        timings += _rebuilds(bt, profile, ser)
    bz = bdir / "arch/x86/boot/bzImage"
    timings.append(_boot(bz, cfg))
    boot = _exec_vs_vng(bt, bz, cfg, profile, rounds)
    timings += [
        Timing("raw vng --run ... -- true", round(statistics.median(boot.vng_s), 2),
               f"median of {rounds}"),
        Timing("ktlskit exec -- true (cold boot)", round(statistics.median(boot.exec_s), 2),
               f"median of {rounds}, plain environment, no warm guest"),
    ]
    answer, timeline = _edit_to_answer(bt, bz, cfg, profile)
    timings.append(answer)
    return PipelineBench(timings, boot, timeline)


def _cold_build(bt: BenchTree, profile: str, ser: series.Series, bdir: Path,
                no_ccache: bool) -> Timing:
    shutil.rmtree(bdir, ignore_errors=True)
    if no_ccache:
        os.environ["CCACHE_DISABLE"] = "1"
    try:
        return _timed("cold build (series applied, configure, make)",
                      lambda: build.build(bt.src, profile, ser),
                      "no ccache" if no_ccache else "empty O=, ccache as is")
    finally:
        os.environ.pop("CCACHE_DISABLE", None)


def _rebuilds(bt: BenchTree, profile: str, ser: series.Series) -> list[Timing]:
    last = build.last_build(bt.src, profile)
    assert last is not None
    out = [_timed("check before each command, nothing changed",
                  lambda: build.up_to_date(bt.src, profile, ser),
                  "fingerprint + scan of the tree for newer files; no rsync, no make"),
           _timed("no-op make (reference)", lambda: make(last.tree, last.build_dir, ["bzImage"],
                                                         what="bench no-op make"))]
    target = bt.src.path / ONE_FILE
    original = target.read_bytes()
    try:
        _edit(target, original)
        out.append(_timed("one-file rebuild", lambda: build.build(bt.src, profile, ser),
                          f"{ONE_FILE}: check, sync, make"))
    finally:
        target.write_bytes(original)
    build.build(bt.src, profile, ser)
    return out


def _edit(target: Path, original: bytes) -> None:
    """A one-line change of real code, so ccache cannot answer from its cache."""
    line = f"\nstatic int __maybe_unused ktlskit_bench_{time.time_ns()};\n"
    target.write_bytes(original + line.encode())


def _boot(bzimage: Path, cfg: GuestConfig) -> Timing:
    start = time.monotonic()
    with Guest.boot(bzimage, cfg) as g:
        up = time.monotonic() - start
        g.run("true", timeout=30)
        accel = g.accel
    return Timing("boot to SSH", round(up, 2), f"{accel}, {cfg.cpus} CPUs")


def _raw_vng(bzimage: Path, cfg: GuestConfig) -> None:
    """The baseline, exactly as a user would type it: ``vng --run BZIMAGE --force-9p
    --disable-kvm -a root=/dev/root -- true`` (vng's defaults otherwise)."""
    argv = [str(tools_dir() / "vng"), "--run", str(bzimage), "--force-9p", "--disable-kvm",
            "--cpus", str(cfg.cpus), "--memory", cfg.memory, "-a", "root=/dev/root", "--",
            "true"]
    env = launch_env({"HOME": str(Path.home()), "PATH": PLAIN_PATH})
    subprocess.run(argv, env=env, capture_output=True, timeout=300, check=True)


def _exec_vs_vng(bt: BenchTree, bzimage: Path, cfg: GuestConfig, profile: str,
                 rounds: int) -> BootRatio:
    """Interleaved rounds of raw vng and ``ktlskit exec`` (each a fresh process)."""
    ours, raw = [], []
    for n in range(1, rounds + 1):
        say(f"bench: exec vs raw vng, round {n}/{rounds}")
        t = time.monotonic()
        _raw_vng(bzimage, cfg)
        raw.append(time.monotonic() - t)
        t = time.monotonic()
        res = bt.ktlskit("exec", "--no-warm", "--profile", profile, "--cpus", str(cfg.cpus),
                         "--memory", cfg.memory, "--", "true", timeout=600)
        ours.append(time.monotonic() - t)
        if res.returncode != 0:
            raise RuntimeError(f"ktlskit exec failed:\n{res.stderr[-3000:]}")
    return BootRatio(ours, raw)


def _edit_to_answer(bt: BenchTree, bzimage: Path, cfg: GuestConfig,
                    profile: str) -> tuple[Timing, list[str]]:
    """Warm guest up and settled (its call server done importing, as in a guest a developer
    has had up for a while); one line of netdevsim changed; ``ktlskit retest`` until it
    answers."""
    warm.start(bzimage, cfg)
    with warm.guest_for(bzimage, cfg) as g:
        call(g, callserver.identity, timeout=120)
    target = bt.src.path / ONE_FILE
    original = target.read_bytes()
    try:
        _edit(target, original)
        say("bench: edit -> answer (ktlskit retest, offload smoke test) ...")
        start = time.monotonic()
        rc, timeline = bt.ktlskit_timeline("retest", "--profile", profile, "--cpus",
                                           str(cfg.cpus), "--memory", cfg.memory, timeout=1200)
        took = time.monotonic() - start
        if rc != 0:
            raise RuntimeError("ktlskit retest failed:\n" + "\n".join(timeline[-60:]))
    finally:
        target.write_bytes(original)
        warm.stop(bzimage)
    return (Timing("edit one line of netdevsim -> offload smoke test answered", round(took, 2),
                   "ktlskit retest: check, sync, make, warm guest replaced, pytest -m smoke; "
                   "target <= 45"), timeline)

