"""Upstream kselftests, built from the guest kernel's own tree and run in the guest.

``TARGET/TEST`` (e.g. ``net/tls``) builds just that program of the target;
``TARGET`` builds and runs the whole target through ``run_kselftest.sh``.
The tests are built against the tree's ``make headers`` output, so they
match the guest kernel rather than the host's /usr/include.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import kselftest_shard, ktap
from .errors import KtlskitError
from .hosts import Host
from .kernel.build import BuildResult, make
from .progress import step
from .pyselftest import build_run_tree, is_python_test
from .shell import cmd

RUN_TIMEOUT = 3600
# Python tests of netdevsim's debugfs knobs expect debugfs where distributions mount it
MOUNT_DEBUGFS = "mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug"


class KselftestError(KtlskitError):
    """A selftest could not be built or its output could not be read."""


_RUN = re.compile(r"^#\s+RUN\s+(?P<name>\S+) \.\.\.")
_NOT_OK = re.compile(r"^not ok \d+ (?P<name>\S+)")


@dataclass(frozen=True)
class KselftestRun:
    name: str
    report: ktap.KtapReport
    output: str
    rc: int
    seconds: float
    retried: dict[str, str] = field(default_factory=dict)
    """Cases the harness killed for time, each run again alone: case -> "pass", "fail", or
    "pass with a N s limit (took M s)" when only a build with the harness's per-case limit
    raised finished it (this host is too slow for the fixed limit; the case itself passed)."""

    def failed(self) -> list[str]:
        """Failed cases, leaving out timeouts that passed when run again alone."""
        return [r.name for r in self.report.leaf_results() if r.status in ("fail", "error")
                and not self.retried.get(r.name, "").startswith("pass")]

    def passed_only_with_longer_limit(self) -> list[str]:
        return [c for c, v in self.retried.items() if v.startswith("pass with")]

    @property
    def ok(self) -> bool:
        if self.rc == 0 and self.report.ok:
            return True
        planned = bool(self.report.plans) and self.report.complete
        return bool(self.retried) and planned and not self.failed()


def timed_out(output: str) -> list[str]:
    """Cases the kselftest harness failed with "Test terminated by timeout".

    Under TCG on a loaded host, the multi-process cases of the generic (non-accelerated)
    ciphers can outlast the harness's fixed 30 s per case; that is the host, not the kernel.
    """
    names, current, timed = [], "", False
    for line in output.splitlines():
        if m := _RUN.match(line):
            current, timed = m["name"], False
        elif "Test terminated by timeout" in line:
            timed = True
        elif (m := _NOT_OK.match(line)) and timed and m["name"] == current:
            names.append(current)
    return names


def split_name(name: str) -> tuple[str, str | None]:
    """``net/tls`` -> (``net``, ``tls``); ``net`` -> (``net``, None).

    A name that is itself a selftests directory (``drivers/net``) is a target.
    """
    name = name.strip("/")
    if "/" not in name:
        return name, None
    target, _, test = name.rpartition("/")
    return target, test


def _selftests_dir(tree: Path) -> Path:
    return tree / "tools/testing/selftests"


def build_selftest(kbuild: BuildResult, name: str) -> tuple[Path, list[str]]:
    """Build; return (directory to run in, argv to run).

    ``TARGET/TEST.py`` is a Python test (``lib/py``): see ``ktlskit.pyselftest``.
    """
    tree = kbuild.tree
    target, test = split_name(name)
    if test is not None and (_selftests_dir(tree) / name).is_dir():
        target, test = name, None
    tdir = _selftests_dir(tree) / target
    if not tdir.is_dir():
        raise KselftestError(f"no kselftest target {target!r} in {_selftests_dir(tree)}")
    if test is not None and test.endswith(".py") and not is_python_test(tree, name):
        raise KselftestError(f"no Python selftest {test!r} in {tdir}")
    with step("installing kernel headers for selftests"):
        make(tree, kbuild.build_dir, ["headers"], what="make headers")
    khdr = f"KHDR_INCLUDES=-isystem {kbuild.build_dir / 'usr/include'}"
    out = kbuild.build_dir / "kselftest" / target
    out.mkdir(parents=True, exist_ok=True)
    if test is not None and is_python_test(tree, name):
        run = kbuild.build_dir / "kselftest-run"

        def helper(target_dir: Path, hout: Path, prog: str) -> None:
            with step(f"building {prog} for {name}"):
                make(target_dir, hout, [f"OUTPUT={hout}", khdr, str(hout / prog)],
                     what=f"build {prog}")

        return run, build_run_tree(tree, name, out, run, helper)
    if test is not None:
        with step(f"building selftest {name}"):
            make(tdir, out, [f"OUTPUT={out}", khdr, str(out / test)], what=f"build {name}")
        return out, [str(out / test)]
    inst = kbuild.build_dir / "kselftest-install" / target
    with step(f"building selftest target {target}"):
        make(_selftests_dir(tree), out, [f"TARGETS={target}", khdr,
                                          f"INSTALL_PATH={inst}", "install"],
             what=f"build {target}")
    return inst, [str(inst / "run_kselftest.sh"), "-c", target]


def run_selftest(guest: Host, kbuild: BuildResult, name: str, *, timeout: float = RUN_TIMEOUT,
                 retry: bool = True, shards: int = 1) -> KselftestRun:
    """Build ``name`` from ``kbuild``'s tree and run it on ``guest`` (a guest of that kernel:
    ``ktlskit kselftest`` boots one, the vmtests use the session's); with ``retry``, cases the
    harness killed for time run again alone (``rerun_timeouts``); a single harness program
    runs as ``shards`` concurrent shards (``kselftest_shard``)."""
    workdir, argv = build_selftest(kbuild, name)
    return run_built(guest, kbuild, name, workdir, argv, timeout=timeout, retry=retry,
                     shards=shards)


def run_built(guest: Host, kbuild: BuildResult, name: str, workdir: Path, argv: list[str], *,
              timeout: float = RUN_TIMEOUT, retry: bool = True, shards: int = 1) -> KselftestRun:
    """``run_selftest`` for what ``build_selftest`` returned."""
    if shards > 1 and len(argv) == 1 and not name.endswith(".py"):
        run = run_sharded(guest, argv, name, shards, timeout=timeout)
    else:
        run = run_in_guest(guest, workdir, argv, name, timeout=timeout)
    return rerun_timeouts(guest, run, argv, kbuild=kbuild) if retry else run


def run_sharded(guest: Host, argv: list[str], name: str, shards: int,
                timeout: float = RUN_TIMEOUT) -> KselftestRun:
    start = time.monotonic()
    cases = kselftest_shard.list_cases(guest, argv)
    argvs = kselftest_shard.shard_argvs(argv, cases, shards)
    with step(f"running kselftest {name} in the guest: {len(cases)} cases in "
              f"{len(argvs)} shards"):
        results = kselftest_shard.run_shards(guest, "/tmp", argvs, timeout)
    text, report, rc = kselftest_shard.merge(cases, results)
    return KselftestRun(name, report, text, rc, round(time.monotonic() - start, 1))


def run_in_guest(guest: Host, workdir: Path, argv: list[str], name: str,
                 timeout: float = RUN_TIMEOUT) -> KselftestRun:
    start = time.monotonic()
    # Python tests only: C targets (net/tls) run exactly as before
    mount = f"{MOUNT_DEBUGFS}; " if name.endswith(".py") else ""
    command = f"{mount}cd /tmp && {shlex.join(argv)} 2>&1"
    with step(f"running kselftest {name} in the guest"):
        res = guest.run(command, timeout=timeout, check=False)
    report = ktap.parse(res.stdout)
    if not report.results:
        raise KselftestError(f"kselftest {name} printed no test results (exit {res.rc}):\n"
                             + "\n".join(res.stdout.splitlines()[-30:]))
    return KselftestRun(name, report, res.stdout, res.rc, round(time.monotonic() - start, 1))


def rerun_timeouts(guest: Host, run: KselftestRun, argv: list[str],
                   timeout: float = 900, kbuild: BuildResult | None = None) -> KselftestRun:
    """Run each timed-out case of a single harness program again, alone (``-r CASE``); a case
    that times out again alone is run once more from a build whose per-case limit is
    ``LONG_LIMIT`` s instead of the harness's fixed 30 s (when ``kbuild`` can build one)."""
    if len(argv) != 1:  # run_kselftest.sh targets: no per-case selection
        return run
    retried = {}
    long_variant: list[str] | None = None
    for case in timed_out(run.output):
        ok, again_timed_out, _ = _run_alone(guest, argv, case, timeout)
        verdict = "pass" if ok else "fail"
        if again_timed_out and kbuild is not None:
            if long_variant is None:
                long_variant = [str(long_limit_variant(kbuild, run.name))]
            ok, _, took = _run_alone(guest, long_variant, case, LONG_LIMIT + 60)
            verdict = f"pass with a {LONG_LIMIT} s limit (took {took:.0f} s)" if ok else "fail"
        retried[case] = verdict
    return KselftestRun(run.name, run.report, run.output, run.rc, run.seconds, retried)


def _run_alone(guest: Host, argv: list[str], case: str,
               timeout: float) -> tuple[bool, bool, float]:
    """(passed, timed out again, seconds) for one case of a harness program."""
    start = time.monotonic()
    with step(f"running {case} alone ({Path(argv[0]).name})"):
        res = guest.run(f"cd /tmp && {shlex.join([*argv, '-r', case])} 2>&1",
                        timeout=timeout, check=False)
    leaf = ktap.parse(res.stdout).leaf_results()
    ok = res.rc == 0 and len(leaf) == 1 and leaf[0].status == "pass"
    return ok, bool(timed_out(res.stdout)), time.monotonic() - start


LONG_LIMIT = 600


def long_limit_variant(kbuild: BuildResult, name: str, limit: int = LONG_LIMIT) -> Path:
    """The same C selftest built against a copy of the harness whose per-case limit is
    ``limit`` s (the tree is not touched). Only for single-file harness programs."""
    target, test = split_name(name)
    sd = _selftests_dir(kbuild.tree)
    src = sd / target / f"{test}.c"
    if test is None or not src.is_file():
        raise KselftestError(f"{name}: no single C source to build a longer-limit variant")
    out = kbuild.build_dir / "kselftest-long-limit" / target
    out.mkdir(parents=True, exist_ok=True)
    harness = (sd / "kselftest_harness.h").read_text()
    raised = re.sub(r"^#define TEST_TIMEOUT_DEFAULT \d+$",
                    f"#define TEST_TIMEOUT_DEFAULT {limit}", harness, count=1, flags=re.M)
    if raised == harness:
        raise KselftestError("kselftest_harness.h has no TEST_TIMEOUT_DEFAULT to raise")
    (out / "kselftest_harness.h").write_text(raised)
    with step(f"building {name} with a {limit} s per-case limit"):
        cmd(["gcc", "-Wall", "-O2", "-g", f"-I{out}", f"-I{sd}", "-isystem",
             str(kbuild.build_dir / "usr/include"), str(src), "-o", str(out / test),
             "-lpthread"], timeout=600)
    return out / test
