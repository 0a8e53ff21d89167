"""The reaper takes its child down when the harness goes, and when it is signalled itself."""

import signal
import subprocess
import sys
import time

import pytest


def _alive(tag: str) -> bool:
    found = subprocess.run(["pgrep", "-f", f"^{tag}"], capture_output=True, check=False)
    return found.returncode == 0


def _start(tag: str) -> subprocess.Popen[bytes]:
    r = subprocess.Popen([sys.executable, "-m", "ktlskit.guest.reaper", "--", "sleep", tag],
                         stdin=subprocess.PIPE, start_new_session=True)
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
