"""Splats, panics, hangs and a dying harness: detected, reported, cleaned up."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ktlskit.guest import Guest, GuestConfig, GuestSplatError, GuestTimeoutError
from ktlskit.guest.bootdir import qemu_running, read_qemu_pid
from ktlskit.hosts import Host, HostSplatError
from ktlskit.kernel.build import BuildResult

LKDTM = "/sys/kernel/debug/provoke-crash/DIRECT"
TCG = GuestConfig(cpus=1, memory="1G")


def test_warn_is_detected_with_its_report(guest: Host) -> None:
    with pytest.raises(HostSplatError) as err:
        guest.run(f"echo WARNING > {LKDTM}", timeout=30)
    kinds = [s.kind for s in err.value.splats]
    assert kinds == ["WARNING"], err.value
    report = err.value.splats[0].report
    assert "lkdtm" in report
    assert "Call Trace:" in report
    # consumed: the next command sees no splat
    guest.run("true", timeout=10)


def test_panic_fails_the_run_and_leaves_no_qemu(kernel_build: BuildResult) -> None:
    with pytest.raises(GuestSplatError) as err, Guest.boot(kernel_build.bzimage, TCG) as g:
        boot_dir = g.boot_dir
        g.run(f"echo PANIC > {LKDTM}", timeout=30, check=False)
        # the shell may die before or after the kernel prints; give it time
        time.sleep(5)
        g.check("after PANIC")
    assert "panic" in [s.kind for s in err.value.splats]
    assert not qemu_running(boot_dir)


def test_hung_guest_is_killed_with_the_console_tail(kernel_build: BuildResult) -> None:
    cfg = GuestConfig(cpus=1, memory="1G", boot_timeout=30, append=("ktlskit.init_hang",))
    with pytest.raises(GuestTimeoutError) as err, Guest.boot(kernel_build.bzimage, cfg):
        pytest.fail("a hung guest must not come up")
    msg = str(err.value)
    assert "console tail" in msg
    assert "hanging on purpose" in msg
    m = re.search(r"console: (\S+?)\)", msg)
    assert m, msg
    boot_dir = Path(m[1]).parent
    assert read_qemu_pid(boot_dir), "QEMU never started"
    assert not qemu_running(boot_dir)


HARNESS = """
import sys, time
from pathlib import Path
from ktlskit.guest import Guest, GuestConfig
with Guest.boot(Path(sys.argv[1]), GuestConfig(cpus=1, memory="1G")) as g:
    print(g.boot_dir, flush=True)
    time.sleep(600)
"""


def test_guest_dies_with_a_killed_harness(kernel_build: BuildResult) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HARNESS, str(kernel_build.bzimage)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        boot_dir = Path(proc.stdout.readline().strip())
        assert boot_dir.is_dir(), "harness did not boot"
        assert qemu_running(boot_dir), "QEMU should be running while the harness lives"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while qemu_running(boot_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not qemu_running(boot_dir), "QEMU outlived a SIGKILLed harness"
