"""A booted guest: QEMU through virtme-ng, controlled over SSH, console watched.

    with Guest.boot(build.bzimage) as g:
        g.run("cat /proc/net/tls_stat", timeout=10)

The console goes to ``console.log`` in the boot directory. Every kernel
splat on it is found (``splat.py``); ``check()`` raises for new ones and the
context exit raises for any not yet seen. Nothing waits forever: boot, each
command and shutdown have deadlines, and the guest dies with the harness.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..errors import KtlskitError
from ..hosts.host import Process
from ..hosts.splat import Splat
from ..progress import say
from ..uapi import prepare_ffi_module
from .bootdir import BootDir, connect_existing, qemu_running, read_qemu_pid
from .bytecode import compile_for_guest
from .served import SCRIPT, CallServer, write_script
from .ssh import (
    GuestCommandError,
    GuestProcess,
    GuestResult,
    GuestTimeoutError,
    SshProcess,
    SshSession,
)
from .vng import check_launch_tools, kvm_usable, launch_env, vng_argv
from .watch import GuestError, GuestSplatError, SplatWatch

GUEST_MAC = "52:54:00:4b:54:4c"
MAX_CPUS = 64

__all__ = ["Guest", "GuestCommandError", "GuestConfig", "GuestError", "GuestProcess",
           "GuestResult", "GuestSplatError", "GuestTimeoutError"]


BOOT_TIMEOUT = 240.0
DEBUG_BOOT_TIMEOUT = 600.0
"""The debug kernel (KASAN, lockdep, kmemleak) under TCG took 222 s of guest time to reach its
script on 2026-12-01, 155 s of it in udev's coldplug and settle: 240 s left it no margin."""


def boot_timeout(profile: str) -> float:
    """Seconds a guest of kernel profile ``profile`` has to answer SSH."""
    return DEBUG_BOOT_TIMEOUT if profile == "debug" else BOOT_TIMEOUT


@dataclass(frozen=True)
class GuestConfig:
    cpus: int = 2
    memory: str = "2G"
    accel: str = "auto"  # auto, kvm or tcg
    boot_timeout: float = BOOT_TIMEOUT
    append: tuple[str, ...] = ()
    #: More QEMU options (the lab's second NIC); such a guest is never a warm one.
    qemu_opts: tuple[str, ...] = ()
    #: Start the call server for the harness's calls. A guest booted only for shell commands
    #: (``ktlskit exec``, ``ktlskit boot``'s shell) does without: its imports would hold a
    #: vCPU for about 7 s under TCG while the command runs. A warm guest always has one.
    serve_calls: bool = True

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


def _check_shared_with_guest() -> None:
    """The guest runs this same Python and package from the host root over 9p, except /tmp,
    where guest-init.sh mounts a fresh tmpfs: a checkout or venv there is invisible to it."""
    package = Path(__file__).resolve().parents[1]
    for what, where in (("the ktlskit package", package), ("the Python", Path(sys.prefix))):
        if where.is_relative_to("/tmp"):
            raise GuestError(f"{what} is under /tmp ({where}), which the guest does not share "
                             "(it gets its own tmpfs there): use a checkout outside /tmp")


class Guest:
    """A running guest: booted here (``boot``/``start``) or reached from its boot directory
    (``attach``: a warm guest another ktlskit process started). A ``Host``."""

    #: The harness's own interpreter: the host root is the guest's, so the same
    #: venv (and ktlskit) runs in the guest.
    python = sys.executable

    def __init__(self, boot: BootDir, accel: str,
                 proc: subprocess.Popen[bytes] | None = None) -> None:
        self._boot = boot
        self._proc = proc  # the reaper, when this process started the guest
        self.accel = accel
        self.ssh: SshSession | None = None
        self._watch = SplatWatch(self.console_text, error=GuestSplatError)
        self._syncs = 0
        self._token = secrets.token_hex(4)
        self._tmpdir = ""
        self.splats_seen = 0
        self.name = f"guest 127.0.0.1:{boot.port} ({accel})"
        self._served = CallServer(self._session, self.run_detached, boot.dir / SCRIPT,
                                  self.name, self._after_command, self._next_marker)

    # ---- lifecycle --------------------------------------------------------

    @classmethod
    @contextmanager
    def boot(cls, bzimage: Path, config: GuestConfig | None = None) -> Iterator[Guest]:
        """A private guest for the ``with`` block, powered off at its end."""
        guest = cls.start(bzimage, config)
        try:
            yield guest
        except BaseException:
            guest.stop()
            raise
        guest.stop()
        guest.check("at shutdown")

    @classmethod
    def start(cls, bzimage: Path, config: GuestConfig | None = None, *,
              idle: float | None = None) -> Guest:
        """Boot and wait for SSH. With ``idle`` the guest is detached: it outlives this process
        and powers off after ``idle`` seconds without use (see ``touch()``)."""
        cfg = config or GuestConfig()
        cfg.check()
        if not bzimage.is_file():
            raise GuestError(f"no kernel image at {bzimage}: build it first")
        _check_shared_with_guest()
        check_launch_tools()
        with suppress(OSError):  # a read-only install: the guest parses the cdef itself
            prepare_ffi_module()
        compile_for_guest()
        kvm = cfg.accel == "kvm" or (cfg.accel == "auto" and kvm_usable(bzimage))
        guest = cls._launch(bzimage, cfg, kvm, idle)
        try:
            guest._wait_for_ssh(cfg.boot_timeout)
        except BaseException:
            guest.stop()
            raise
        guest.touch()
        return guest

    @classmethod
    def attach(cls, boot_dir: Path) -> Guest:
        """Connect to a guest already running from ``boot_dir``; only new splats count."""
        guest = cls(BootDir.load(boot_dir), BootDir.load_info(boot_dir).get("accel", "tcg"))
        if not guest.alive():
            raise GuestError(f"the guest of {boot_dir} is not running")
        guest.ssh = connect_existing(boot_dir)
        guest._watch.skip_existing()
        return guest

    @classmethod
    def _launch(cls, bzimage: Path, cfg: GuestConfig, kvm: bool, idle: float | None) -> Guest:
        boot = BootDir.create()
        if cfg.serve_calls:
            write_script(boot.dir, cls.python)
        init = Path(__file__).with_name("guest-init.sh")
        netdev = f"user,id=kt0,hostfwd=tcp:127.0.0.1:{boot.port}-:22"
        argv = vng_argv(bzimage, kvm=kvm, cpus=cfg.cpus, memory=cfg.memory,
                        append=list(cfg.append),
                        qemu_opts=["-netdev", netdev, "-device",
                                   f"virtio-net-pci,netdev=kt0,mac={GUEST_MAC}",
                                   "-pidfile", str(boot.dir / "qemu.pid"), *cfg.qemu_opts],
                        command=["sh", str(init), str(boot.dir), GUEST_MAC])
        (boot.dir / "vng-argv").write_text(" ".join(argv) + "\n")
        accel = "kvm" if kvm else "tcg"
        say(f"booting {bzimage} ({accel}, {cfg.cpus} CPUs, {cfg.memory}); console: {boot.console}")
        # By its path, not -m: importing the ktlskit.guest package (paramiko) would delay
        # the launch by 0.25 s; the reaper needs only the standard library.
        reaper = [sys.executable, str(Path(__file__).with_name("reaper.py"))]
        if idle is not None:
            # The idle clock starts when the guest is up (start() touches it): until then the
            # stamp lies in the future, past the boot deadline.
            boot.used.touch()
            later = time.time() + cfg.boot_timeout + 60
            os.utime(boot.used, (later, later))
            reaper += ["--idle", str(boot.used), str(idle)]
        console = boot.console.open("wb")
        proc = subprocess.Popen([*reaper, "--", *argv],
                                stdin=subprocess.DEVNULL if idle is not None else subprocess.PIPE,
                                stdout=console, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=boot.dir, env=launch_env())
        console.close()
        boot.save_info({"accel": accel, "bzimage": str(bzimage), "cpus": cfg.cpus,
                        "memory": cfg.memory, "reaper_pid": proc.pid,
                        "detached": idle is not None})
        return cls(boot, accel, proc)

    def _wait_for_ssh(self, timeout: float) -> None:
        start = time.monotonic()
        # paramiko logs a traceback for every refused early attempt; we report ourselves.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        user_key = self._boot.client_key.paramiko_key()
        host_key = self._boot.host_key.paramiko_key()
        attempts, last_error = 0, ""
        next_attempt = 0.0
        while True:
            self.check("during boot")
            if not self.alive():
                raise GuestError(f"guest exited during boot{self._exit_status()}"
                                 f"\n{self.console_tail()}")
            if time.monotonic() - start > timeout:
                raise GuestTimeoutError(f"guest did not answer SSH within {timeout:.0f}s "
                                        f"({attempts} attempts; last: {last_error or 'none'}; "
                                        f"console: {self._boot.console})\n{self.console_tail()}")
            announced = b"sshd up on" in self._boot.console.read_bytes()
            if announced and time.monotonic() >= next_attempt:
                attempts += 1
                try:
                    self.ssh = SshSession.connect(self._boot.port, user_key, host_key, 20)
                    break
                except (OSError, paramiko.SSHException) as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                    next_attempt = time.monotonic() + 1.0  # one attempt a second at most
            time.sleep(0.05)
        say(f"guest up, SSH on 127.0.0.1:{self._boot.port} after "
            f"{time.monotonic() - start:.1f}s")

    def _exit_status(self) -> str:
        return f" (status {self._proc.returncode})" if self._proc is not None else ""

    def detach(self) -> None:
        """Leave the guest running (a warm guest) and drop this connection."""
        if self.ssh is not None:
            self._remove_tmpdir()
            self.ssh.close()
            self.ssh = None

    def _remove_tmpdir(self) -> None:
        """Best effort: a guest that is going away closes the connection (EOFError)."""
        if self.ssh is not None and self._tmpdir and self.alive():
            with suppress(KtlskitError, paramiko.SSHException, OSError, EOFError):
                self.ssh.run(f"rm -rf {self._tmpdir}", timeout=30, check=False)
        self._tmpdir = ""

    def stop(self, grace: float = 30) -> None:
        """Power the guest off (kill QEMU after ``grace`` seconds), whoever started it. A guest
        that never answered SSH cannot be asked: it is killed at once."""
        if self.ssh is None:
            grace = 0
        elif self.alive():
            self._remove_tmpdir()  # before the power-off closes the connection
            with suppress(KtlskitError):
                self.ssh.run("echo stop > /run/ktlskit/stop", timeout=10, check=False)
        self.detach()
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            if grace:
                say(f"guest did not power off in {grace:.0f}s; killing QEMU")
            self.kill()
        if self._proc is not None:
            with suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
            if self._proc.stdin:
                self._proc.stdin.close()

    def touch(self) -> None:
        """Mark a detached guest as used now (its reaper stops it after the idle time)."""
        with suppress(OSError):
            self._boot.used.touch()

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
        marker = self._next_marker()
        try:
            return self._session().run(command, timeout=timeout, check=check,
                                       epilogue=f"echo '{marker}' >/dev/kmsg 2>/dev/null")
        finally:
            self._after_command(marker, command)

    def _next_marker(self) -> str:
        self._syncs += 1
        return f"ktlskit: sync {self._token}-{self._syncs}"

    def _after_command(self, marker: str, command: str) -> None:
        self._await_console(marker, 10)
        self.check(f"while running {command!r}")

    def served(self, request: str, netns: str, command: str,
               timeout: float | None) -> Process | None:
        """A call run by the guest's call server (``served.CallServer``), or None."""
        return self._served.process(request, netns, command, timeout)

    def _await_console(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        needle = marker.encode()
        while time.monotonic() < deadline and self.alive():
            if needle in self._boot.console.read_bytes():
                return
            time.sleep(0.05)

    def spawn(self, command: str, timeout: float | None = None) -> SshProcess:
        return self._session().spawn(command, timeout=timeout)

    def run_detached(self, command: str) -> None:
        """Start ``command`` in the guest in a session of its own, output discarded, and
        return at once (it outlives this connection; the guest's power-off ends it)."""
        self._session().run(f"setsid -f sh -c {shlex.quote(command)} "
                            f"</dev/null >/dev/null 2>&1", timeout=30)

    @property
    def tmpdir(self) -> str:
        """``/tmp/ktlskit-TOKEN`` in the guest (its own tmpfs), one per connection."""
        if not self._tmpdir:
            d = f"/tmp/ktlskit-{self._token}"
            self._session().run(f"mkdir -p {d}", timeout=30)
            self._tmpdir = d
        return self._tmpdir

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
        found = self._watch.new_splats()
        self.splats_seen += len(found)
        return found

    def check(self, context: str = "") -> None:
        try:
            self._watch.check(context)
        except GuestSplatError as exc:
            self.splats_seen += len(exc.splats)
            raise

    def qemu_pid(self) -> int | None:
        """QEMU's pid from its -pidfile (None before QEMU wrote it)."""
        return read_qemu_pid(self._boot.dir)

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return qemu_running(self._boot.dir)

    @classmethod
    def kill_at(cls, boot_dir: Path) -> None:
        """Kill the guest running from ``boot_dir`` without asking it to power off."""
        cls(BootDir.load(boot_dir), "tcg").kill()

    def kill(self) -> None:
        """Kill QEMU now, with its reaper (also the harness's own cleanup tests)."""
        pgid = self._proc.pid if self._proc is not None else \
            BootDir.load_info(self._boot.dir).get("reaper_pid")
        if pgid:
            with suppress(ProcessLookupError):
                os.killpg(int(pgid), 9)
        # SIGKILL is delivered at once but a QEMU with a gigabyte mapped takes a while to exit
        # (longer on a loaded host): return only once it is gone, so "stopped" means stopped.
        deadline = time.monotonic() + 20
        while qemu_running(self._boot.dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        if qemu_running(self._boot.dir):
            say(f"QEMU of {self._boot.dir} still running 20s after SIGKILL")
