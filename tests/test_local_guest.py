"""In-guest mode: LocalProcess shows output while the command runs, as the SSH one does."""

import time

import pytest

from ktlskit.hosts.host import HostCommandError, HostTimeoutError
from ktlskit.hosts.local import LocalProcess


def test_output_is_visible_while_running() -> None:
    p = LocalProcess("echo listening >&2; sleep 2; echo done", timeout=20)
    deadline = time.monotonic() + 5
    while "listening" not in p.stderr and time.monotonic() < deadline:
        time.sleep(0.02)
    assert p.stderr == "listening\n" and p.running()
    res = p.wait(10)
    assert (res.rc, res.stdout) == (0, "done\n")


def test_failure_and_timeout_are_typed() -> None:
    with pytest.raises(HostCommandError):
        LocalProcess("exit 3", timeout=10).wait(10)
    p = LocalProcess("sleep 5", timeout=20)
    with pytest.raises(HostTimeoutError):
        p.wait(0.2)
    p.kill()
