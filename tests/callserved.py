"""This machine as a host whose calls go to a real call server (``ktlskit.hosts.callserver``)
over a local TCP connection: the guest's arrangement, without the guest."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from ktlskit.hosts.callclient import ServedProcess, ServerRefused
from ktlskit.hosts.host import Process
from ktlskit.hosts.local import LocalHost


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedLocalHost(LocalHost):
    """Calls go to a server started here; ``refused`` counts those it did not take."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.server = subprocess.Popen(
            [sys.executable, "-m", "ktlskit.hosts.callserver", "--port", str(self.port),
             "--preload", "ktlskit.tlsstats"], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        assert self.server.stderr is not None
        line = self.server.stderr.readline()
        assert "ready" in line, line
        self.refused = 0
        self.served_count = 0

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def served(self, request: str, netns: str, command: str,
               timeout: float | None) -> Process | None:
        try:
            sock = self.connect()
            sock.settimeout(None)
            proc = ServedProcess.open(sock, {"request": request, "netns": netns},
                                      command, "served local", timeout)
        except (OSError, ServerRefused):
            self.refused += 1
            return None
        self.served_count += 1
        return proc

    def close(self) -> None:
        self.server.kill()
        self.server.wait(timeout=10)
        super().close()


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False
