"""Warm guests (``ktlskit boot --detach``): reused while current, replaced when stale, retired
after a splat, powered off when idle, and never shared by two users at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ktlskit import paths
from ktlskit.guest import Guest, GuestConfig, GuestSplatError, warm
from ktlskit.guest.bootdir import qemu_running
from ktlskit.kernel.build import BuildResult

CFG = GuestConfig(cpus=1, memory="1G")
LKDTM = "/sys/kernel/debug/provoke-crash/DIRECT"


@pytest.fixture()
def warm_guest(kernel_build: BuildResult) -> Iterator[warm.WarmRecord]:
    rec = warm.start(kernel_build.bzimage, CFG, idle=600)
    yield rec
    warm.stop(kernel_build.bzimage)
    assert not qemu_running(Path(rec.boot_dir))


def _boot_dir_used(bzimage: Path) -> Path:
    with warm.guest_for(bzimage, CFG) as g:
        g.run("true", timeout=30)
        return g.boot_dir


def test_current_warm_guest_is_reused(kernel_build: BuildResult,
                                      warm_guest: warm.WarmRecord) -> None:
    first = _boot_dir_used(kernel_build.bzimage)
    second = _boot_dir_used(kernel_build.bzimage)
    assert first == second == Path(warm_guest.boot_dir)
    assert warm.start(kernel_build.bzimage, CFG).boot_dir == warm_guest.boot_dir


def test_a_busy_warm_guest_is_not_shared(kernel_build: BuildResult,
                                         warm_guest: warm.WarmRecord) -> None:
    with warm.guest_for(kernel_build.bzimage, CFG) as holder:
        assert holder.boot_dir == Path(warm_guest.boot_dir)
        with warm.guest_for(kernel_build.bzimage, CFG) as other:
            assert other.boot_dir != holder.boot_dir  # a private guest
            other.run("true", timeout=30)
        private = other.boot_dir
    assert not qemu_running(private)
    assert qemu_running(Path(warm_guest.boot_dir))


def test_a_stale_warm_guest_is_replaced(kernel_build: BuildResult,
                                        warm_guest: warm.WarmRecord) -> None:
    """The registry says the guest runs another kernel image (as after a rebuild)."""
    registry = next(Path(warm_guest.boot_dir).parent.glob("warm-*.json"))
    stale = replace(warm_guest, image="0" * 64)
    registry.write_text(json.dumps(stale.__dict__))
    used = _boot_dir_used(kernel_build.bzimage)
    assert used != Path(warm_guest.boot_dir)
    assert not qemu_running(Path(warm_guest.boot_dir))
    assert warm.find(kernel_build.bzimage).boot_dir == str(used)  # type: ignore[union-attr]


def test_a_splat_retires_the_warm_guest(kernel_build: BuildResult,
                                        warm_guest: warm.WarmRecord) -> None:
    with pytest.raises(GuestSplatError), warm.guest_for(kernel_build.bzimage, CFG) as g:
        g.run(f"echo WARNING > {LKDTM}", timeout=30)
    assert warm.find(kernel_build.bzimage) is None
    assert not qemu_running(Path(warm_guest.boot_dir))


def test_an_unused_warm_guest_powers_off(kernel_build: BuildResult) -> None:
    rec = warm.start(kernel_build.bzimage, CFG, idle=3)
    deadline = time.monotonic() + 60
    while qemu_running(Path(rec.boot_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not qemu_running(Path(rec.boot_dir))
    assert warm.find(kernel_build.bzimage) is None


def test_cli_exec_uses_the_warm_guest_from_a_plain_environment(
        kernel_build: BuildResult, warm_guest: warm.WarmRecord) -> None:
    env = {"HOME": str(Path.home()), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if "KTLSKIT_CACHE" in os.environ:  # the warm guest lives in this cache (a cold CI run)
        env["KTLSKIT_CACHE"] = os.environ["KTLSKIT_CACHE"]
    res = subprocess.run([str(Path(sys.executable).with_name("ktlskit")), "exec", "--cpus", "1",
                          "--memory", "1G", "--profile", kernel_build.profile, "--",
                          "cat", "/proc/sys/kernel/random/boot_id"],
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr
    assert f"using the warm guest {warm_guest.boot_dir}" in res.stderr
    with warm.guest_for(kernel_build.bzimage, CFG) as g:
        again = g.run("cat /proc/sys/kernel/random/boot_id", timeout=30).stdout
    assert res.stdout == again  # the same running kernel answered both


def test_private_guests_still_stop_at_the_end(kernel_build: BuildResult) -> None:
    with Guest.boot(kernel_build.bzimage, CFG) as g:
        d = g.boot_dir
    assert not qemu_running(d)


def test_only_the_first_take_keeps_the_boot_caches(kernel_build: BuildResult) -> None:
    """A fresh guest is taken without a cache drop; every later take drops the
    9p caches, so a host file rewritten between two commands is read afresh."""
    rec = warm.start(kernel_build.bzimage, CFG, idle=600)
    probe = paths.cache_dir() / "warm-coherence"
    probe.mkdir(exist_ok=True)
    f = probe / f"{os.getpid()}.txt"
    try:
        assert (Path(rec.boot_dir) / warm.FRESH).exists()
        f.write_text("one\n")
        with warm.guest_for(kernel_build.bzimage, CFG) as g:
            assert g.boot_dir == Path(rec.boot_dir)
            assert g.run(f"cat {f}", timeout=30).stdout == "one\n"
        assert not (Path(rec.boot_dir) / warm.FRESH).exists()
        f.write_text("two\n")  # same size: only a dropped cache shows the new bytes
        with warm.guest_for(kernel_build.bzimage, CFG) as g:
            assert g.run(f"cat {f}", timeout=30).stdout == "two\n"
    finally:
        f.unlink(missing_ok=True)
        warm.stop(kernel_build.bzimage)
