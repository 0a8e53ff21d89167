"""The Host contract: what ktlskit needs from a machine it runs kTLS work on.

Three kinds implement it: the QEMU guest (``ktlskit.guest.Guest``, over SSH, splats from its
console), this machine (``LocalHost``: in-guest mode, or the DUT ktlskit itself runs on) and a
real machine over SSH (``SshHost``, splats from its kernel log). Code that drives hosts uses
only what is here; which kind it has is nobody's business outside tests.

Stdlib only: a remote machine imports ``ktlskit.hosts`` without paramiko.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import KtlskitError

if TYPE_CHECKING:
    from pathlib import Path

    from .splat import Splat


class HostError(KtlskitError):
    """A host could not be reached, prepared or used."""


@dataclass(frozen=True)
class HostResult:
    """A finished command."""

    command: str
    rc: int
    stdout: str
    stderr: str


def _tail(text: str, n: int = 30) -> str:
    return "\n".join(text.splitlines()[-n:])


class HostCommandError(HostError):
    """A command exited non-zero (when checked)."""

    def __init__(self, result: HostResult, where: str = "guest") -> None:
        self.result = result
        super().__init__(f"{where} command failed (exit {result.rc}): {result.command}\n"
                         f"{_tail(result.stdout + result.stderr)}")


class HostTimeoutError(HostError):
    """A command, or the host itself, did not finish in time."""


class HostSplatError(HostError):
    """The host's kernel printed a splat; ``.splats`` holds the reports."""

    def __init__(self, splats: list[Splat], context: str = "", where: str = "") -> None:
        self.splats = splats
        at = f" on {where}" if where else ""
        ctx = f" {context}" if context else ""
        body = "\n\n".join(s.report for s in splats)
        super().__init__(f"{len(splats)} kernel splat(s){at}{ctx}: "
                         f"{'; '.join(str(s) for s in splats)}\n{body}")


class Process(Protocol):
    """A command started with ``Host.spawn``; its output accumulates while it runs."""

    command: str

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...

    def running(self) -> bool: ...

    def wait(self, timeout: float, check: bool = True) -> HostResult:
        """The result; HostTimeoutError after ``timeout`` s, HostCommandError on a non-zero
        exit when ``check``."""
        ...

    def kill(self) -> None: ...


class Host(Protocol):
    """A machine that runs commands and ktlskit's own modules (``ktlskit.hosts.call``)."""

    #: Who this is, for reports and errors: "guest 127.0.0.1:40123 (tcg)", "local", "root@dut".
    name: str
    #: A Python (>= 3.11) on that machine that imports ktlskit and its dependencies.
    python: str

    @property
    def tmpdir(self) -> str:
        """A directory on that machine private to this session (made on first use)."""
        ...

    def run(self, command: str, timeout: float = 60, check: bool = True) -> HostResult:
        """``sh -c command`` there, killed after ``timeout`` s. Raises HostCommandError on a
        non-zero exit when ``check``; may raise HostSplatError when it sees a splat."""
        ...

    def spawn(self, command: str, timeout: float | None = None) -> Process: ...

    def put(self, local: Path, remote: str) -> None: ...

    def get(self, remote: str, local: Path) -> None: ...

    def new_splats(self) -> list[Splat]:
        """Kernel splats printed since the last look (the mark moves on)."""
        ...

    def check(self, context: str = "") -> None:
        """Raise HostSplatError for splats printed since the last look."""
        ...
