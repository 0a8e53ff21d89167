"""Upstream kselftests, built from the guest kernel's own tree and run in the guest.

``TARGET/TEST`` (e.g. ``net/tls``) builds just that program of the target;
``TARGET`` builds and runs the whole target through ``run_kselftest.sh``.
The tests are built against the tree's ``make headers`` output, so they
match the guest kernel rather than the host's /usr/include.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from . import ktap
from .errors import KtlskitError
from .guest import Guest
from .kernel.build import BuildResult, make
from .progress import step

RUN_TIMEOUT = 3600


class KselftestError(KtlskitError):
    """A selftest could not be built or its output could not be read."""


@dataclass(frozen=True)
class KselftestRun:
    name: str
    report: ktap.KtapReport
    output: str
    rc: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.report.ok


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
    """Build; return (directory to run in, argv to run)."""
    tree = kbuild.tree
    target, test = split_name(name)
    if test is not None and (_selftests_dir(tree) / name).is_dir():
        target, test = name, None
    tdir = _selftests_dir(tree) / target
    if not tdir.is_dir():
        raise KselftestError(f"no kselftest target {target!r} in {_selftests_dir(tree)}")
    with step("installing kernel headers for selftests"):
        make(tree, kbuild.build_dir, ["headers"], what="make headers")
    khdr = f"KHDR_INCLUDES=-isystem {kbuild.build_dir / 'usr/include'}"
    out = kbuild.build_dir / "kselftest" / target
    out.mkdir(parents=True, exist_ok=True)
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


def run_in_guest(guest: Guest, workdir: Path, argv: list[str], name: str,
                 timeout: float = RUN_TIMEOUT) -> KselftestRun:
    start = time.monotonic()
    command = f"cd /tmp && {shlex.join(argv)} 2>&1"
    with step(f"running kselftest {name} in the guest"):
        res = guest.run(command, timeout=timeout, check=False)
    report = ktap.parse(res.stdout)
    if not report.results:
        raise KselftestError(f"kselftest {name} printed no test results (exit {res.rc}):\n"
                             + "\n".join(res.stdout.splitlines()[-30:]))
    return KselftestRun(name, report, res.stdout, res.rc, round(time.monotonic() - start, 1))
