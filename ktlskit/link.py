"""Two machines joined by the link an env file names: the DUT and its remote end.

    with link.machines(env) as (dut, remote), link.prepared(env, dut, remote, offload) as lk:
        ...   # the client runs on lk.dut, the server on lk.remote

``machines`` reaches both (this machine, or SSH with ktlskit deployed; REMOTE_TYPE=netns: a
namespace on the DUT). ``prepared`` makes the link usable and undoes it afterwards, with
the care machines that matter need:

- it touches only the interfaces and addresses the env names (NETIF, LOCAL_V4/V6 on the
  DUT; the remote's interface holding REMOTE_V4/V6, or KTLSKIT_REMOTE_NETIF);
- it refuses to change an interface that carries an SSH session (ktlskit's own, the
  user's on the DUT, any sshd connection ``ss`` shows) and says so before changing anything;
- what it changes (a missing address, a link that was down, the TLS offload features of
  NETIF) is undone at the end, also after Ctrl-C or SIGTERM (a second Ctrl-C waits).
The remote's offload features are never changed (the kernel's rule: leave the remote be).
"""

from __future__ import annotations

import json
import shlex
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .cleanup import CleanupError, Defer
from .hosts import Host, HostError
from .hosts.local import LocalHost
from .hosts.netenv import EnvError, NetEnv
from .progress import say

OFFLOAD_FEATURES = ("tls-hw-tx-offload", "tls-hw-rx-offload")
RX_CSUM = "rx-checksumming"  # as ethtool -k shows it; ethtool -K calls it "rx"


class LinkError(HostError):
    """The link cannot be used as the env describes it, or must not be touched."""


@dataclass(frozen=True)
class LinkEnd:
    label: str  # "DUT" or "remote"
    host: Host
    netns: str  # REMOTE_TYPE=netns: the remote end's namespace on the DUT
    ifname: str
    v4: str
    v6: str
    driver: str = ""

    def sh(self, command: str) -> str:
        return f"ip netns exec {shlex.quote(self.netns)} {command}" if self.netns else command

    @property
    def where(self) -> str:
        ns = f" (netns {self.netns})" if self.netns else ""
        return f"{self.ifname} on {self.host.name}{ns}"

    @property
    def device(self) -> str:
        """``ns/ifname``, as the counters name it."""
        return f"{self.netns}/{self.ifname}"


@dataclass(frozen=True)
class Link:
    dut: LinkEnd
    remote: LinkEnd


@contextmanager
def machines(env: NetEnv) -> Iterator[tuple[Host, Host]]:
    """The DUT and the remote, reachable and ready (deployed) for the block."""
    from .hosts.sshhost import SshHost

    env.check()
    cfg = Path(env.ssh_config).expanduser() if env.ssh_config else None
    with ExitStack() as stack:
        if env.dut:
            dut: Host = stack.enter_context(SshHost.open(env.dut, cfg))
        else:
            local = LocalHost()
            stack.callback(local.close)
            dut = local
        remote = dut if env.remote_type == "netns" else \
            stack.enter_context(SshHost.open(env.remote_target, cfg))
        yield dut, remote


def _addresses(host: Host, netns: str) -> list[dict]:
    prefix = f"ip netns exec {shlex.quote(netns)} " if netns else ""
    res = host.run(f"{prefix}ip -j addr show", timeout=30, check=False)
    if res.rc != 0:
        raise LinkError(f"{host.name}: ip -j addr show failed (iproute2 with JSON output "
                        f"needed): {res.stderr.strip()}")
    return list(json.loads(res.stdout or "[]"))


def _holder(links: list[dict], addr: str) -> str:
    for link in links:
        if any(a.get("local") == addr for a in link.get("addr_info", [])):
            return str(link["ifname"])
    return ""


def _local_address(column: str) -> str:
    """The address of an ``ss`` address column: ``192.0.2.2:22``, ``[fe80::1]%eth0:22``,
    ``[::ffff:192.0.2.2]:22``."""
    addr = column.rpartition(":")[0].split("%")[0].strip("[]")
    mapped = addr.removeprefix("::ffff:")
    return mapped if mapped != addr and "." in mapped else addr


def _ssh_interfaces(host: Host, links: list[dict]) -> set[str]:
    """The interfaces carrying an SSH session on ``host``: ktlskit's own (or the user's, when
    ktlskit runs on the DUT: SSH_CONNECTION) and every established connection of an sshd
    (``ss -p``: as root, also other users' sessions, and when sudo dropped SSH_CONNECTION)."""
    conn = host.run("printenv SSH_CONNECTION", timeout=30, check=False).stdout.split()
    addrs = {conn[2]} if len(conn) == 4 else set()
    res = host.run("ss -Htnp state established", timeout=30, check=False)
    for line in res.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 5 and '("sshd' in line:  # sshd, or sshd-session (OpenSSH >= 9.8)
            addrs.add(_local_address(cols[2]))
    return {_holder(links, a) for a in addrs} - {""}


def _end(env: NetEnv, label: str, host: Host, netns: str) -> tuple[LinkEnd, list[dict]]:
    links = _addresses(host, netns)
    if label == "DUT":
        ifname, v4, v6 = env.netif, env.local_v4, env.local_v6
    else:
        v4, v6 = env.remote_v4, env.remote_v6
        ifname = env.remote_netif or _holder(links, v4) or _holder(links, v6)
        if not ifname:
            raise LinkError(f"{env.source}: no interface of the remote ({host.name}) has "
                            f"{v4 or v6}; configure it there, or name the interface with "
                            "KTLSKIT_REMOTE_NETIF= so that ktlskit adds the address")
    if ifname not in {str(x["ifname"]) for x in links}:
        raise LinkError(f"{env.source}: the {label} ({host.name}) has no interface {ifname}")
    for addr in (v4, v6):
        other = _holder(links, addr) if addr else ""
        if other and other != ifname:
            raise LinkError(f"{env.source}: {addr} is on {other} of the {label}, not {ifname}")
    res = host.run(f"ethtool -i {shlex.quote(ifname)}" if not netns else
                   f"ip netns exec {shlex.quote(netns)} ethtool -i {shlex.quote(ifname)}",
                   timeout=30, check=False)
    driver = next((ln.split(":", 1)[1].strip() for ln in res.stdout.splitlines()
                   if ln.startswith("driver:")), "")
    return LinkEnd(label, host, netns, ifname, v4, v6, driver), links


def _features(end: LinkEnd) -> dict[str, tuple[str, bool]]:
    """{feature: (on/off, fixed)} for the TLS offload features of ``end``'s interface and
    the RX checksumming the RX offload needs."""
    res = end.host.run(end.sh(f"ethtool -k {shlex.quote(end.ifname)}"), timeout=30)
    out = {}
    for line in res.stdout.splitlines():
        name, _, rest = line.strip().partition(":")
        if name in (*OFFLOAD_FEATURES, RX_CSUM):
            words = rest.split()
            out[name] = (words[0] if words else "off", "[fixed]" in rest)
    return out


def _offload_plan(end: LinkEnd) -> list[tuple[str, str, str]]:
    """Turn the TLS offload features on (RX checksumming first: without it the kernel drops
    ``tls-hw-rx-offload`` and ethtool still exits 0), then check with ``ethtool -k`` that
    they took."""
    dev = shlex.quote(end.ifname)
    feats = _features(end)
    fixed = [f for f in (RX_CSUM, *OFFLOAD_FEATURES)
             if f not in feats or (feats[f][1] and feats[f][0] != "on")]
    if fixed:
        raise LinkError(f"--offload: {end.where} (driver {end.driver or 'unknown'}) cannot "
                        f"turn on {', '.join(fixed)} (fixed off or absent in ethtool -k)")
    plan = []
    if feats[RX_CSUM][0] != "on":
        plan.append((f"turn on rx checksumming on {end.ifname}", f"ethtool -K {dev} rx on",
                     f"ethtool -K {dev} rx off"))
    off = [f for f in OFFLOAD_FEATURES if feats[f][0] != "on"]
    if not off:
        return plan
    names = " ".join(OFFLOAD_FEATURES)
    check = (f"ethtool -k {dev} | awk -v want='{names}' "
             "'BEGIN {n = split(want, w, \" \")} "
             "{sub(\":\", \"\", $1); s[$1] = $2} "
             "END {for (i = 1; i <= n; i++) if (s[w[i]] != \"on\") "
             "{print w[i] \" did not turn on\"; bad = 1}; exit bad}'")
    return [*plan,
            (f"turn on {', '.join(off)} on {end.ifname}",
             f"ethtool -K {dev} " + " ".join(f"{f} on" for f in off),
             f"ethtool -K {dev} " + " ".join(f"{f} off" for f in off)),
            (f"check {names} are on", check, "true")]


def _plan(end: LinkEnd, links: list[dict], offload: bool) -> list[tuple[str, str, str]]:
    """(what, command, undo command) for each change ``end`` needs."""
    dev = shlex.quote(end.ifname)
    link = next(x for x in links if x["ifname"] == end.ifname)
    have = {a.get("local") for a in link.get("addr_info", [])}
    plan = []
    if "UP" not in link.get("flags", []):
        plan.append((f"set {end.ifname} up", f"ip link set dev {dev} up",
                     f"ip link set dev {dev} down"))
    for addr, plen, extra in ((end.v4, 24, ""), (end.v6, 64, " nodad")):
        if addr and addr not in have:
            plan.append((f"add {addr}/{plen} to {end.ifname}",
                         f"ip addr add {addr}/{plen} dev {dev}{extra}",
                         f"ip addr del {addr}/{plen} dev {dev}"))
    if offload and end.label == "DUT":
        plan += _offload_plan(end)
    return plan


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait while the undo runs (the main thread only)."""
    try:
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def prepared(env: NetEnv, dut: Host, remote: Host, offload: bool = False) -> Iterator[Link]:
    """The link, usable for the block: checked, changed only where needed, restored after."""
    netns = env.remote_args if env.remote_type == "netns" else ""
    d_end, d_links = _end(env, "DUT", dut, "")
    r_end, r_links = _end(env, "remote", remote, netns)
    plans = []
    for end, links in ((d_end, d_links), (r_end, r_links)):
        plan = _plan(end, links, offload)
        carriers = _ssh_interfaces(end.host, links) if not end.netns else set()
        if plan and end.ifname in carriers:
            raise LinkError(f"refusing to reconfigure {end.where}: it carries an SSH session "
                            f"({'; '.join(p[0] for p in plan)} needed); configure it yourself "
                            "or name another interface")
        plans.append((end, plan))
    undo = Defer()
    try:
        for end, plan in plans:
            for what, do, back in plan:
                end.host.run(end.sh(do), timeout=60)
                undo.defer(end.host.run, end.sh(back), 60, True)
                say(f"{end.host.name}: {what} (undone at the end)")
        yield Link(d_end, r_end)
    except BaseException:
        with _uninterrupted():
            try:
                undo.run()
            except CleanupError as exc:  # the run's own error is the one to report
                say(f"the link could not be restored completely: {exc}")
        raise
    with _uninterrupted():
        undo.run()


def check_env_options(env: NetEnv, ipv6: bool) -> None:
    """The scenario options the env can serve, before connecting."""
    env.check()
    if ipv6 and not (env.local_v6 and env.remote_v6):
        raise EnvError(f"{env.source}: --ipv6 needs LOCAL_V6 and REMOTE_V6")
    if not ipv6 and not (env.local_v4 and env.remote_v4):
        raise EnvError(f"{env.source}: IPv4 needs LOCAL_V4 and REMOTE_V4 (or use --ipv6)")
