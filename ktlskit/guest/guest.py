"""A booted guest: QEMU through virtme-ng, controlled over SSH, console watched.

    with Guest.boot(build.bzimage) as g:
        g.run("cat /proc/net/tls_stat", timeout=10)

The console goes to ``console.log`` in the boot directory. Every kernel
splat on it is found (``splat.py``); ``check()`` raises for new ones and the
context exit raises for any not yet seen. Nothing waits forever: boot, each
command and shutdown have deadlines, and the guest dies with the harness.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from .. import paths
from ..errors import KtlskitError
from ..progress import say
from . import sshkeys
from .splat import Splat
from .ssh import GuestCommandError, GuestProcess, GuestResult, GuestTimeoutError, SshSession
from .vng import check_launch_tools, kvm_usable, launch_env, vng_argv
from .watch import GuestError, GuestSplatError, SplatWatch

GUEST_MAC = "52:54:00:4b:54:4c"
MAX_CPUS = 64

__all__ = ["Guest", "GuestCommandError", "GuestConfig", "GuestError", "GuestProcess",
           "GuestResult", "GuestSplatError", "GuestTimeoutError"]


@dataclass(frozen=True)
class GuestConfig:
    cpus: int = 2
    memory: str = "2G"
    accel: str = "auto"  # auto, kvm or tcg
    boot_timeout: float = 240.0
    append: tuple[str, ...] = ()

    def check(self) -> None:
        """Bad guest options fail here, before any build or boot."""
        if not 1 <= self.cpus <= MAX_CPUS:
            raise GuestError(f"--cpus {self.cpus}: 1 to {MAX_CPUS}")
        if not re.fullmatch(r"[1-9][0-9]*[MG]", self.memory):
            raise GuestError(f"--memory {self.memory!r}: a size like 512M or 2G")
        if self.accel not in ("auto", "kvm", "tcg"):
            raise GuestError(f"--accel {self.accel!r}: auto, kvm or tcg")
        if self.accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
            raise GuestError("--accel kvm: /dev/kvm is missing or not accessible here; "
                             "use --accel tcg or auto")
        if self.boot_timeout <= 0:
            raise GuestError(f"boot timeout {self.boot_timeout}: must be positive")


@dataclass
class _Boot:
    """Per-boot files: keys, sshd config, console log."""

    dir: Path
    client_key: sshkeys.KeyPair
    host_key: sshkeys.KeyPair
    port: int
    files: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(cls) -> _Boot:
        root = paths.cache_dir() / "guests"
        root.mkdir(parents=True, exist_ok=True)
        d = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        d.mkdir(mode=0o700)
        boot = cls(d, sshkeys.generate("ktlskit-client"), sshkeys.generate("ktlskit-host"),
                   _free_port())
        boot._write()
        return boot

    def _write(self) -> None:
        sshkeys.write_private(self.dir / "ssh_host_ed25519_key", self.host_key)
        sshkeys.write_private(self.dir / "id_ed25519", self.client_key)
        (self.dir / "authorized_keys").write_text(self.client_key.public_line + "\n")
        (self.dir / "known_hosts").write_text(
            f"[127.0.0.1]:{self.port} {' '.join(self.host_key.public_line.split()[:2])}\n")
        sftp = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/lib/ssh/sftp-server")
                     if Path(p).exists()), None)
        (self.dir / "sshd_config").write_text("\n".join([
            "Port 22",
            "HostKey /run/ktlskit/ssh_host_ed25519_key",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM yes",
            "StrictModes no",
            "UseDNS no",
            "PidFile /run/ktlskit/sshd.pid",
            "MaxSessions 64",
            "MaxStartups 64",
            *([f"Subsystem sftp {sftp}"] if sftp else []),
            "",
        ]))

    @property
    def console(self) -> Path:
        return self.dir / "console.log"


def connect_existing(boot_dir: Path, timeout: float = 10) -> SshSession:
    """An SSH session to a guest another ktlskit process booted (its boot directory)."""
    host_line = (boot_dir / "known_hosts").read_text().split()
    port = int(host_line[0].rsplit(":", 1)[1])
    user = paramiko.Ed25519Key.from_private_key_file(str(boot_dir / "id_ed25519"))
    host = paramiko.Ed25519Key(data=base64.b64decode(host_line[2]))
    return SshSession.connect(port, user, host, timeout)


def read_qemu_pid(boot_dir: Path) -> int | None:
    try:
        return int((boot_dir / "qemu.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _check_shared_with_guest() -> None:
    """The guest runs this same Python and package from the host root over 9p, except /tmp,
    where guest-init.sh mounts a fresh tmpfs: a checkout or venv there is invisible to it."""
    package = Path(__file__).resolve().parents[1]
    for what, where in (("the ktlskit package", package), ("the Python", Path(sys.prefix))):
        if where.is_relative_to("/tmp"):
            raise GuestError(f"{what} is under /tmp ({where}), which the guest does not share "
                             "(it gets its own tmpfs there): use a checkout outside /tmp")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    #: The harness's own interpreter: the host root is the guest's, so the same
    #: venv (and ktlskit) runs in the guest.
    python = sys.executable

    def __init__(self, boot: _Boot, proc: subprocess.Popen[bytes], accel: str) -> None:
        self._boot = boot
        self._proc = proc
        self.accel = accel
        self.ssh: SshSession | None = None
        self._watch = SplatWatch(self.console_text)
        self._syncs = 0

    # ---- lifecycle --------------------------------------------------------

    @classmethod
    @contextmanager
    def boot(cls, bzimage: Path, config: GuestConfig | None = None) -> Iterator[Guest]:
        cfg = config or GuestConfig()
        cfg.check()
        if not bzimage.is_file():
            raise GuestError(f"no kernel image at {bzimage}: build it first")
        _check_shared_with_guest()
        check_launch_tools()
        kvm = cfg.accel == "kvm" or (cfg.accel == "auto" and kvm_usable(bzimage))
        guest = cls._start(bzimage, cfg, kvm)
        try:
            guest._wait_for_ssh(cfg.boot_timeout)
            yield guest
        except BaseException:
            guest._stop()
            raise
        guest._stop()
        guest.check("at shutdown")

    @classmethod
    def _start(cls, bzimage: Path, cfg: GuestConfig, kvm: bool) -> Guest:
        boot = _Boot.create()
        init = Path(__file__).with_name("guest-init.sh")
        netdev = f"user,id=kt0,hostfwd=tcp:127.0.0.1:{boot.port}-:22"
        argv = vng_argv(bzimage, kvm=kvm, cpus=cfg.cpus, memory=cfg.memory,
                        append=list(cfg.append),
                        qemu_opts=["-netdev", netdev, "-device",
                                   f"virtio-net-pci,netdev=kt0,mac={GUEST_MAC}",
                                   "-pidfile", str(boot.dir / "qemu.pid")],
                        command=["sh", str(init), str(boot.dir), GUEST_MAC])
        (boot.dir / "vng-argv").write_text(" ".join(argv) + "\n")
        accel = "kvm" if kvm else "tcg"
        say(f"booting {bzimage} ({accel}, {cfg.cpus} CPUs, {cfg.memory}); console: {boot.console}")
        console = boot.console.open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "ktlskit.guest.reaper", "--", *argv],
                                stdin=subprocess.PIPE, stdout=console, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=boot.dir, env=launch_env())
        console.close()
        return cls(boot, proc, accel)

    def _wait_for_ssh(self, timeout: float) -> None:
        start = time.monotonic()
        # paramiko logs a traceback for every refused early attempt; we report ourselves.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        user_key = self._boot.client_key.paramiko_key()
        host_key = self._boot.host_key.paramiko_key()
        while True:
            self.check("during boot")
            if self._proc.poll() is not None:
                raise GuestError(f"guest exited during boot (status {self._proc.returncode})"
                                 f"\n{self.console_tail()}")
            if time.monotonic() - start > timeout:
                raise GuestTimeoutError(f"guest did not answer SSH within {timeout:.0f}s "
                                        f"(console: {self._boot.console})\n"
                                        f"{self.console_tail()}")
            if b"sshd up on" in self._boot.console.read_bytes():
                try:
                    self.ssh = SshSession.connect(self._boot.port, user_key, host_key, 10)
                    break
                except (OSError, paramiko.SSHException):
                    pass
            time.sleep(0.25)
        say(f"guest up, SSH on 127.0.0.1:{self._boot.port} after "
            f"{time.monotonic() - start:.1f}s")

    def _stop(self) -> None:
        if self.ssh is not None and self._proc.poll() is None:
            with suppress(KtlskitError):
                self.ssh.run("echo stop > /run/ktlskit/stop", timeout=10, check=False)
            self.ssh.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            say("guest did not power off in 30s; killing QEMU")
        if self._proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 9)
            self._proc.wait(timeout=10)
        if self._proc.stdin:
            self._proc.stdin.close()

    # ---- commands ---------------------------------------------------------

    def _session(self) -> SshSession:
        if self.ssh is None:
            raise GuestError("guest is not connected")
        return self.ssh

    def run(self, command: str, timeout: float = 60, check: bool = True) -> GuestResult:
        """Run ``command`` in the guest; a splat meanwhile raises GuestSplatError.

        The console lags the kernel log (printing is deferred to a kthread), so
        the command ends by writing a marker to /dev/kmsg and the check waits
        until the marker reached the console: everything printed before it did too.
        """
        self._syncs += 1
        marker = f"ktlskit: sync {self._syncs}"
        try:
            return self._session().run(command, timeout=timeout, check=check,
                                       epilogue=f"echo '{marker}' >/dev/kmsg 2>/dev/null")
        finally:
            self._await_console(marker, 10)
            self.check(f"while running {command!r}")

    def _await_console(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        needle = marker.encode()
        while time.monotonic() < deadline and self.alive():
            if needle in self._boot.console.read_bytes():
                return
            time.sleep(0.05)

    def spawn(self, command: str, timeout: float | None = None) -> GuestProcess:
        return self._session().spawn(command, timeout=timeout)

    def put(self, local: Path, remote: str) -> None:
        self._session().put(local, remote)

    def get(self, remote: str, local: Path) -> None:
        self._session().get(remote, local)

    # ---- console ----------------------------------------------------------

    @property
    def console_path(self) -> Path:
        return self._boot.console

    @property
    def boot_dir(self) -> Path:
        return self._boot.dir

    def ssh_argv(self) -> list[str]:
        """An OpenSSH command line for this guest (interactive shells)."""
        d = self._boot.dir
        return ["ssh", "-p", str(self._boot.port), "-i", str(d / "id_ed25519"),
                "-o", f"UserKnownHostsFile={d / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "root@127.0.0.1"]

    def console_text(self) -> str:
        return self._boot.console.read_bytes().decode(errors="replace")

    def console_tail(self, n: int = 40) -> str:
        return "--- console tail ---\n" + "\n".join(self.console_text().splitlines()[-n:])

    def new_splats(self) -> list[Splat]:
        """Splats printed since the last check (or boot)."""
        return self._watch.new_splats()

    def check(self, context: str = "") -> None:
        self._watch.check(context)

    def qemu_pid(self) -> int | None:
        """QEMU's pid from its -pidfile (None before QEMU wrote it)."""
        return read_qemu_pid(self._boot.dir)

    def alive(self) -> bool:
        return self._proc.poll() is None

    def kill(self) -> None:
        """Kill QEMU now (tests of the harness's own cleanup)."""
        os.killpg(self._proc.pid, 9)
