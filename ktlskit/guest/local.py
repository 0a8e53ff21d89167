"""The same interface as ``Guest`` for code already running inside a guest.

``vng -- pytest vmtests/`` runs the tests in the guest itself: commands run
locally and splats are read from the kernel log (``dmesg``) instead of the
console file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from .splat import Splat
from .ssh import GuestCommandError, GuestResult, GuestTimeoutError
from .watch import SplatWatch


def running_in_guest() -> bool:
    """True inside a virtme-ng guest (or when KTLSKIT_IN_GUEST=1 says so)."""
    if os.environ.get("KTLSKIT_IN_GUEST") in ("0", "1"):
        return os.environ["KTLSKIT_IN_GUEST"] == "1"
    try:
        return "virtme" in Path("/proc/cmdline").read_text()
    except OSError:
        return False


class LocalProcess:
    """A background command; its output accumulates while it runs (as over SSH)."""

    def __init__(self, command: str, timeout: float | None) -> None:
        self.command = command
        argv = ["sh", "-c", command]
        if timeout is not None:
            argv = ["timeout", "--kill-after=5", f"{timeout:.0f}", *argv]
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, errors="replace")
        self._chunks: tuple[list[str], list[str]] = ([], [])
        self._readers = [threading.Thread(target=self._read, args=(pipe, out), daemon=True)
                         for pipe, out in ((self._proc.stdout, self._chunks[0]),
                                           (self._proc.stderr, self._chunks[1]))]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(pipe: IO[str] | None, out: list[str]) -> None:
        if pipe is None:
            return
        for line in iter(pipe.readline, ""):
            out.append(line)
        pipe.close()

    @property
    def stdout(self) -> str:
        return "".join(self._chunks[0])

    @property
    def stderr(self) -> str:
        return "".join(self._chunks[1])

    def running(self) -> bool:
        return self._proc.poll() is None

    def wait(self, timeout: float, check: bool = True) -> GuestResult:
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise GuestTimeoutError(f"command still running after {timeout:.0f}s: "
                                    f"{self.command}\n{self.stderr[-2000:]}") from exc
        for t in self._readers:
            t.join(timeout=10)
        res = GuestResult(self.command, self._proc.returncode, self.stdout, self.stderr)
        if check and res.rc != 0:
            raise GuestCommandError(res)
        return res

    def kill(self) -> None:
        self._proc.kill()


class LocalGuest:
    accel = "local"
    python = sys.executable

    def __init__(self) -> None:
        self._watch = SplatWatch(self._dmesg)
        self._watch.skip_existing()

    @staticmethod
    def _dmesg() -> str:
        return subprocess.run(["dmesg"], capture_output=True, text=True, errors="replace",
                              timeout=30, check=False).stdout

    def run(self, command: str, timeout: float = 60, check: bool = True) -> GuestResult:
        return self.spawn(command, timeout).wait(timeout + 15, check=check)

    def spawn(self, command: str, timeout: float | None = None) -> LocalProcess:
        return LocalProcess(command, timeout)

    def put(self, local: Path, remote: str) -> None:
        shutil.copy(local, remote)

    def get(self, remote: str, local: Path) -> None:
        shutil.copy(remote, local)

    def new_splats(self) -> list[Splat]:
        return self._watch.new_splats()

    def check(self, context: str = "") -> None:
        self._watch.check(context)
