"""Launching guests from a plain environment: the venv's tools are found without activation.

These run the real vng and virtme-run (``--dry-run``: they print the QEMU command line instead
of starting it), the way a new user's first ``.venv/bin/ktlskit run`` does.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ktlskit.guest import vng
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
    # QEMU exiting early for a reason it does not name as KVM's: a TCG control decides
    qemu = ProbeOutcome(False, False, "qemu-system-x86_64: -foo: invalid option\n", 1)
    assert qemu.launch_error() is None and qemu.needs_tcg_control()
    assert not missing.needs_tcg_control() and not usage.needs_tcg_control()


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
    for answer in (died, hung, refused, ok):
        assert not answer.needs_tcg_control()


#: What QEMU 7.2 printed under KVM on a nested (PVM) host whose KVM cannot set a vCPU's MSR
#: (status 255 from vng); the same launch under TCG booted.
MSR_FAILURE = ("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
               "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: "
               "Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n")
TCG_BANNER = "[    0.000000] Linux version 7.3.4 (ktlskit@ktlskit)\n"


@pytest.fixture()
def kvm_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A host with /dev/kvm usable and an empty cache; the probe boots are scripted by the
    test (``vng.probe``), each call's ``kvm`` flag recorded in the returned list."""
    monkeypatch.setenv("KTLSKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KTLSKIT_ACCEL", raising=False)
    monkeypatch.setattr(vng.os, "access", lambda path, mode: True)
    monkeypatch.setattr(vng, "check_launch_tools", lambda env=None: None)
    return []


def _script(monkeypatch: pytest.MonkeyPatch, calls: list[bool], kvm_run: ProbeOutcome,
            tcg_run: ProbeOutcome) -> None:
    def probe(bzimage: Path, *args: object, kvm: bool = True) -> ProbeOutcome:
        calls.append(kvm)
        return kvm_run if kvm else tcg_run
    monkeypatch.setattr(vng, "probe", probe)


def test_qemu_failing_under_kvm_but_booting_under_tcg_means_tcg(
        kvm_host: list[bool], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _script(monkeypatch, kvm_host, ProbeOutcome(False, False, MSR_FAILURE, 255),
            ProbeOutcome(False, True, TCG_BANNER, None))
    assert vng.kvm_usable(tmp_path / "bzImage") is False
    assert kvm_host == [True, False]
    cached = json.loads((tmp_path / "cache" / "kvm-probe.json").read_text())
    assert cached["kvm"] is False and "failed to set MSR 0x10a to 0x69" in cached["reason"]
    assert "started it under TCG" in cached["reason"]
    # the answer is cached for this host boot: no more probes
    assert vng.kvm_usable(tmp_path / "bzImage") is False and kvm_host == [True, False]


def test_a_launch_that_fails_under_tcg_too_is_a_launch_error_and_not_cached(
        kvm_host: list[bool], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = ProbeOutcome(False, False, "qemu-system-x86_64: -foo: invalid option\n", 1)
    _script(monkeypatch, kvm_host, bad, bad)
    with pytest.raises(GuestLaunchError) as err:
        vng.kvm_usable(tmp_path / "bzImage")
    assert "under TCG did not start it either" in str(err.value)
    assert "-foo: invalid option" in str(err.value)
    assert not (tmp_path / "cache" / "kvm-probe.json").exists()


def test_a_missing_program_is_a_launch_error_without_a_control_boot(
        kvm_host: list[bool], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _script(monkeypatch, kvm_host, ProbeOutcome(False, False, "sh: 1: virtme-run: not found\n",
                                                127), ProbeOutcome(False, True, TCG_BANNER, None))
    with pytest.raises(GuestLaunchError, match="not found"):
        vng.kvm_usable(tmp_path / "bzImage")
    assert kvm_host == [True]
    assert not (tmp_path / "cache" / "kvm-probe.json").exists()


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
