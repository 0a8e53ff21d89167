"""A kernel drivers/net selftest against two machines: ``ktlskit kselftest TARGET --env FILE``.

The way NIPA runs them: a Python test (``drivers/net/ping.py``) as a run tree with only the
helpers it names built (``ktlskit.pyselftest``, as in a guest: ``make install`` of
``drivers/net`` needs clang for ``net/lib`` and, without it, silently leaves out the
``net/lib/py`` every test imports); a whole target built and installed from the kernel tree
(``make TARGETS=... install``). Either is copied to the DUT's temporary directory with the env
file beside the tests as ``net.config`` (the kernel's keys only), the link prepared as for a
scenario (``ktlskit.link``: only named interfaces, never the SSH one, undone after), and the
test (or ``run_kselftest.sh``) run on the DUT. The test reaches the remote itself, as
REMOTE_TYPE and REMOTE_ARGS say (``ssh REMOTE_ARGS``: the DUT must be able to log in there).
A kernel splat on either machine fails the run.
"""

from __future__ import annotations

import shlex
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import ktap, link
from .hosts import Host
from .hosts.netenv import NetEnv
from .kernel.build import BuildResult, make
from .kselftest import KselftestError, KselftestRun, build_selftest, split_name
from .progress import step
from .pyselftest import SELFTESTS, is_python_test

NEEDS_NET_LIB = ("net", "drivers/net", "drivers/net/hw")
"""The targets the kernel's selftests Makefile installs net/lib with."""


def install_target(kbuild: BuildResult, target: str) -> Path:
    """``make TARGETS=target install`` against the tree's own headers; the install dir."""
    sdir = kbuild.tree / "tools/testing/selftests"
    if not (sdir / target).is_dir():
        raise KselftestError(f"no kselftest target {target!r} in {sdir}")
    with step("installing kernel headers for selftests"):
        make(kbuild.tree, kbuild.build_dir, ["headers"], what="make headers")
    out = kbuild.build_dir / "kselftest" / target
    inst = kbuild.build_dir / "kselftest-install" / target
    out.mkdir(parents=True, exist_ok=True)
    with step(f"building selftest target {target}"):
        make(sdir, out, [f"TARGETS={target}",
                         f"KHDR_INCLUDES=-isystem {kbuild.build_dir / 'usr/include'}",
                         f"INSTALL_PATH={inst}", "install"], what=f"build {target}")
    return inst


def net_config(env: NetEnv) -> str:
    """The env as the kernel's tests read it: its own keys (and unknown ones), not ktlskit's.

    Unquoted: the Python tests keep quotes as part of the value; the shell tests source the
    file, where only a value with blanks needs them.
    """
    values = {"NETIF": env.netif, "LOCAL_V4": env.local_v4, "LOCAL_V6": env.local_v6,
              "REMOTE_V4": env.remote_v4, "REMOTE_V6": env.remote_v6,
              "REMOTE_TYPE": env.remote_type, "REMOTE_ARGS": env.remote_args, **env.extra}
    return "".join(f'{k}="{v}"\n' if any(c.isspace() for c in v) else f"{k}={v}\n"
                   for k, v in values.items() if v)


def _copy_to(host: Host, inst: Path, dest: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "kselftest.tar.gz"
        with tarfile.open(tarball, "w:gz") as tar:
            tar.add(inst, arcname=".")
        host.run(f"mkdir -p {dest}", timeout=30)
        host.put(tarball, f"{dest}.tar.gz")
    host.run(f"tar -xzf {dest}.tar.gz -C {dest} && rm {dest}.tar.gz", timeout=300)


def run_on_machines(kbuild: BuildResult, name: str, env: NetEnv, timeout: float = 3600,
                    cases: Sequence[str] = ()) -> KselftestRun:
    """Reach the machines the env names, then ``run_on`` them."""
    with link.machines(env) as (dut, remote):
        return run_on(kbuild, name, env, dut, remote, timeout, cases)


@dataclass(frozen=True)
class Staged:
    """What to copy to the DUT (``tree``); in the copy, where net.config goes and what to run
    (from the copy's top)."""

    tree: Path
    test_dir: str
    command: str


def stage(kbuild: BuildResult, name: str, cases: Sequence[str] = ()) -> Staged:
    """Build the selftest on this machine, ready to copy; a bad name fails here. ``cases``
    picks cases of a Python test (its ``-t NAME``)."""
    target, test = split_name(name)
    if test is not None and is_python_test(kbuild.tree, name):
        run_tree, _ = build_selftest(kbuild, name)
        test_dir = str(SELFTESTS / target)
        picks = "".join(f" -t {shlex.quote(c)}" for c in cases)
        return Staged(run_tree, test_dir, f"cd {test_dir} && ./{shlex.quote(test)}{picks}")
    if cases:
        raise KselftestError(f"{name}: cases can be picked in a Python test only "
                             "(TARGET/TEST.py)")
    if test is not None and (kbuild.tree / SELFTESTS / name).is_dir():
        target, test = name, None
    inst = install_target(kbuild, target)
    if target in NEEDS_NET_LIB and not (inst / "net/lib/py").is_dir():
        raise KselftestError(f"{target}: make install left out net/lib/py, which its Python "
                             "tests import (net/lib did not build: clang missing?); run one "
                             "test by name instead, e.g. drivers/net/ping.py")
    if test is not None and f"{target}:{test}" not in \
            (inst / "kselftest-list.txt").read_text().split():
        raise KselftestError(f"{name}: not a test of the installed {target} target "
                             f"(see {inst / 'kselftest-list.txt'})")
    select = ["-t", f"{target}:{test}"] if test else ["-c", target]
    return Staged(inst, target, f"./run_kselftest.sh {shlex.join(select)}")


def run_on(kbuild: BuildResult, name: str, env: NetEnv, dut: Host, remote: Host,
           timeout: float = 3600, cases: Sequence[str] = ()) -> KselftestRun:
    staged = stage(kbuild, name, cases)
    with link.prepared(env, dut, remote):
        dest = f"{dut.tmpdir}/kselftest"
        with step(f"copying {name} to {dut.name}"):
            _copy_to(dut, staged.tree, dest)
        conf = shlex.quote(net_config(env))
        dut.run(f"printf %s {conf} >{dest}/{staged.test_dir}/net.config", timeout=30)
        t0 = time.monotonic()
        with step(f"running kselftest {name} on {dut.name} (remote {remote.name})"):
            res = dut.run(f"cd {dest} && {staged.command} 2>&1", timeout=timeout,
                          check=False)
        for h in {id(h): h for h in (dut, remote)}.values():
            h.check(f"during kselftest {name}")
    report = ktap.parse(res.stdout)
    if not report.results:
        raise KselftestError(f"kselftest {name} printed no test results (exit {res.rc}):\n"
                             + "\n".join(res.stdout.splitlines()[-30:]))
    return KselftestRun(name, report, res.stdout, res.rc, round(time.monotonic() - t0, 1))
