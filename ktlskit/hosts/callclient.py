"""The harness's side of the call server (``callserver``): a request sent over a stream, the
worker's output and exit status read back as a ``Process``.

The stream is anything with ``sendall``/``recv``/``close``: a paramiko channel to the
guest's 127.0.0.1 (``direct-tcpip`` through the SSH connection), or a socket in the tests.
Like a command run with a time limit over SSH, a call that outlives its ``timeout`` is killed
and ends with status 124.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
from collections.abc import Callable
from typing import Protocol

from .host import HostCommandError, HostResult, HostTimeoutError

TIMED_OUT = 124
LOST = 255


class Stream(Protocol):
    def sendall(self, data: bytes) -> None: ...

    def recv(self, n: int) -> bytes: ...

    def close(self) -> None: ...


class ServerRefused(Exception):
    """The server did not take the request (code changed under it, or it went away)."""


def _read_exact(stream: Stream, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.recv(n - len(buf))
        if not chunk:
            raise EOFError("the call server closed the connection")
        buf += chunk
    return buf


def read_frame(stream: Stream) -> tuple[bytes, bytes]:
    head = _read_exact(stream, 5)
    kind, size = head[:1], struct.unpack(">I", head[1:])[0]
    return kind, _read_exact(stream, size)


class ServedProcess:
    """A call the server runs; its output accumulates while it runs (a ``Process``)."""

    def __init__(self, stream: Stream, command: str, where: str, timeout: float | None,
                 after: Callable[[], None] | None = None) -> None:
        self.command = command
        self._stream = stream
        self._where = where
        self._after = after
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._rc: int | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        if timeout is not None:
            self._timer = threading.Timer(timeout, self._time_out, (timeout,))
            self._timer.daemon = True
            self._timer.start()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, stream: Stream, request: dict[str, str], command: str, where: str,
             timeout: float | None, after: Callable[[], None] | None = None) -> ServedProcess:
        """Send the request and wait for the server to start its worker; ServerRefused when
        it does not (the caller then runs the command the ordinary way)."""
        try:
            stream.sendall(json.dumps(request).encode() + b"\n")
            kind, payload = read_frame(stream)
        except (OSError, EOFError) as exc:
            stream.close()
            raise ServerRefused(f"{type(exc).__name__}: {exc}") from exc
        if kind != b"S":
            stream.close()
            raise ServerRefused(payload.decode(errors="replace") or f"frame {kind!r}")
        return cls(stream, command, where, timeout, after)

    def _read(self) -> None:
        try:
            while True:
                kind, payload = read_frame(self._stream)
                with self._lock:
                    if kind == b"O":
                        self._out.append(payload)
                    elif kind == b"E":
                        self._err.append(payload)
                    elif kind == b"R":
                        self._finish(int(payload))
                        return
        except (OSError, EOFError, ValueError) as exc:
            with self._lock:
                if self._rc is None:
                    self._err.append(f"\nktlskit: the call server's connection ended before "
                                     f"the exit status ({exc})\n".encode())
                    self._finish(LOST)
        finally:
            with contextlib.suppress(OSError):
                self._stream.close()

    def _finish(self, rc: int) -> None:
        if self._rc is None:
            self._rc = rc
            self._done.set()
            if self._timer is not None:  # else its thread sleeps out the whole timeout
                self._timer.cancel()

    def _time_out(self, timeout: float) -> None:
        with self._lock:
            if self._rc is not None:
                return
            self._err.append(f"\nktlskit: killed after {timeout:.0f}s\n".encode())
            self._finish(TIMED_OUT)
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.sendall(b"k")  # any byte, or the close, kills the worker
        with contextlib.suppress(OSError):
            self._stream.close()

    def _text(self, parts: list[bytes]) -> str:
        with self._lock:
            return b"".join(parts).decode(errors="replace")

    @property
    def stdout(self) -> str:
        return self._text(self._out)

    @property
    def stderr(self) -> str:
        return self._text(self._err)

    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float, check: bool = True) -> HostResult:
        if not self._done.wait(timeout):
            raise HostTimeoutError(f"{self._where} call still running after {timeout:.0f}s: "
                                   f"{self.command}\n{self.stderr[-2000:]}")
        self._thread.join(timeout=10)
        try:
            if self._after is not None:
                self._after()
        finally:
            self._after = None
        assert self._rc is not None
        result = HostResult(self.command, self._rc, self.stdout, self.stderr)
        if check and result.rc != 0:
            raise HostCommandError(result, self._where)
        return result

    def kill(self) -> None:
        with self._lock:
            self._finish(137)
        self._close()
