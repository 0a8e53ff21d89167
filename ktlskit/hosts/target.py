"""Where a machine is and how to log in: ``[user@]host[:port]`` or an alias of an SSH config
(``~/.ssh/config`` unless another is given), resolved as OpenSSH would for the settings
ktlskit uses: HostName, Port, User, IdentityFile, UserKnownHostsFile,
StrictHostKeyChecking, ProxyCommand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .host import HostError

DEFAULT_CONFIG = Path("~/.ssh/config")
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
_SPEC = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:@\s\[\]]+))"
                   r"(?::(?P<port>\d+))?$")


class TargetError(HostError):
    """A machine given on the command line or in an env file cannot be used as given."""


@dataclass(frozen=True)
class SshTarget:
    spec: str  # as the user wrote it: the name in reports
    hostname: str
    port: int = 22
    user: str = "root"
    key_files: tuple[str, ...] = ()  # empty: the agent and the default keys
    known_hosts: tuple[str, ...] = ()
    strict: bool = True  # an unknown host key is refused
    proxy_command: str = ""


def _expand(path: str, host: str, user: str, port: int) -> str:
    for token, value in (("%h", host), ("%r", user), ("%p", str(port)), ("%%", "%")):
        path = path.replace(token, value)
    return os.path.expanduser(path)


def resolve(spec: str, ssh_config: Path | None = None) -> SshTarget:
    """The target ``spec`` names, with what the SSH config says about it."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise TargetError(f"{spec!r}: give a machine as [user@]host[:port] or an SSH config "
                          "alias")
    host = m["v6"] or m["host"]
    import paramiko

    cfg_path = (ssh_config or DEFAULT_CONFIG).expanduser()
    if ssh_config is not None and not cfg_path.is_file():
        raise TargetError(f"SSH config {cfg_path} does not exist")
    try:
        cfg = paramiko.SSHConfig.from_path(str(cfg_path)) if cfg_path.is_file() \
            else paramiko.SSHConfig()
        found = cfg.lookup(host)
    except (paramiko.SSHException, OSError) as exc:
        raise TargetError(f"SSH config {cfg_path}: {exc}") from exc
    if "proxyjump" in found:
        raise TargetError(f"{spec}: ProxyJump in {cfg_path} is not supported; use ProxyCommand "
                          "'ssh -W %h:%p JUMPHOST'")
    user = m["user"] or found.get("user") or "root"
    hostname = found.get("hostname", host)
    try:
        port = int(m["port"] or found.get("port", 22))
    except ValueError:
        raise TargetError(f"{spec}: Port {found.get('port')!r} in {cfg_path} is not a "
                          "number") from None
    if not 1 <= port <= 65535:
        raise TargetError(f"{spec}: port {port} is not a TCP port (1 to 65535)")
    keys = tuple(_expand(k, hostname, user, port) for k in found.get("identityfile", []))
    for k in keys:
        if not Path(k).is_file():
            raise TargetError(f"{spec}: IdentityFile {k} (from {cfg_path}) does not exist")
    known = tuple(_expand(k, hostname, user, port)
                  for k in found.get("userknownhostsfile", " ".join(DEFAULT_KNOWN_HOSTS)).split())
    strict = found.get("stricthostkeychecking", "ask").lower() not in ("no", "off",
                                                                     "accept-new")
    proxy = found.get("proxycommand") or ""  # paramiko: None for "ProxyCommand none"
    return SshTarget(spec.strip(), hostname, port, user, keys, known, strict,
                     "" if proxy.lower() == "none" else proxy)
