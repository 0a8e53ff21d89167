"""virtme-ng command lines, and the one-time KVM probe.

On some hosts /dev/kvm exists but a normal kernel dies under it, so "is
there /dev/kvm" is not enough: the probe boots the real kernel once under
KVM and remembers (per host boot) whether it reached userspace.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .. import paths
from ..progress import say

PROBE_MARK = "ktlskit-kvm-probe-ok"
PROBE_TIMEOUT = 90


def vng_argv(bzimage: Path, *, kvm: bool, cpus: int, memory: str, append: list[str],
             qemu_opts: list[str], command: list[str]) -> list[str]:
    """``vng --run`` with the host root shared read-only over 9p."""
    argv = [_vng(), "--run", str(bzimage), "--force-9p", "--verbose",
            "--cpus", str(cpus), "--memory", memory, "-a", "root=/dev/root"]
    if not kvm:
        argv.append("--disable-kvm")
    for a in append:
        argv += ["-a", a]
    for o in qemu_opts:
        argv.append(f"--qemu-opts={o}")
    return [*argv, "--", *command]


def _vng() -> str:
    """The vng installed beside this Python (a venv), else the one on PATH."""
    local = Path(sys.executable).with_name("vng")
    return str(local) if local.is_file() else "vng"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def kvm_usable(bzimage: Path) -> bool:
    """Whether guests can use KVM here; probed once per host boot and cached."""
    if os.environ.get("KTLSKIT_ACCEL") in ("tcg", "kvm"):
        return os.environ["KTLSKIT_ACCEL"] == "kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    cache = paths.cache_dir() / "kvm-probe.json"
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("boot_id") == _boot_id():
            return bool(data["kvm"])
    ok = _probe(bzimage)
    cache.write_text(json.dumps({"boot_id": _boot_id(), "kvm": ok}) + "\n")
    return ok


def _probe(bzimage: Path) -> bool:
    say("probing KVM with a real boot (once per host boot)")
    argv = vng_argv(bzimage, kvm=True, cpus=1, memory="512M", append=[], qemu_opts=[],
                    command=["echo", PROBE_MARK])
    # vng runs QEMU through a shell: kill the whole session on timeout, not just vng.
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          start_new_session=True) as proc:
        try:
            out, _ = proc.communicate(timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            out = ""
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    # vng's KVM mode passes "-cpu host", which TCG cannot run: reaching
    # userspace means KVM really ran the guest, not a silent TCG fallback.
    ok = PROBE_MARK in out
    say(f"KVM {'works' if ok else 'does not boot this kernel'}: guests use "
        f"{'KVM' if ok else 'TCG (--disable-kvm)'}")
    return ok
