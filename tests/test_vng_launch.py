"""Launching guests from a plain environment: the venv's tools are found without activation.

These run the real vng and virtme-run (``--dry-run``: they print the QEMU command line instead
of starting it), the way a new user's first ``.venv/bin/ktlskit run`` does.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ktlskit.guest.vng import (
    TCG_CPU,
    GuestLaunchError,
    ProbeOutcome,
    check_launch_tools,
    launch_env,
    tools_dir,
    vng_argv,
)

PLAIN = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

LAUNCH = """
import subprocess, sys
from pathlib import Path
from ktlskit.guest.vng import launch_env, vng_argv
argv = vng_argv(Path(sys.argv[1]), kvm=False, cpus=1, memory="512M", append=[], qemu_opts=[],
                command=["true"], dry_run=True)
res = subprocess.run(argv, env=launch_env(), capture_output=True, text=True, timeout=60)
sys.stdout.write(res.stdout + res.stderr)
sys.exit(res.returncode)
"""


def test_launch_env_puts_the_interpreters_bin_first() -> None:
    env = launch_env(PLAIN)
    assert env["PATH"].split(os.pathsep)[0] == str(tools_dir())
    assert env["PATH"].endswith("/usr/sbin:/usr/bin:/sbin:/bin")
    assert env["HOME"] == PLAIN["HOME"]


@pytest.mark.skipif(not (tools_dir() / "virtme-run").is_file(),
                    reason="virtme-ng is not installed beside this Python")
def test_vng_starts_virtme_run_from_a_plain_environment(tmp_path: Path) -> None:
    """The bug a new user hit: vng's /bin/sh found no virtme-run (exit 127)."""
    bz = tmp_path / "bzImage"
    bz.write_bytes(b"not a kernel: --dry-run never boots it")
    res = subprocess.run([sys.executable, "-c", LAUNCH, str(bz)], env=PLAIN, capture_output=True,
                         text=True, timeout=120, check=False)
    assert "virtme-run: not found" not in res.stdout, res.stdout
    assert res.returncode == 0, res.stdout
    assert "qemu-system-x86_64" in res.stdout and str(bz) in res.stdout


def test_the_same_launch_without_the_fix_fails_as_the_user_saw(tmp_path: Path) -> None:
    """Control: the plain PATH alone really lacks virtme-run, so the test above can fail."""
    if shutil.which("virtme-run", path=PLAIN["PATH"]):
        pytest.skip("a global virtme-run is installed: the plain PATH finds it")
    bz = tmp_path / "bzImage"
    bz.write_bytes(b"x")
    res = subprocess.run([str(tools_dir() / "vng"), "--run", str(bz), "--dry-run", "--", "true"],
                         env=PLAIN, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 127
    assert "virtme-run: not found" in res.stderr


def test_missing_tools_are_named_before_any_launch() -> None:
    with pytest.raises(GuestLaunchError) as err:
        check_launch_tools({"PATH": "/nonexistent"})
    msg = str(err.value)
    assert "vng" in msg and "virtme-run" in msg and "qemu-system-x86_64" in msg


def test_probe_that_never_started_a_kernel_is_a_launch_error() -> None:
    missing = ProbeOutcome(False, False, "/bin/sh: 1: virtme-run: not found\n", 127)
    assert "not found" in (missing.launch_error() or "")
    usage = ProbeOutcome(False, False, "usage: vng [-h]\nvng: error: unrecognized arguments\n",
                         2)
    assert "refused its arguments" in (usage.launch_error() or "")
    qemu = ProbeOutcome(False, False, "qemu-system-x86_64: -foo: invalid option\n", 1)
    assert "before the kernel started" in (qemu.launch_error() or "")


def test_probe_answers_that_mean_tcg_are_not_launch_errors() -> None:
    died = ProbeOutcome(False, True, "[    0.000000] Linux version 7.3.4\n...", 1)
    assert died.launch_error() is None
    hung = ProbeOutcome(False, False, "", None)
    assert hung.launch_error() is None
    refused = ProbeOutcome(False, False, "Could not access KVM kernel module: No such file\n"
                           "qemu-system-x86_64: failed to initialize kvm: No such file\n", 1)
    assert refused.launch_error() is None
    ok = ProbeOutcome(True, True, "ktlskit-kvm-probe-ok\n", 0)
    assert ok.launch_error() is None


@pytest.mark.skipif(not (tools_dir() / "virtme-run").is_file(),
                    reason="virtme-ng is not installed beside this Python")
@pytest.mark.parametrize("user_cpu", [None, "qemu64"])
def test_a_tcg_guest_gets_a_cpu_without_avx_unless_the_user_names_one(
        tmp_path: Path, user_cpu: str | None) -> None:
    """QEMU takes the last ``-cpu``: ours must come after vng's ``max`` and before the user's."""
    bz = tmp_path / "bzImage"
    bz.write_bytes(b"x")
    argv = vng_argv(bz, kvm=False, cpus=1, memory="512M", append=[],
                    qemu_opts=[f"-cpu {user_cpu}"] if user_cpu else [], command=["true"],
                    dry_run=True)
    res = subprocess.run(argv, env=launch_env(), capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    words = (res.stdout + res.stderr).split()
    cpus = [words[i + 1] for i, w in enumerate(words) if w == "-cpu"]
    assert cpus[-1] == (user_cpu or TCG_CPU), cpus
    assert "-avx" in TCG_CPU and "-avx2" in TCG_CPU
