"""Commands on a machine over SSH (paramiko), each with a deadline: the guest's and a real
machine's transport."""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ..hosts.host import HostCommandError, HostError, HostResult, HostTimeoutError

# The names this module had before the Host contract; kept for existing callers.
GuestCommandError = HostCommandError
GuestResult = HostResult
GuestTimeoutError = HostTimeoutError


def _tail(text: str, n: int = 30) -> str:
    return "\n".join(text.splitlines()[-n:])


def _wrap(command: str, timeout: float | None, epilogue: str = "", pidfile: str = "") -> str:
    """``sh -c`` under coreutils timeout (so the remote side dies too), then ``epilogue``.

    The epilogue runs whatever happened to the command and keeps its exit status. With
    ``pidfile`` (no epilogue) the command is exec'd after writing its pid there, so ``kill()``
    can signal it (coreutils timeout passes the signal on).
    """
    inner = f"sh -c {shlex.quote(command)}"
    if timeout is not None:
        inner = f"timeout --kill-after=5 {timeout:.0f} {inner}"
    if epilogue:
        inner = f"{inner}; rc=$?; {epilogue}; exit $rc"
    elif pidfile:
        inner = f"echo $$ >{shlex.quote(pidfile)} && exec {inner}"
    return inner


@dataclass
class _Reader:
    """Drains a channel's stdout and stderr in a thread so neither pipe blocks."""

    channel: paramiko.Channel
    out: list[bytes] = field(default_factory=list)
    err: list[bytes] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        ch = self.channel
        while True:
            busy = False
            if ch.recv_ready():
                self.out.append(ch.recv(65536))
                busy = True
            if ch.recv_stderr_ready():
                self.err.append(ch.recv_stderr(65536))
                busy = True
            if not busy:
                if ch.exit_status_ready() and not ch.recv_ready() and not ch.recv_stderr_ready():
                    return
                if ch.closed:
                    return
                time.sleep(0.01)

    def text(self) -> tuple[str, str]:
        return (b"".join(self.out).decode(errors="replace"),
                b"".join(self.err).decode(errors="replace"))


class SshProcess:
    """A command started with ``spawn()``; its output accumulates while it runs."""

    def __init__(self, session: SshSession, command: str, channel: paramiko.Channel,
                 pidfile: str = "") -> None:
        self.session = session
        self.command = command
        self._pidfile = pidfile
        self._channel = channel
        self._reader = _Reader(channel)
        self._reader.start()

    @property
    def stdout(self) -> str:
        return self._reader.text()[0]

    @property
    def stderr(self) -> str:
        return self._reader.text()[1]

    def running(self) -> bool:
        return not self._channel.exit_status_ready()

    def wait(self, timeout: float, check: bool = True) -> HostResult:
        deadline = time.monotonic() + timeout
        while not self._channel.exit_status_ready():
            if time.monotonic() > deadline:
                out, err = self._reader.text()
                raise HostTimeoutError(f"{self.session.where} command still running after "
                                       f"{timeout:.0f}s: {self.command}\n{_tail(out + err)}")
            time.sleep(0.05)
        rc = self._channel.recv_exit_status()
        if self._reader.thread:
            self._reader.thread.join(timeout=10)
        out, err = self._reader.text()
        result = HostResult(self.command, rc, out, err)
        if check and rc != 0:
            raise HostCommandError(result, self.session.where)
        return result

    def kill(self) -> None:
        """Stop the command: closing the channel alone leaves it running on the remote side
        until its timeout, so a command spawned with a pidfile is signalled first."""
        if self._pidfile and self.running():
            pid = shlex.quote(self._pidfile)
            with contextlib.suppress(HostError, paramiko.SSHException, OSError):
                self.session.run(f"kill -TERM $(cat {pid}) 2>/dev/null; rm -f {pid}",
                                 timeout=15, check=False)
        self._channel.close()


#: The old name of SshProcess.
GuestProcess = SshProcess


class SshSession:
    """A paramiko connection to an sshd; ``where`` names the machine in errors."""

    def __init__(self, client: paramiko.SSHClient, where: str = "guest") -> None:
        self.client = client
        self.where = where

    @classmethod
    def connect(cls, port: int, user_key: paramiko.PKey, host_key: paramiko.PKey,
                timeout: float) -> SshSession:
        client = paramiko.SSHClient()
        client.get_host_keys().add(f"[127.0.0.1]:{port}", host_key.get_name(), host_key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect("127.0.0.1", port=port, username="root", pkey=user_key,
                           timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                           allow_agent=False, look_for_keys=False)
        except BaseException:
            # A failed attempt must not leave its socket and transport thread behind: sshd
            # counts such half-open connections against MaxStartups and then refuses all.
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(5)
        return cls(client)

    def spawn(self, command: str, timeout: float | None = None,
              epilogue: str = "", pidfile: str = "") -> SshProcess:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise HostTimeoutError(f"the SSH connection to the {self.where} is gone")
        try:
            channel = transport.open_session(timeout=30)
            channel.exec_command(_wrap(command, timeout, epilogue, pidfile))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            # EOFError: the machine closed the connection (powering off, sshd killed)
            raise HostError(f"the SSH connection to the {self.where} failed while starting "
                            f"{command!r}: {type(exc).__name__}: {exc}") from exc
        return SshProcess(self, command, channel, pidfile)

    def run(self, command: str, timeout: float, check: bool = True,
            epilogue: str = "") -> HostResult:
        proc = self.spawn(command, timeout=timeout, epilogue=epilogue)
        return proc.wait(timeout + 15, check=check)

    def put(self, local: Path, remote: str) -> None:
        with self.client.open_sftp() as sftp:
            sftp.put(str(local), remote)

    def get(self, remote: str, local: Path) -> None:
        with self.client.open_sftp() as sftp:
            sftp.get(remote, str(local))

    def close(self) -> None:
        self.client.close()
