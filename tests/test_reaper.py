"""The reaper takes its child down when the harness goes, and when it is signalled itself."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _alive(tag: str) -> bool:
    found = subprocess.run(["pgrep", "-f", f"^{tag}"], capture_output=True, check=False)
    return found.returncode == 0


def _start(tag: str, *idle: str) -> subprocess.Popen[bytes]:
    """A reaper over ``sleep TAG``; with ``idle`` (``--idle FILE SECONDS``) a detached one."""
    r = subprocess.Popen([sys.executable, "-m", "ktlskit.guest.reaper", *idle, "--", "sleep",
                          tag], stdin=subprocess.DEVNULL if idle else subprocess.PIPE,
                         start_new_session=True)
    deadline = time.monotonic() + 10
    while not _alive(f"sleep {tag}") and time.monotonic() < deadline:
        time.sleep(0.05)
    return r


def _gone(tag: str) -> bool:
    deadline = time.monotonic() + 10
    while _alive(f"sleep {tag}") and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(f"sleep {tag}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signalled_reaper_kills_its_child(sig: signal.Signals) -> None:
    tag = f"{300 + int(sig)}.5"
    r = _start(tag)
    r.send_signal(sig)
    r.wait(timeout=10)
    assert _gone(tag)


def test_closed_pipe_kills_the_child() -> None:
    tag = "299.5"
    r = _start(tag)
    assert r.stdin is not None
    r.stdin.close()
    r.wait(timeout=10)
    assert _gone(tag)


def test_detached_guest_survives_its_owner_while_used(tmp_path: Path) -> None:
    """A warm guest's reaper ignores stdin; touching the stamp keeps it alive."""
    stamp = tmp_path / "used"
    stamp.touch()
    tag = "298.5"
    r = _start(tag, "--idle", str(stamp), "2")
    for _ in range(4):
        time.sleep(1)
        stamp.touch()
        assert _alive(f"sleep {tag}")
    assert r.poll() is None
    r.wait(timeout=15)  # no more touches: it stops itself after 2 s idle
    assert _gone(tag)


def test_detached_reaper_still_dies_with_a_signal(tmp_path: Path) -> None:
    stamp = tmp_path / "used"
    stamp.touch()
    tag = "297.5"
    r = _start(tag, "--idle", str(stamp), "600")
    r.send_signal(signal.SIGTERM)
    r.wait(timeout=10)
    assert _gone(tag)
