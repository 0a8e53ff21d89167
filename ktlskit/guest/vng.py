"""virtme-ng command lines, their environment, and the one-time KVM probe.

``vng`` starts ``virtme-run`` through ``/bin/sh``, so both must be on the PATH
of the process that runs it, not only beside the Python that runs ktlskit:
``launch_env()`` puts this interpreter's directory (a venv's ``bin``) first.
Everything a launch needs is checked before it, and a launch that fails is an
error naming the cause, never taken for "KVM does not work".

On some hosts /dev/kvm exists but a normal kernel dies under it, so "is
there /dev/kvm" is not enough: the probe boots the real kernel once under
KVM and remembers (per host boot) whether it reached userspace.

Seen on the nested 2-core hosts this project runs on (2026-12-04, QEMU 7.2, kernel 7.3.4):
with vng's ``-cpu host`` QEMU aborts before the kernel starts ("failed to set MSR 0x10a");
with ``-cpu host,-arch-capabilities`` SeaBIOS runs and the kernel starts, then KVM stops the
vCPU with "KVM internal error. Suberror: 1 / emulation failure" at the XRSTOR of FPU set-up,
and with ``noxsave`` on the command line as well, at the INT3 of the kernel's int3 self-test.
A kernel that cannot take a breakpoint trap (static keys, kprobes) cannot be tested there, so
no CPU model is tried beyond vng's own: those hosts run guests under TCG.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..progress import say
from .watch import GuestError

PROBE_MARK = "ktlskit-kvm-probe-ok"
PROBE_TIMEOUT = 90
BANNER_TIMEOUT = 20
QEMU = "qemu-system-x86_64"
#: What a launch needs on PATH: vng itself, the virtme-run it starts through
#: /bin/sh, and QEMU.
LAUNCH_TOOLS = ("vng", "virtme-run", QEMU)
#: The kernel printed this early in any boot: a probe that never shows it never ran the kernel.
KERNEL_STARTED = "Linux version"
#: virtme-ng's 9p root options plus ``cache=loose`` (a later ``rootflags=`` on the command line
#: wins): the guest caches what it reads from the read-only host root instead of asking the host
#: for every lookup, which makes a Python start in a TCG guest about 3x faster. The cost is
#: coherence: a file the host changes while a guest runs may be seen stale; a warm guest drops
#: its caches whenever a new command takes it (``warm.py``).
ROOT_FLAGS = "rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"
#: The CPU a TCG guest gets: QEMU's ``max`` without the AVX family. QEMU 7.2 emulates AVX
#: instructions slowly, and with them present the kernel picks ``generic-gcm-aesni-avx`` and
#: glibc and OpenSSL their AVX2 paths: OpenSSL's AES-128-GCM on 16 KiB ran at 9 MB/s with
#: them and at 50 MB/s without (same guest, same minute). AES-NI and PCLMULQDQ stay, so the
#: kernel's accelerated GCM (``generic-gcm-aesni``) is still the one tested. Given before the
#: user's ``--qemu-opts``, whose own ``-cpu`` therefore wins; KVM keeps vng's ``-cpu host``.
TCG_CPU = "max,-avx,-avx2,-f16c,-fma,-vaes,-vpclmulqdq"
#: No BSD-style (legacy) PTYs: the kernels here have ``CONFIG_LEGACY_PTYS=y`` with 256 pairs,
#: 512 of a guest's 615 device nodes, and virtme-ng-init runs udev's coldplug and settle
#: over every device before the guest's script starts. Nothing in a guest uses them (sshd and
#: the tests take Unix 98 PTYs from ``/dev/pts``). Measured on the default kernel under TCG,
#: ``vng --run ... -- SCRIPT`` with this argument took 10.3-10.9 s from start to exit instead
#: of 14.1-15.1 s, udev 2.1-2.6 s instead of 4.6-5.6 s (2026-12-01, two runs each).
NO_LEGACY_PTYS = "pty.legacy_count=0"


class GuestLaunchError(GuestError):
    """QEMU/virtme-ng could not be started at all (a missing tool, a bad argument)."""


def tools_dir() -> Path:
    """The directory of this interpreter: a venv's ``bin``, where pip put vng and virtme-run.

    Not resolved: a venv's ``python`` is a symlink to the base interpreter.
    """
    return Path(sys.executable).parent


def launch_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for vng: PATH starts with ``tools_dir()``."""
    env = dict(os.environ if base is None else base)
    path = env.get("PATH") or os.defpath
    env["PATH"] = os.pathsep.join([str(tools_dir()), *[p for p in path.split(os.pathsep)
                                                      if p and p != str(tools_dir())]])
    return env


def check_launch_tools(env: dict[str, str] | None = None) -> None:
    """Raise GuestLaunchError naming every tool a launch needs that is not on PATH."""
    path = (env or launch_env())["PATH"]
    missing = [t for t in LAUNCH_TOOLS if shutil.which(t, path=path) is None]
    if missing:
        hint = (f"install QEMU ({QEMU}: `./setup.sh` or apt-get install qemu-system-x86)"
                if QEMU in missing else "run ./setup.sh (virtme-ng belongs in .venv)")
        raise GuestLaunchError(f"cannot start a guest: {', '.join(missing)} not found in "
                               f"{tools_dir()} or PATH={path}; {hint}")


def vng_argv(bzimage: Path, *, kvm: bool, cpus: int, memory: str, append: list[str],
             qemu_opts: list[str], command: list[str], verbose: bool = True,
             dry_run: bool = False) -> list[str]:
    """``vng --run`` with the host root shared read-only over 9p (``dry_run``: only print
    the QEMU command line virtme-run would start)."""
    argv = [str(tools_dir() / "vng") if (tools_dir() / "vng").is_file() else "vng",
            "--run", str(bzimage), "--force-9p",
            "--cpus", str(cpus), "--memory", memory, "-a", "root=/dev/root", "-a", ROOT_FLAGS,
            "-a", NO_LEGACY_PTYS]
    if verbose:
        argv.append("--verbose")
    if not kvm:
        argv += ["--disable-kvm", f"--qemu-opts=-cpu {TCG_CPU}"]
    if dry_run:
        argv.append("--dry-run")
    for a in append:
        argv += ["-a", a]
    for o in qemu_opts:
        argv.append(f"--qemu-opts={o}")
    return [*argv, "--", *command]


@dataclass(frozen=True)
class ProbeOutcome:
    """What one probe boot showed."""

    kvm: bool  # the guest reached userspace under KVM
    kernel_ran: bool  # the kernel printed its banner: QEMU started it
    output: str
    status: int | None  # None: killed at the deadline

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output.strip().splitlines()[-lines:])

    def complaint(self) -> str:
        """QEMU's first error line (else the last line): what a one-line reason quotes."""
        lines = self.output.strip().splitlines()
        return next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "")

    def launch_error(self) -> str | None:
        """Why the probe says nothing about KVM because the launch itself failed (a program
        not found, vng refusing its arguments), or None."""
        if self.kvm or self.kernel_ran:
            return None
        if self.status == 127 or "not found" in self.output:
            return f"a program was not found (exit {self.status}):\n{self.tail()}"
        if self.status == 2 and "usage:" in self.output:
            return f"vng refused its arguments:\n{self.tail()}"
        return None

    def needs_tcg_control(self) -> bool:
        """QEMU exited before the kernel started, for a reason its output does not name as
        KVM's. Either KVM cannot run a vCPU here (seen on a nested host: "failed to set MSR
        0x10a") or the launch itself is broken: the same launch under TCG tells them apart."""
        return (not self.kvm and not self.kernel_ran and self.status is not None
                and self.launch_error() is None and not _kvm_refused(self.output))


def _kvm_refused(output: str) -> bool:
    return any(s in output for s in ("failed to initialize kvm", "Could not access KVM",
                                     "failed to initialize KVM", "KVM_CREATE_VM"))


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def kvm_usable(bzimage: Path) -> bool:
    """Whether guests can use KVM here; probed once per host boot and cached.

    Only a real answer is cached: the kernel failing under KVM, or QEMU unable to use KVM
    (refused, or exiting before the kernel started while the same launch works under TCG).
    A launch that fails for any other reason raises GuestLaunchError and caches nothing.
    """
    if os.environ.get("KTLSKIT_ACCEL") in ("tcg", "kvm"):
        return os.environ["KTLSKIT_ACCEL"] == "kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    cache = paths.cache_dir() / "kvm-probe.json"
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("boot_id") == _boot_id():
            return bool(data["kvm"])
    check_launch_tools()
    outcome = probe(bzimage)
    log = paths.cache_dir() / "kvm-probe.log"
    log.write_text(f"status {outcome.status}\n{outcome.output}")
    why = outcome.launch_error()
    if why is not None:
        raise GuestLaunchError(f"the KVM probe could not launch a guest: {why}\n(full output: "
                               f"{log})")
    reason = _kvm_failure(outcome, bzimage, log)
    cache.write_text(json.dumps({"boot_id": _boot_id(), "kvm": outcome.kvm,
                                 "kernel_ran": outcome.kernel_ran, "reason": reason}) + "\n")
    say("KVM works: guests use KVM" if outcome.kvm else
        f"guests use TCG (--disable-kvm), not KVM: {reason}")
    return outcome.kvm


def _kvm_failure(outcome: ProbeOutcome, bzimage: Path, log: Path) -> str:
    """Why KVM is out ("" when it works), after a TCG control boot where the KVM one ended
    before the kernel started; GuestLaunchError when the control fails as well."""
    if outcome.kvm:
        return ""
    if outcome.kernel_ran:
        return "the kernel started under KVM but did not reach user space"
    if outcome.status is None:
        return "no kernel banner under KVM before the deadline"
    if not outcome.needs_tcg_control():
        return f"QEMU refused KVM: {outcome.complaint()}"
    control = probe(bzimage, kvm=False)
    with log.open("a") as f:
        f.write(f"--- the same launch under TCG: status {control.status}\n{control.output}")
    if not control.kernel_ran:
        raise GuestLaunchError(
            f"the KVM probe could not launch a guest: QEMU/vng exited with status "
            f"{outcome.status} before the kernel started, and the same launch under TCG did "
            f"not start it either:\n{control.tail()}\n(full output: {log})")
    return (f"QEMU exited with status {outcome.status} before the kernel started under KVM and "
            f"started it under TCG: {outcome.complaint()}")


def probe(bzimage: Path, timeout: float = PROBE_TIMEOUT,
          banner_timeout: float = BANNER_TIMEOUT, *, kvm: bool = True) -> ProbeOutcome:
    """Boot once under KVM. A kernel that has not printed its banner after ``banner_timeout``
    (KVM gets there in about a second) is taken as not booting; one that did gets ``timeout``
    to reach userspace. ``kvm=False``: the same launch under TCG, as a control, stopped as
    soon as the kernel printed its banner (``timeout`` to get there)."""
    say("probing KVM with a real boot (once per host boot)" if kvm else
        "KVM launch ended before the kernel started: the same launch under TCG, as a control")
    argv = vng_argv(bzimage, kvm=kvm, cpus=1, memory="512M", append=[], qemu_opts=[],
                    command=["echo", PROBE_MARK])
    done = PROBE_MARK if kvm else KERNEL_STARTED
    lines: list[str] = []
    # vng runs QEMU through a shell: kill the whole session at the end, not just vng.
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          env=launch_env(), start_new_session=True) as proc:
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                                  daemon=True)  # type: ignore[union-attr]
        reader.start()
        start = time.monotonic()
        status: int | None = None
        while True:
            status = proc.poll()
            out = "".join(lines)
            elapsed = time.monotonic() - start
            if status is not None or done in out or elapsed > timeout or (
                    kvm and elapsed > banner_timeout and KERNEL_STARTED not in out):
                break
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=5)
    out = "".join(lines)
    # vng's KVM mode passes "-cpu host", which TCG cannot run: reaching
    # userspace means KVM really ran the guest, not a silent TCG fallback.
    return ProbeOutcome(kvm=kvm and PROBE_MARK in out, kernel_ran=KERNEL_STARTED in out,
                        output=out, status=status)
