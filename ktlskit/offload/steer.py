"""Steering a case's traffic loops from outside: a hook after each rekey, a gate that waits
for several loops, a reader held at a byte count, and what a loop came to."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from .. import uapi
from .traffic import Worker, err_name


class Hook:
    """An ``on_rekey`` hook: counts the rekeys (also for a loop that fails later) and, right
    after rekey number ``at``, runs ``action`` once, keeping what it returns."""

    def __init__(self, at: int = 0, action: Callable[[], object] | None = None) -> None:
        self.at, self.action = at, action
        self.rekeys = 0
        self.result: object = None

    def __call__(self, n: int) -> None:
        self.rekeys = n
        if n == self.at and self.action is not None:
            self.result = self.action()


class Once:
    """Runs ``fn`` at the ``parties``-th call: once each of as many loops got there."""

    def __init__(self, parties: int, fn: Callable[[], None]) -> None:
        self.left, self.fn = parties, fn
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.left -= 1
            if self.left:
                return
        self.fn()


def outcome(w: Worker, timeout: float) -> object:
    """What a peer's loop returned, the errno it failed with, or ``"running"``."""
    try:
        return w.result(timeout)
    except OSError as exc:
        return err_name(exc)
    except Exception as exc:  # CaseFailure: still running
        return "running" if w.is_alive() else type(exc).__name__


class HeldReader:
    """A socket for ``recv_rekeying`` whose reads stop, once ``limit`` bytes of data were read,
    until ``go`` is set (``held`` says they stopped): with ``limit`` the bytes before a
    KeyUpdate, the reader has it ahead, unread, and the records after it are queued."""

    def __init__(self, sk: socket.socket, limit: int, go: threading.Event) -> None:
        self.sk, self.limit, self.go = sk, limit, go
        self.held = threading.Event()
        self.read = 0

    def recvmsg(self, size: int, ancsize: int) -> tuple[bytes, list[Any], int, Any]:
        if self.read >= self.limit and not self.go.is_set():
            self.held.set()
            self.go.wait()
        data, anc, flags, addr = self.sk.recvmsg(size, ancsize)
        if all(kind != uapi.TLS_GET_RECORD_TYPE or value[0] == uapi.TLS_RECORD_TYPE_DATA
               for _level, kind, value in anc):
            self.read += len(data)
        return data, anc, flags, addr

    def setsockopt(self, *args: Any) -> None:
        self.sk.setsockopt(*args)
