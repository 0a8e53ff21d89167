"""A real machine over SSH as a Host: a DUT or its peer (or a lab guest treated as one).

    with SshHost.open("root@dut") as dut:       # connect, check, deploy ktlskit
        call(dut, tlsstats.snapshot, [], [])

``open`` logs in as the SSH config says (``target.py``), makes a private directory in the
machine's /tmp, deploys ktlskit there (``deploy.py``), checks its kernel has kTLS and marks
its kernel log; leaving the block removes the directory. Splats come from ``/dev/kmsg``.
"""

from __future__ import annotations

import itertools
import logging
import shlex
from pathlib import Path
from types import TracebackType

import paramiko

from ..guest.ssh import SshProcess, SshSession
from . import deploy
from .call import call
from .host import HostError, HostResult
from .kmsg import KmsgWatch
from .splat import Splat
from .target import SshTarget, TargetError, resolve

CONNECT_TIMEOUT = 20.0


def _client(target: SshTarget, timeout: float) -> paramiko.SSHClient:
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # we report failures ourselves
    client = paramiko.SSHClient()
    for f in target.known_hosts:
        if Path(f).is_file():
            client.load_host_keys(f)
    client.set_missing_host_key_policy(paramiko.RejectPolicy() if target.strict
                                       else paramiko.AutoAddPolicy())
    sock = paramiko.ProxyCommand(target.proxy_command) if target.proxy_command else None
    try:
        client.connect(target.hostname, port=target.port, username=target.user,
                       key_filename=list(target.key_files) or None,
                       look_for_keys=not target.key_files, allow_agent=not target.key_files,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       sock=sock)  # type: ignore[arg-type]
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise TargetError(f"{target.spec}: its host key does not match known_hosts "
                          f"({exc})") from exc
    except paramiko.SSHException as exc:
        client.close()
        hint = ("; its host key is not in " + ", ".join(target.known_hosts) +
                ": log in once with ssh to accept it") if "not found in known_hosts" in \
            str(exc) else ""
        raise TargetError(f"{target.spec}: SSH to {target.user}@{target.hostname}:"
                          f"{target.port} failed: {exc}{hint}") from exc
    except OSError as exc:
        client.close()
        raise TargetError(f"{target.spec}: cannot reach {target.hostname}:{target.port}: "
                          f"{exc}") from exc
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(5)
    return client


class SshHost:
    """A machine over SSH with ktlskit deployed in its ``tmpdir``."""

    def __init__(self, target: SshTarget, session: SshSession, tmpdir: str) -> None:
        self.target = target
        self.name = target.spec
        self._session = session
        self._tmpdir = tmpdir
        self.python = ""
        self._watch: KmsgWatch | None = None
        self._spawns = itertools.count()

    @classmethod
    def open(cls, spec: str, ssh_config: Path | None = None,
             timeout: float = CONNECT_TIMEOUT) -> SshHost:
        """Connect to ``spec``, deploy ktlskit, check kTLS; close() undoes it all."""
        target = resolve(spec, ssh_config)
        session = SshSession(_client(target, timeout), where=target.spec)
        res = session.run("mktemp -d /tmp/ktlskit-XXXXXXXX", timeout=30, check=False)
        if res.rc != 0:
            session.close()
            raise HostError(f"{spec}: cannot make a directory in /tmp: {res.stderr.strip()}")
        host = cls(target, session, res.stdout.strip())
        try:
            host.python = deploy.deploy(host, host.tmpdir)
            problem = call(host, deploy.ktls_problem, timeout=120)
            if problem:
                raise deploy.DeployError(f"{spec}: {problem}")
            host._watch = KmsgWatch(lambda c: host.run(c, timeout=60, check=False), spec)
        except BaseException:
            host.close()
            raise
        return host

    def __enter__(self) -> SshHost:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def tmpdir(self) -> str:
        return self._tmpdir

    def run(self, command: str, timeout: float = 60, check: bool = True) -> HostResult:
        return self._session.run(command, timeout=timeout, check=check)

    def spawn(self, command: str, timeout: float | None = None) -> SshProcess:
        pidfile = f"{self._tmpdir}/spawn-{next(self._spawns)}.pid"
        return self._session.spawn(command, timeout=timeout, pidfile=pidfile)

    def put(self, local: Path, remote: str) -> None:
        self._session.put(local, remote)

    def get(self, remote: str, local: Path) -> None:
        self._session.get(remote, local)

    def new_splats(self) -> list[Splat]:
        return self._watch.new_splats() if self._watch else []

    def check(self, context: str = "") -> None:
        if self._watch:
            self._watch.check(context)

    def close(self) -> None:
        """Remove the directory (ktlskit, keys, sockets) and disconnect."""
        try:
            if self._tmpdir.startswith("/tmp/ktlskit-"):
                self._session.run(f"rm -rf {shlex.quote(self._tmpdir)}", timeout=60,
                                  check=False)
        except HostError:
            pass
        finally:
            self._session.close()
