"""A guest's boot directory on the host: its SSH keys, sshd config, console log, pids.

Each boot gets a fresh directory under ``CACHE/guests/`` with a new ed25519 client key and
host key. The guest reads its half over the 9p root; another ktlskit process can reach the
same guest later from the directory alone (``connect_existing``), which is how a warm guest
is reused.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from .. import paths
from . import sshkeys
from .ssh import SshSession

INFO = "guest.json"


@dataclass
class BootDir:
    """Per-boot files: keys, sshd config, console log."""

    dir: Path
    client_key: sshkeys.KeyPair
    host_key: sshkeys.KeyPair
    port: int
    files: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(cls) -> BootDir:
        root = paths.cache_dir() / "guests"
        root.mkdir(parents=True, exist_ok=True)
        d = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        d.mkdir(mode=0o700)
        boot = cls(d, sshkeys.generate("ktlskit-client"), sshkeys.generate("ktlskit-host"),
                   free_port())
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
            # PAM stays on: without it sshd refuses a root whose password is locked (the
            # host's /etc/shadow, as the guest sees it), even for a key login.
            "UsePAM yes",
            "PrintMotd no",
            "PrintLastLog no",
            "StrictModes no",
            "UseDNS no",
            "PidFile /run/ktlskit/sshd.pid",
            "MaxSessions 64",
            "MaxStartups 64",
            *([f"Subsystem sftp {sftp}"] if sftp else []),
            "",
        ]))

    @classmethod
    def load(cls, d: Path) -> BootDir:
        """The boot directory of a guest another process started."""
        host_line = (d / "known_hosts").read_text().split()
        port = int(host_line[0].rsplit(":", 1)[1])
        client = sshkeys.KeyPair((d / "id_ed25519").read_bytes(),
                                 (d / "authorized_keys").read_text().strip())
        host = sshkeys.KeyPair((d / "ssh_host_ed25519_key").read_bytes(),
                               " ".join(host_line[1:3]))
        return cls(d, client, host, port)

    def save_info(self, info: dict[str, object]) -> None:
        (self.dir / INFO).write_text(json.dumps(info, indent=1) + "\n")

    @staticmethod
    def load_info(d: Path) -> dict[str, object]:
        try:
            return dict(json.loads((d / INFO).read_text()))
        except (OSError, ValueError):
            return {}

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    @property
    def used(self) -> Path:
        """Touched on every use of a detached guest; its reaper stops it when this gets old."""
        return self.dir / "used"


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


def qemu_running(boot_dir: Path) -> bool:
    """Whether the QEMU of that boot (its -pidfile) is still alive."""
    pid = read_qemu_pid(boot_dir)
    if pid is None:
        return False
    try:
        return "qemu" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
