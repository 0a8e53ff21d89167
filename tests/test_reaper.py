"""The reaper takes its child down when the harness goes, and when it is signalled itself."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ktlskit.guest import reaper


def _alive(pid: int) -> bool:
    """By pid, not ``pgrep -f``: no scan of every process's cmdline (a read that can block
    behind another process's mm), and no match on another run's ``sleep`` of the same tag."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _child_sleep(reaper_pid: int) -> int | None:
    """The pid of the reaper's ``sleep`` child, once it has exec'd (None before)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            comm = fields[0].split("(", 1)[1]
            ppid = int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == reaper_pid and comm == "sleep":
            return int(stat.parent.name)
    return None


def _start(tag: str, *idle: str) -> tuple[subprocess.Popen[bytes], int]:
    """A reaper over ``sleep TAG`` and the sleep's pid; with ``idle`` (``--idle FILE
    SECONDS``) a detached one."""
    # -I: the reaper runs by its path with the standard library alone (no ktlskit import)
    r = subprocess.Popen([sys.executable, "-I", reaper.__file__, *idle, "--", "sleep", tag],
                         stdin=subprocess.DEVNULL if idle else subprocess.PIPE,
                         start_new_session=True)
    deadline = time.monotonic() + 10
    while (pid := _child_sleep(r.pid)) is None:
        assert time.monotonic() < deadline, "the reaper started no sleep within 10 s"
        time.sleep(0.05)
    return r, pid


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signalled_reaper_kills_its_child(sig: signal.Signals) -> None:
    tag = f"{300 + int(sig)}.5"
    r, pid = _start(tag)
    r.send_signal(sig)
    r.wait(timeout=10)
    assert _gone(pid)


def test_closed_pipe_kills_the_child() -> None:
    tag = "299.5"
    r, pid = _start(tag)
    assert r.stdin is not None
    r.stdin.close()
    r.wait(timeout=10)
    assert _gone(pid)


def test_detached_guest_survives_its_owner_while_used(tmp_path: Path) -> None:
    """A warm guest's reaper ignores stdin; touching the stamp keeps it alive."""
    stamp = tmp_path / "used"
    stamp.touch()
    tag = "298.5"
    r, pid = _start(tag, "--idle", str(stamp), "2")
    for _ in range(4):
        time.sleep(1)
        stamp.touch()
        assert _alive(pid)
    assert r.poll() is None
    r.wait(timeout=15)  # no more touches: it stops itself after 2 s idle
    assert _gone(pid)


def test_detached_reaper_still_dies_with_a_signal(tmp_path: Path) -> None:
    stamp = tmp_path / "used"
    stamp.touch()
    tag = "297.5"
    r, pid = _start(tag, "--idle", str(stamp), "600")
    r.send_signal(signal.SIGTERM)
    r.wait(timeout=10)
    assert _gone(pid)
