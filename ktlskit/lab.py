"""The lab: two QEMU guests of the built kernel that behave as two real machines.

Each guest has its own SSH (its own port, keys and host key) and a second NIC; the two NICs
are joined by a virtual Ethernet link between the two QEMU processes (``-netdev socket``
over UDP on 127.0.0.1). The guests share nothing of each other's: each gets ktlskit
deployed into its own /tmp like a real machine. ``up`` writes an SSH config with the
aliases ``lab-dut`` and ``lab-peer`` and an env file in NIPA's format, so that

    ktlskit lab up && ktlskit run --env ~/.cache/ktlskit/labs/current/lab.config

runs the real-machine path unchanged. The link starts unconfigured: the run adds the
addresses (and removes them after), as it would on a machine it may touch.
The DUT can also log into the peer over the link as root (``ssh 192.0.2.2``), which the
kernel's drivers/net tests do with REMOTE_TYPE=ssh.
"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import time
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from . import paths
from .errors import KtlskitError
from .guest import Guest, GuestConfig, GuestError
from .guest.bootdir import BootDir, qemu_running
from .guest.warm import image_id
from .hosts.netenv import NetEnv
from .hosts.splat import find_splats
from .progress import say

V4 = ("203.0.113.1", "203.0.113.2")
V6 = ("2001:db8:1::1", "2001:db8:1::2")
MACS = ("52:54:00:4b:4c:01", "52:54:00:4b:4c:02")
ROLES = ("dut", "peer")
IDLE_TIMEOUT = 3600.0
LAB_SSH = "/tmp/ktlskit-lab"  # in the DUT: how it reaches the peer (provisioned by up())


class LabError(KtlskitError):
    """The lab could not be started or is not running."""


@dataclass(frozen=True)
class LabRecord:
    dir: str
    boot_dirs: dict[str, str]  # role -> guest boot directory
    netifs: dict[str, str]  # role -> the lab NIC's name in that guest
    image: str = ""  # sha256 of the bzImage both run

    @property
    def env_file(self) -> Path:
        return Path(self.dir) / "lab.config"

    def running(self) -> bool:
        return all(qemu_running(Path(d)) for d in self.boot_dirs.values())


def _root() -> Path:
    d = paths.cache_dir() / "labs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def current() -> LabRecord | None:
    """The running lab, if any."""
    try:
        rec = LabRecord(**json.loads((_root() / "current" / "lab.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return rec if rec.running() else None


def _nic_name(g: Guest, mac: str) -> str:
    out = g.run("for d in /sys/class/net/*; do echo \"${d##*/} $(cat $d/address)\"; done",
                timeout=30).stdout
    for line in out.splitlines():
        name, _, addr = line.partition(" ")
        if addr.strip() == mac:
            return name
    raise LabError(f"{g.name}: no NIC with the lab MAC {mac}:\n{out}")


def ssh_config(boot_dirs: dict[str, str]) -> str:
    """An OpenSSH/paramiko config naming each guest ``lab-ROLE`` (its port, key, host key)."""
    blocks = []
    for role, d in boot_dirs.items():
        port = BootDir.load(Path(d)).port
        blocks.append(f"Host lab-{role}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
                      f"  IdentityFile {d}/id_ed25519\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n")
    return "\n".join(blocks)


def _let_dut_reach_peer(dut: Guest, peer_boot: Path) -> None:
    """As an admin would: the DUT logs into the peer over the link with a key it accepts."""
    peer = BootDir.load(peer_boot)
    host_key = " ".join(peer.host_key.public_line.split()[:2])
    conf = (f"Host {V4[1]} {V6[1]}\n  User root\n  IdentityFile {LAB_SSH}/id_ed25519\n"
            f"  UserKnownHostsFile {LAB_SSH}/known_hosts\n  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n")
    dut.run(f"mkdir -p {LAB_SSH} && chmod 700 {LAB_SSH}", timeout=30)
    dut.put(peer_boot / "id_ed25519", f"{LAB_SSH}/id_ed25519")
    known = f"{V4[1]} {host_key}\n{V6[1]} {host_key}\n"
    dut.run(f"chmod 600 {LAB_SSH}/id_ed25519 && printf %s {shlex.quote(known)} "
            f">{LAB_SSH}/known_hosts && mount -t tmpfs -o mode=0755 tmpfs "
            f"/etc/ssh/ssh_config.d && printf %s {shlex.quote(conf)} "
            ">/etc/ssh/ssh_config.d/ktlskit-lab.conf", timeout=30)


def up(bzimage: Path, cpus: int = 1, memory: str = "1G", idle: float = IDLE_TIMEOUT
       ) -> LabRecord:
    """Boot the two guests (one after the other) and write the lab's SSH config and env."""
    running = current()
    if running is not None and running.image == image_id(bzimage):
        say(f"the lab is already up: {running.dir}")
        return running
    if running is not None:
        say("the running lab has another kernel: replacing it")
        down()
    lab = _root() / time.strftime("%Y%m%d-%H%M%S")
    lab.mkdir()
    ports = (_udp_port(), _udp_port())
    guests: dict[str, Guest] = {}
    try:
        for i, role in enumerate(ROLES):
            nic = (f"socket,id=lab0,udp=127.0.0.1:{ports[1 - i]},"
                   f"localaddr=127.0.0.1:{ports[i]}")
            cfg = GuestConfig(cpus=cpus, memory=memory, qemu_opts=(
                "-netdev", nic, "-device", f"virtio-net-pci,netdev=lab0,mac={MACS[i]}"))
            say(f"lab: booting the {role}")
            guests[role] = Guest.start(bzimage, cfg, idle=idle)
        netifs = {r: _nic_name(g, MACS[i]) for i, (r, g) in enumerate(guests.items())}
        _let_dut_reach_peer(guests["dut"], guests["peer"].boot_dir)
    except BaseException:
        for g in guests.values():
            g.stop()
        shutil.rmtree(lab, ignore_errors=True)
        raise
    boot_dirs = {r: str(g.boot_dir) for r, g in guests.items()}
    for g in guests.values():
        g.detach()
    (lab / "ssh_config").write_text(ssh_config(boot_dirs))
    env = NetEnv(netif=netifs["dut"], local_v4=V4[0], local_v6=V6[0], remote_v4=V4[1],
                 remote_v6=V6[1], remote_type="ssh", remote_args=f"root@{V4[1]}",
                 dut="lab-dut", remote="lab-peer", remote_netif=netifs["peer"],
                 ssh_config=str(lab / "ssh_config"))
    (lab / "lab.config").write_text(f"# ktlskit lab {lab.name}: two QEMU guests joined by "
                                    "a virtual Ethernet link\n" + env.to_text())
    rec = LabRecord(str(lab), boot_dirs, netifs, image_id(bzimage))
    (lab / "lab.json").write_text(json.dumps(asdict(rec), indent=1) + "\n")
    link = _root() / "current"
    link.unlink(missing_ok=True)
    link.symlink_to(lab.name)
    say(f"lab up: {rec.env_file}")
    return rec


ACCEPTED = "accepted-splats.json"


def accept_splat(role: str, title: str) -> None:
    """A splat a test provoked on purpose on ``role`` (its title: ``WARNING: file:line at
    fn, CPU#n: comm/pid``, so only that very report): ``down()`` does not report it."""
    lab_dir = _root() / "current"
    if not lab_dir.is_dir():
        raise LabError("no lab is up: nothing to accept a splat for")
    accepted = [*_accepted(lab_dir), [role, " ".join(title.split())]]
    (lab_dir / ACCEPTED).write_text(json.dumps(accepted))


def _accepted(lab_dir: Path) -> list[list[str]]:
    try:
        found = json.loads((lab_dir / ACCEPTED).read_text())
    except (OSError, ValueError):
        return []
    return found if isinstance(found, list) else []


def down() -> list[str]:
    """Power the lab's guests off; the kernel splats their consoles showed, if any, but
    those accepted (``accept_splat``)."""
    link = _root() / "current"
    try:
        rec = LabRecord(**json.loads((link / "lab.json").read_text()))
    except (OSError, ValueError, TypeError):
        return []
    accepted = _accepted(link)
    found = []
    for role, d in rec.boot_dirs.items():
        console = Path(d) / "console.log"
        with suppress(OSError):
            for s in find_splats(console.read_text(errors="replace")):
                key = [role, " ".join(s.title.split())]
                if key in accepted:
                    accepted.remove(key)  # once: the same report twice is two splats
                else:
                    found.append(f"{role}: {s}")
        if qemu_running(Path(d)):
            with suppress(GuestError, OSError):
                Guest.attach(Path(d)).stop()
    link.unlink(missing_ok=True)
    return found
