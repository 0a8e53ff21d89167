"""pytest plugin (entry point ``ktlskit``): guest fixtures, splat checks, KTAP output.

Two modes. On the host, the session-scoped ``guest`` fixture builds the
kernel (kconfig/ + patches/) if needed and boots it; tests drive it over
SSH. Inside a guest (``vng -- pytest vmtests/``), ``guest`` is the machine
itself. Either way a kernel splat while a test runs fails that test with
the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import ktap
from .guest import Guest, GuestConfig, GuestSplatError, LocalGuest, running_in_guest, warm
from .kernel.build import BuildResult
from .pipeline import KernelOptions, ensure_kernel
from .tlsstats import Snapshot, delta

_active: list[Guest | LocalGuest] = []
_ktap_results: list[ktap.TestResult] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("ktlskit", "ktlskit guest kernels")
    g.addoption("--kernel-src", default=None, help="kernel tree/tarball, or 'debian'")
    g.addoption("--kernel-profile", default="default", help="kconfig profile for the guest")
    g.addoption("--guest-cpus", type=int, default=2)
    g.addoption("--guest-memory", default="2G")
    g.addoption("--guest-accel", default="auto", choices=("auto", "kvm", "tcg"))
    g.addoption("--ktap", metavar="FILE", default=None, help="write results as KTAP to FILE")
    g.addoption("--no-warm-guest", action="store_true",
                help="boot a private guest even when a warm one (ktlskit boot --detach) runs "
                     "the current kernel")


GUEST_RESULTS = Path("/tmp/ktlskit-results")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Inside a guest the repository is on the read-only 9p root: report files go to /tmp."""
    if not running_in_guest():
        return
    for attr in ("xmlpath", "ktap"):
        value = getattr(config.option, attr, None)
        if value and not _writable(Path(value).resolve().parent):
            setattr(config.option, attr, str(GUEST_RESULTS / Path(value).name))


def _writable(directory: Path) -> bool:
    """Whether ``directory`` exists writable or could be created (nearest existing parent)."""
    while not directory.exists():
        directory = directory.parent
    return os.access(directory, os.W_OK)


@pytest.fixture(scope="session")
def kernel_build(request: pytest.FixtureRequest) -> BuildResult:
    """The guest kernel, built from kconfig/ and patches/ (host mode only)."""
    if running_in_guest():
        pytest.skip("already inside a guest: no kernel build here")
    opts = KernelOptions(request.config.getoption("--kernel-src"),
                         request.config.getoption("--kernel-profile"))
    return ensure_kernel(opts)[1]


def guest_config(config: pytest.Config) -> GuestConfig:
    return GuestConfig(cpus=config.getoption("--guest-cpus"),
                       memory=config.getoption("--guest-memory"),
                       accel=config.getoption("--guest-accel"))


@pytest.fixture(scope="session")
def guest(request: pytest.FixtureRequest) -> Iterator[Guest | LocalGuest]:
    """A booted guest kernel shared by the session (or this machine, in-guest)."""
    if running_in_guest():
        local = LocalGuest()
        _active.append(local)
        yield local
        _active.remove(local)
        return
    kb: BuildResult = request.getfixturevalue("kernel_build")
    reuse = not request.config.getoption("--no-warm-guest")
    with warm.guest_for(kb.bzimage, guest_config(request.config), reuse=reuse) as g:
        _active.append(g)
        try:
            yield g
        finally:
            _active.remove(g)


class CaseRunner:
    """``ktls_pair(case, version, cipher, **opts)``: run a ``ktlskit.cases`` case in the guest."""

    def __init__(self, guest: Guest | LocalGuest) -> None:
        self.guest = guest

    def __call__(self, case: str, version: str = "1.3", cipher: str = "aes-gcm-128",
                 timeout: float = 300, **opts: object) -> dict[str, Any]:
        flags = "".join(f" --{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                        for k, v in opts.items() if v is not False)
        res = self.guest.run(f"{self.guest.python} -m ktlskit.cases {case} --tls-version "
                             f"{version} --cipher {cipher}{flags}", timeout=timeout)
        return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture()
def ktls_pair(guest: Guest | LocalGuest) -> CaseRunner:
    """Runs guest-side kTLS cases on loopback pairs; each returns facts + tls_stat deltas."""
    return CaseRunner(guest)


class Stats:
    """``tls_stats.snapshot()`` and ``tls_stats.delta(before)`` of the guest's counters."""

    def __init__(self, guest: Guest | LocalGuest) -> None:
        self.guest = guest

    def snapshot(self, devices: tuple[str, ...] = (), netns: tuple[str, ...] = ()) -> Snapshot:
        args = " ".join([*(f"--dev {d}" for d in devices), *(f"--netns {n}" for n in netns)])
        out = self.guest.run(f"{self.guest.python} -m ktlskit.tlsstats snapshot {args}",
                             timeout=300).stdout
        return Snapshot.from_json(json.loads(out))

    def delta(self, before: Snapshot, devices: tuple[str, ...] = ()) -> dict[str, int]:
        return delta(before, self.snapshot(devices))


@pytest.fixture()
def tls_stats(guest: Guest | LocalGuest) -> Stats:
    return Stats(guest)


@pytest.fixture(params=["loopback", "veth", "netdevsim"])
def topology(request: pytest.FixtureRequest, guest: Guest | LocalGuest) -> Iterator[dict]:
    """Each topology in turn, set up in the guest and torn down after the test."""
    res = guest.run(f"{guest.python} -m ktlskit.topology setup {request.param}", timeout=300)
    try:
        yield json.loads(res.stdout)
    finally:
        guest.run(f"{guest.python} -m ktlskit.topology teardown", timeout=300, check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    for g in list(_active):
        splats = g.new_splats()
        if splats and outcome.excinfo is None:
            outcome.force_exception(GuestSplatError(splats, f"during {item.nodeid}"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and not report.passed):
        status = {"passed": "pass", "failed": "fail", "skipped": "skip"}[report.outcome]
        reason = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2])
        _ktap_results.append(ktap.TestResult(len(_ktap_results) + 1, report.nodeid, status,
                                             reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    path = session.config.getoption("--ktap")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(ktap.write("ktlskit", _ktap_results))
