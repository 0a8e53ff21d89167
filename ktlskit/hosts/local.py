"""This machine as a Host: ktlskit already runs here (in-guest mode, or on the DUT itself).

Commands run locally with the same deadlines as over SSH, and splats are read from the
kernel log by record number (``kmsg.py``; a real DUT's log is full and wraps).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

from .host import HostCommandError, HostError, HostResult, HostTimeoutError
from .kmsg import KmsgWatch
from .splat import Splat


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

    def wait(self, timeout: float, check: bool = True) -> HostResult:
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise HostTimeoutError(f"command still running after {timeout:.0f}s: "
                                   f"{self.command}\n{self.stderr[-2000:]}") from exc
        for t in self._readers:
            t.join(timeout=10)
        res = HostResult(self.command, self._proc.returncode, self.stdout, self.stderr)
        if check and res.rc != 0:
            raise HostCommandError(res, "local")
        return res

    def kill(self) -> None:
        self._proc.terminate()  # coreutils timeout passes it on to the command
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


class LocalHost:
    """This machine. ``python`` is the interpreter running ktlskit now."""

    name = "local"
    python = sys.executable

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._watch: KmsgWatch | None = None
        self._unreadable: HostError | None = None
        try:
            self._watch = KmsgWatch(lambda c: self.run(c, timeout=60, check=False),
                                    "this machine")
        except HostError as exc:  # not root: an error when splats are asked for, not before
            self._unreadable = exc

    def _kmsg(self) -> KmsgWatch:
        if self._watch is None:
            raise self._unreadable or HostError("no kernel log")
        return self._watch

    @property
    def tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ktlskit-")
        return self._tmp.name

    def run(self, command: str, timeout: float = 60, check: bool = True) -> HostResult:
        return self.spawn(command, timeout).wait(timeout + 15, check=check)

    def spawn(self, command: str, timeout: float | None = None) -> LocalProcess:
        return LocalProcess(command, timeout)

    def put(self, local: Path, remote: str) -> None:
        shutil.copy(local, remote)

    def get(self, remote: str, local: Path) -> None:
        shutil.copy(remote, local)

    def new_splats(self) -> list[Splat]:
        return self._kmsg().new_splats()

    def check(self, context: str = "") -> None:
        self._kmsg().check(context)

    def close(self) -> None:
        """Remove the temporary directory."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
