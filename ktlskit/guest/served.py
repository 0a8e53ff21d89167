"""The guest's call server (``ktlskit.hosts.callserver``): a script in the boot directory
that guest-init.sh starts beside sshd, reached through the SSH connection (``direct-tcpip`` to
the guest's 127.0.0.1), restarted when ktlskit's code changed under it.

A call it cannot take (not started, still importing past ``READY_TIMEOUT``, gone, or stale)
runs the ordinary way, ``python -m ktlskit.hosts.call`` over SSH: the server only saves time.
"""

from __future__ import annotations

import contextlib
import shlex
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import paramiko

from ..hosts.callclient import ServedProcess, ServerRefused
from ..hosts.host import HostError, Process
from ..progress import say
from .bytecode import compile_for_guest
from .ssh import SshSession

PORT = 7319
PIDFILE = "/run/ktlskit/callserver.pid"
LOG = "/run/ktlskit/callserver.log"  # guest-init.sh writes the first server's there too
SCRIPT = "callserver.sh"
#: What the server imports before it listens: the functions the harness calls in a guest.
PRELOAD = ("ktlskit.offload.run", "ktlskit.topologies", "ktlskit.tlsstats", "ktlskit.peer",
           "ktlskit.cases")
#: How long a call waits for a server that is still importing (8 s at boot under TCG).
READY_TIMEOUT = 60.0
#: The environment an SSH command gets from sshd, so a served call runs as an ordinary one.
ENV = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh",
       "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def write_script(boot_dir: Path, python: str) -> Path:
    """The script guest-init.sh runs in the background beside sshd
    (``$BOOT/callserver.sh``). Python runs without ``site`` (``-S``) and finds ktlskit and its
    dependencies on PYTHONPATH: the editable install's path hook alone took 0.8 s of a
    Python start under TCG."""
    preload = " ".join(f"--preload {m}" for m in PRELOAD)
    paths = {str(Path(__file__).resolve().parents[2]), sysconfig.get_paths()["purelib"],
             sysconfig.get_paths()["platlib"]}
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in
                   {**ENV, "PYTHONPATH": ":".join(sorted(paths))}.items())
    path = boot_dir / SCRIPT
    path.write_text(f"echo $$ >{PIDFILE}\ncd /root || cd /\n"
                    f"exec env -i {env} {shlex.quote(python)} -S "
                    f"-m ktlskit.hosts.callserver --port {PORT} {preload}\n")
    return path


class CallServer:
    """The server of one guest, as one harness process sees it."""

    def __init__(self, session: Callable[[], SshSession], run_detached: Callable[[str], None],
                 script: Path, where: str, after: Callable[[str, str], None],
                 marker: Callable[[], str]) -> None:
        self._session = session
        self._run_detached = run_detached
        self._script = script
        self._where = where
        self._after = after  # (marker, command): console sync and splat check
        self._marker = marker
        self._settled = False  # it answered once, or never got ready: no more waiting
        self._said = False

    def _channel(self) -> paramiko.Channel | None:
        transport = self._session().client.get_transport()
        if transport is None or not transport.is_active():
            return None
        try:
            return transport.open_channel("direct-tcpip", ("127.0.0.1", PORT),
                                          ("127.0.0.1", 0), timeout=10)
        except (paramiko.ChannelException, paramiko.SSHException, OSError, EOFError):
            return None

    def _alive(self) -> bool:
        try:
            res = self._session().run(f"kill -0 $(cat {PIDFILE} 2>/dev/null) 2>/dev/null",
                                      timeout=15, check=False)
        except HostError:
            return False
        return res.rc == 0

    def _connect(self) -> paramiko.Channel | None:
        chan = self._channel()
        if chan is not None or self._settled:
            return chan
        if not self._alive():
            if not self._said:
                say(f"the call server is not running in the {self._where} (its log: {LOG} "
                    "there); calls start Python")
                compile_for_guest()  # the code may have changed since the guest booted
                self._said = True
            return None
        deadline = time.monotonic() + READY_TIMEOUT
        while chan is None and time.monotonic() < deadline:
            time.sleep(0.2)
            chan = self._channel()
        self._settled = True
        return chan

    def process(self, request: str, netns: str, command: str,
                timeout: float | None) -> Process | None:
        chan = self._connect()
        if chan is None:
            return None
        self._settled = True
        marker = self._marker()
        try:
            return ServedProcess.open(chan, {"request": request, "netns": netns,
                                             "marker": marker},
                                      command, self._where, timeout,
                                      after=lambda: self._after(marker, command))
        except ServerRefused as exc:
            say(f"call server: {exc}; starting a new one")
            self._settled = False
            self._restart()
            return None

    def _restart(self) -> None:
        compile_for_guest()  # the code changed: the new server should not compile it again
        with contextlib.suppress(HostError):
            self._run_detached(f"sh {shlex.quote(str(self._script))} >{LOG} 2>&1")
