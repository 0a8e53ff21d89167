"""pytest plugin (entry point ``ktlskit``): guest fixtures, splat checks, KTAP output.

Two modes. On the host, the session-scoped ``guest`` fixture builds the
kernel (kconfig/ + patches/) if needed and boots it; tests drive it over
SSH. Inside a guest (``vng -- pytest vmtests/``), ``guest`` is the machine
itself. Either way a kernel splat while a test runs fails that test with
the report.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import cases, ktap, lab, link, tlsstats, topologies
from .guest import GuestConfig, boot_timeout, running_in_guest, warm
from .hosts import Host, HostSplatError
from .hosts.call import call
from .hosts.local import LocalHost
from .hosts.netenv import NetEnv
from .kernel.build import BuildResult
from .pipeline import KernelOptions, ensure_kernel
from .tlsstats import Snapshot, delta
from .topology import Topology

_active: list[Host] = []
_ktap_results: list[ktap.TestResult] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("ktlskit", "ktlskit guest kernels")
    g.addoption("--kernel-src", default=None, help="kernel tree/tarball, or 'debian'")
    g.addoption("--kernel-profile", default="default", help="kconfig profile for the guest")
    g.addoption("--guest-cpus", type=int, default=2)
    g.addoption("--guest-memory", default="2G")
    g.addoption("--guest-accel", default="auto", choices=("auto", "kvm", "tcg"))
    g.addoption("--ktap", metavar="FILE", default=None, help="write results as KTAP to FILE")
    g.addoption("--env", metavar="FILE", default=None,
                help="the two-machine tests (fixture `machines`) run on the DUT and remote "
                     "this env file (NIPA's net.config format) names, not on a lab of guests")
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
                       accel=config.getoption("--guest-accel"),
                       boot_timeout=boot_timeout(config.getoption("--kernel-profile")))


@pytest.fixture(scope="session")
def guest(request: pytest.FixtureRequest) -> Iterator[Host]:
    """A booted guest kernel shared by the session (or this machine, in-guest)."""
    if running_in_guest():
        local = LocalHost()
        _active.append(local)
        yield local
        _active.remove(local)
        local.close()
        return
    kb: BuildResult = request.getfixturevalue("kernel_build")
    reuse = not request.config.getoption("--no-warm-guest")
    with warm.guest_for(kb.bzimage, guest_config(request.config), reuse=reuse) as g:
        _active.append(g)
        try:
            yield g
        finally:
            _active.remove(g)


@dataclass(frozen=True)
class Machines:
    """Two machines: the env that names them, and both reached (ktlskit deployed)."""

    env: NetEnv
    dut: Host
    remote: Host


def _lab_down() -> None:
    """Power the session's lab off; a splat its consoles showed (also one no test was
    running for) fails the session."""
    splats = lab.down()
    if splats:
        raise lab.LabError("the lab's consoles showed kernel splats: " + "; ".join(splats))


@pytest.fixture(scope="session")
def machines(request: pytest.FixtureRequest) -> Iterator[Machines]:
    """The DUT and remote of ``--env FILE``; without it, a lab of two guests (booted for the
    session unless one runs already)."""
    path = request.config.getoption("--env")
    if path:
        env = NetEnv.load(Path(path))
    else:
        if running_in_guest():
            pytest.skip("the lab boots two guests: run this on the host")
        kb: BuildResult = request.getfixturevalue("kernel_build")
        started = lab.current() is None
        env = NetEnv.load(lab.up(kb.bzimage).env_file)
        if started:
            request.addfinalizer(_lab_down)
    with link.machines(env) as (dut, remote):
        hosts = [dut] if remote is dut else [dut, remote]
        _active.extend(hosts)
        try:
            yield Machines(env, dut, remote)
        finally:
            for h in hosts:
                _active.remove(h)


class CaseRunner:
    """``ktls_pair(case, version, cipher, **opts)``: run a ``ktlskit.cases`` case in the guest."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def __call__(self, case: str, version: str = "1.3", cipher: str = "aes-gcm-128",
                 timeout: float = 300, **opts: object) -> dict[str, Any]:
        return call(self.host, cases.run_case, case, version, cipher, timeout=timeout, **opts)


@pytest.fixture()
def ktls_pair(guest: Host) -> CaseRunner:
    """Runs guest-side kTLS cases on loopback pairs; each returns facts + tls_stat deltas."""
    return CaseRunner(guest)


class Stats:
    """``tls_stats.snapshot()`` and ``tls_stats.delta(before)`` of the guest's counters."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def snapshot(self, devices: tuple[str, ...] = (), netns: tuple[str, ...] = ()) -> Snapshot:
        return call(self.host, tlsstats.snapshot, list(devices), list(netns))

    def delta(self, before: Snapshot, devices: tuple[str, ...] = ()) -> dict[str, int]:
        return delta(before, self.snapshot(devices))


@pytest.fixture()
def tls_stats(guest: Host) -> Stats:
    return Stats(guest)


@pytest.fixture(params=topologies.names(machines=1))
def topology(request: pytest.FixtureRequest, guest: Host) -> Iterator[Topology]:
    """Each one-host topology in turn, set up in the guest and torn down after the test."""
    topo = call(guest, topologies.setup, request.param)
    try:
        yield topo
    finally:
        call(guest, topologies.teardown, topo.run_id)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    for g in list(_active):
        splats = g.new_splats()
        if splats and outcome.excinfo is None:
            outcome.force_exception(HostSplatError(splats, f"during {item.nodeid}", g.name))


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
