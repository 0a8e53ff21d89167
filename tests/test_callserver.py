"""The call server on this machine (a real server process and real forks): a worker runs in
the request's network namespace with that namespace's /sys, a kill reaches everything the
worker started, and changed code is refused instead of run stale."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from callserved import ServedLocalHost, free_port

from ktlskit.hosts import callserver
from ktlskit.hosts.call import call, request_json, start
from ktlskit.hosts.callclient import ServedProcess, ServerRefused


@pytest.fixture()
def served() -> Iterator[ServedLocalHost]:
    h = ServedLocalHost()
    yield h
    h.close()


def test_a_worker_is_a_fresh_process_group_in_this_namespace(served: ServedLocalHost) -> None:
    me = callserver.identity()
    there = call(served, callserver.identity)
    assert there["netns"] == me["netns"]
    assert there["pid"] == there["pgid"] != served.server.pid
    assert served.served_count == 1


def test_a_worker_enters_the_namespace_and_its_sys(served: ServedLocalHost) -> None:
    ns = f"ktlskit-cs-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True, check=False,
                      timeout=30).returncode:
        pytest.skip("cannot create a network namespace here")
    try:
        there = call(served, callserver.identity, netns=ns)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=30)
    assert there["netns"] != callserver.identity()["netns"]
    assert there["sys_class_net"] == ["lo"]  # that namespace's sysfs, as ip netns exec gives


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def test_a_kill_ends_the_worker(served: ServedLocalHost) -> None:
    inner = free_port()  # the worker runs a server of its own: a call that never returns
    pending = start(served, callserver.main, ["--port", str(inner)])
    deadline = time.monotonic() + 30
    while not _listening(inner):
        assert time.monotonic() < deadline and pending.process.running()
        time.sleep(0.05)
    pending.kill()
    deadline = time.monotonic() + 10
    while _listening(inner):
        assert time.monotonic() < deadline, "the killed worker still listens"
        time.sleep(0.05)


def test_a_call_past_its_timeout_is_killed_with_status_124(served: ServedLocalHost) -> None:
    inner = free_port()
    sock = served.connect()
    sock.settimeout(None)
    req = request_json(callserver.main, [["--port", str(inner)]])
    timed = ServedProcess.open(sock, {"request": req, "netns": ""}, "main", "here", 1.0)
    res = timed.wait(30, check=False)
    assert res.rc == 124 and "killed after 1s" in res.stderr
    deadline = time.monotonic() + 10
    while _listening(inner):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_changed_code_is_refused_and_the_server_ends(served: ServedLocalHost) -> None:
    module = Path(callserver.__file__).with_name("host.py")  # loaded by every server
    st = module.stat()
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        sock = served.connect()
        with pytest.raises(ServerRefused, match="code changed since the server started"):
            ServedProcess.open(sock, {"request": "{}", "netns": ""}, "x", "here", 10)
    finally:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert served.server.wait(timeout=10) == 0


def test_changed_lists_only_the_files_that_moved(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x")
    b.write_text("y")
    loaded = {str(a): a.stat().st_mtime_ns, str(b): b.stat().st_mtime_ns}
    assert callserver.changed(loaded) == []
    os.utime(a, ns=(0, 1))
    b.unlink()
    assert callserver.changed(loaded) == [str(a), str(b)]
