"""NIPA's env file (``tools/testing/selftests/drivers/net/net.config``) and ktlskit's keys in it.

The kernel's keys, as its drivers/net tests read them (the file is written from the DUT's
point of view)::

    NETIF=eth1                 the DUT's interface on the link
    LOCAL_V4=192.0.2.1         its address(es) there
    REMOTE_V4=192.0.2.2        the remote end's
    LOCAL_V6=... REMOTE_V6=...
    REMOTE_TYPE=ssh            or netns: the remote end is a namespace on the DUT
    REMOTE_ARGS=root@peer      ssh: how the DUT reaches the remote; netns: its name

ktlskit's own keys (the kernel's scripts ignore keys they do not know)::

    KTLSKIT_DUT=root@dut       how ktlskit reaches the DUT (absent: ktlskit runs on it)
    KTLSKIT_REMOTE=peer-alias  how ktlskit reaches the remote (absent: REMOTE_ARGS)
    KTLSKIT_REMOTE_NETIF=eth1  the remote's interface (absent: the one holding REMOTE_V4/V6)
    KTLSKIT_SSH_CONFIG=FILE    the SSH config for these names (absent: ~/.ssh/config)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path

from .target import TargetError, resolve

_KEYS = {"NETIF": "netif", "LOCAL_V4": "local_v4", "LOCAL_V6": "local_v6",
         "REMOTE_V4": "remote_v4", "REMOTE_V6": "remote_v6", "REMOTE_TYPE": "remote_type",
         "REMOTE_ARGS": "remote_args", "KTLSKIT_DUT": "dut", "KTLSKIT_REMOTE": "remote",
         "KTLSKIT_REMOTE_NETIF": "remote_netif", "KTLSKIT_SSH_CONFIG": "ssh_config"}


class EnvError(TargetError):
    """The env file (or the options that stand for it) is wrong; the message says where."""


@dataclass(frozen=True)
class NetEnv:
    netif: str = ""
    local_v4: str = ""
    local_v6: str = ""
    remote_v4: str = ""
    remote_v6: str = ""
    remote_type: str = "ssh"
    remote_args: str = ""
    dut: str = ""
    remote: str = ""
    remote_netif: str = ""
    ssh_config: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # other keys (LOCAL_PREFIX_V6, ...)
    source: str = "the command line"

    @classmethod
    def load(cls, path: Path) -> NetEnv:
        try:
            text = path.read_text()
        except OSError as exc:
            raise EnvError(f"env file {path}: {exc.strerror}") from exc
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str) -> NetEnv:
        values: dict[str, str] = {}
        extra: dict[str, str] = {}
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            key, eq, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key.isidentifier():
                raise EnvError(f"{source}:{n}: not KEY=VALUE: {raw.strip()!r}")
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            if key in _KEYS:
                values[_KEYS[key]] = value
            else:
                extra[key] = value
        return cls(**values, extra=extra, source=source)

    def with_options(self, **overrides: str | None) -> NetEnv:
        """This env with the options the user gave on the command line (None: not given)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **given) if given else self

    def check(self) -> None:
        """Everything knowable before connecting anywhere."""
        where = self.source
        if not self.netif:
            raise EnvError(f"{where}: NETIF is not set (the DUT's interface on the link)")
        if self.remote_type not in ("ssh", "netns"):
            raise EnvError(f"{where}: REMOTE_TYPE={self.remote_type!r}: ssh or netns")
        if not self.remote_args and not (self.remote_type == "ssh" and self.remote):
            raise EnvError(f"{where}: REMOTE_ARGS is not set (the remote: user@host for ssh, "
                           "a namespace for netns)")
        pairs = [(v, ln, rn) for v, ln, rn in (("4", self.local_v4, self.remote_v4),
                                               ("6", self.local_v6, self.remote_v6))]
        if not any(ln and rn for _, ln, rn in pairs):
            raise EnvError(f"{where}: needs LOCAL_V4 and REMOTE_V4, or LOCAL_V6 and REMOTE_V6")
        for v, local, remote in pairs:
            if bool(local) != bool(remote):
                raise EnvError(f"{where}: LOCAL_V{v} and REMOTE_V{v} go together")
            for name, addr in ((f"LOCAL_V{v}", local), (f"REMOTE_V{v}", remote)):
                if addr:
                    _check_address(where, name, addr, int(v))
        if self.ssh_config and not Path(self.ssh_config).expanduser().is_file():
            raise EnvError(f"{where}: KTLSKIT_SSH_CONFIG {self.ssh_config} does not exist")
        self._check_targets()

    def _check_targets(self) -> None:
        """The machines ktlskit logs into, as the SSH config names them (no connection)."""
        named = [("KTLSKIT_DUT (--dut)", self.dut)] if self.dut else []
        if self.remote_type == "ssh":
            key = "KTLSKIT_REMOTE (--peer)" if self.remote else "REMOTE_ARGS"
            named.append((key, self.remote_target))
        cfg = Path(self.ssh_config).expanduser() if self.ssh_config else None
        for key, spec in named:
            try:
                resolve(spec, cfg)
            except TargetError as exc:
                raise EnvError(f"{self.source}: {key}: {exc}") from exc

    @property
    def remote_target(self) -> str:
        """How ktlskit reaches the remote machine (ssh)."""
        return self.remote or self.remote_args

    def to_text(self) -> str:
        """The env in NIPA's format (ktlskit's keys too)."""
        lines = []
        for key, attr in _KEYS.items():
            value = getattr(self, attr)
            if value:
                lines.append(f"{key}={value}")
        lines += [f"{k}={v}" for k, v in self.extra.items()]
        return "\n".join(lines) + "\n"


def _check_address(where: str, name: str, addr: str, version: int) -> None:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise EnvError(f"{where}: {name}={addr!r} is not an IP address") from None
    if ip.version != version:
        raise EnvError(f"{where}: {name}={addr} is not an IPv{version} address")

