"""A traffic scenario: topology, two peers, rekeys, counters, verdict.

Runs on the controller and drives the peers' hosts through the Host contract: one host
(the guest, or this machine in-guest) with both peers in a topology's namespaces, or two
machines joined by a real link (``ktlskit.hosts.link``): the client on one, the server on
the other. Every step on a host is a ktlskit function called there (``hosts.call``).
The verdict needs: both streams complete and intact (frame checks and SHA-256 on both
ends), the kernels' rekey counters equal to the rekeys the peers did, no decrypt/rekey
errors, no splat on any host, and with ``offload`` the device counters moving.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import ciphers, peer, peerrun, tlsstats, topologies
from .errors import KtlskitError
from .hosts import Host, HostError
from .hosts.call import CallError, Pending, call, start
from .peer import KeyMaterial, frames, throughput_mbps
from .progress import say
from .scenariocheck import Check
from .scenariorekey import device_share_checks, offload_rekey_checks, rekeys_each_way
from .tlsstats import Snapshot, delta

if TYPE_CHECKING:
    from .link import Link

# A Python start in a TCG guest on a loaded 2-core host can take tens of seconds.
GUEST_PY_TIMEOUT = 300
MIN_BYTES, MAX_BYTES = 16, 1 << 30


OFFLOAD_REKEY_RCVBUF = 64 << 10
"""SO_RCVBUF of both peers when offloaded directions rekey, unless ``--rcvbuf`` says otherwise.
After a KeyUpdate the RX device goes on decrypting the records behind it with the old key until
the reader has read the KeyUpdate and installed the new key: those records go to software, so
the RX device share is bounded by the reader's lag. The peers' Python frame checks read slower
than the senders write, and with autotuning the unread queue grows to hundreds of KiB: with a
rekey every 16 records of 16 KiB, one port's device decrypted 14-47% of its stream in 4 of 5
runs. 64 KiB bounds the lag to a few records, as a reader that keeps up would (63-82%, 4 of 4)."""
MIN_RCVBUF, MAX_RCVBUF = 4096, 64 << 20


def default_rcvbuf(offload: bool, rekeys: bool) -> int:
    """``OFFLOAD_REKEY_RCVBUF`` for offloaded sockets that rekey, else 0 (autotuning)."""
    return OFFLOAD_REKEY_RCVBUF if offload and rekeys else 0


class ScenarioError(KtlskitError):
    """The scenario could not be set up or run."""


@dataclass(frozen=True)
class ScenarioSpec:
    topology: str = "veth"
    offload: bool = False
    version: str = "1.3"
    cipher: str = "aes-gcm-128"
    nbytes: int = 4 << 20
    rekey_every: int = 64  # records; 0 = no scheduled rekeys
    rekey_dirs: str = "both"  # scheduled rekeys: "tx" (client only), "both" (both ends)
    extra_rekey: bool = True  # one more rekey triggered over SSH mid-stream
    ipv6: bool = False
    timeout: float = 600
    rcvbuf: int = 0  # SO_RCVBUF of both peers' sockets; 0 = the kernel's autotuning

    def check(self) -> None:
        """Everything knowable on the host, before any build or boot; the error lists the
        valid choices."""
        if self.topology not in topologies.KINDS:
            raise ScenarioError(f"unknown topology {self.topology!r}; valid: "
                                f"{', '.join(topologies.names())}")
        if self.version not in ("1.2", "1.3"):
            raise ScenarioError(f"unknown TLS version {self.version!r}: 1.2 or 1.3")
        try:
            cipher = ciphers.lookup(self.cipher)
        except ciphers.UnknownCipherError as exc:
            raise ScenarioError(str(exc)) from None
        if self.version == "1.3" and not cipher.kernel_tls13:
            ok = [c.name for c in ciphers.ALL if c.kernel_tls13]
            raise ScenarioError(f"the kernel refuses {cipher.name} with TLS 1.3 (EINVAL); use "
                                f"--tls-version 1.2, or with 1.3 one of: {', '.join(ok)}")
        if self.version == "1.2" and (self.rekey_every or self.extra_rekey):
            raise ScenarioError("TLS 1.2 has no rekey (KeyUpdate is TLS 1.3 only): "
                                "use --no-rekey or --tls-version 1.3")
        if not MIN_BYTES <= self.nbytes <= MAX_BYTES:
            raise ScenarioError(f"--bytes {self.nbytes}: must be between {MIN_BYTES} (one frame "
                                f"header) and {MAX_BYTES} (1 GiB) bytes each way")
        if self.rekey_every < 0:
            raise ScenarioError(f"--rekey-every {self.rekey_every}: must be a positive number "
                                "of records (or --no-rekey)")
        if self.rcvbuf and not MIN_RCVBUF <= self.rcvbuf <= MAX_RCVBUF:
            raise ScenarioError(f"--rcvbuf {self.rcvbuf}: 0 (the kernel's autotuning) or "
                                f"between {MIN_RCVBUF} and {MAX_RCVBUF} bytes")
        if self.rekey_dirs not in ("tx", "both"):
            raise ScenarioError(f"rekey directions {self.rekey_dirs!r}: tx or both")
        if self.offload:
            why = topologies.offload_problem(self.topology, self.version, cipher.name)
            if why:
                raise ScenarioError(why)


@dataclass
class ScenarioReport:
    spec: ScenarioSpec
    kernel: str
    where: str  # the hosts the peers ran on
    peers: dict[str, dict] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)  # summed over the hosts
    counters_by_host: dict[str, dict[str, int]] = field(default_factory=dict)
    sockets: list[dict] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return "pass" if self.checks and all(c.ok for c in self.checks) else "fail"

    def rekeys(self) -> dict[str, int]:
        return {"tx": sum(int(p.get("tx_rekeys", 0)) for p in self.peers.values()),
                "rx": sum(int(p.get("rx_rekeys", 0)) for p in self.peers.values())}

    def stalls_ms(self) -> list[float]:
        return [s for p in self.peers.values() for s in p.get("stalls_ms", [])]

    def throughput_mbps(self) -> float:
        return round(sum(float(p.get("throughput_mbps", 0)) for p in self.peers.values()) / 2,
                     2)

    def to_json(self) -> dict[str, object]:
        stalls = self.stalls_ms()
        return {
            "verdict": self.verdict,
            "scenario": asdict(self.spec),
            "kernel": self.kernel,
            "where": self.where,
            "throughput_mbps": self.throughput_mbps(),
            "rekeys": self.rekeys(),
            "stall_ms": {"count": len(stalls), "max": max(stalls, default=0.0),
                         "mean": round(sum(stalls) / len(stalls), 3) if stalls else 0.0},
            "counters": self.counters,
            "counters_by_host": self.counters_by_host,
            "peers": self.peers,
            "sockets": self.sockets,
            "checks": [asdict(c) for c in self.checks],
            "seconds": self.seconds,
        }


def exclude_pause(peers: dict[str, dict]) -> None:
    """Rate each peer over the time the stream flowed.

    With the extra SSH rekey the client holds its stream mid-way until the harness's command
    arrives (seconds under TCG); the server is starved for that long too. That hold is the
    harness, not kTLS, so both peers' throughput leaves out the client's pause.
    """
    paused = max(float(p.get("paused_seconds", 0.0)) for p in peers.values()) if peers else 0.0
    for p in peers.values():
        mb = (int(p.get("bytes_sent", 0)) + int(p.get("bytes_received", 0))) / 1e6
        p["active_seconds"] = round(float(p.get("seconds", 0.0)) - paused, 3)
        p["throughput_mbps"] = throughput_mbps(mb, p["active_seconds"])


# ---- where the peers run ----------------------------------------------------------

@dataclass(frozen=True)
class End:
    """Where one peer runs: a host, a namespace there, and the devices whose counters count."""

    host: Host
    netns: str = ""
    devices: tuple[str, ...] = ()  # "ns/ifname" on that host


@dataclass(frozen=True)
class Wiring:
    """Both ends and the address the client dials (the server's)."""

    server: End
    client: End
    server_v4: str
    server_v6: str
    label: str = ""  # how to describe it in the report, when not by the hosts' names

    def hosts(self) -> list[Host]:
        """The distinct hosts (one, or two machines)."""
        return list({id(e.host): e.host for e in (self.server, self.client)}.values())

    def ends_on(self, host: Host) -> list[End]:
        return [e for e in (self.server, self.client) if e.host is host]

    def describe(self) -> str:
        if self.label:
            return self.label
        if self.server.host is self.client.host:
            return self.server.host.name
        return f"client on {self.client.host.name}, server on {self.server.host.name}"


@contextmanager
def on_topology(host: Host, spec: ScenarioSpec) -> Iterator[Wiring]:
    """A one-host topology from the registry, set up on ``host`` for the block."""
    say(f"topology {spec.topology}{' with offload' if spec.offload else ''}")
    try:
        topo = call(host, topologies.setup, spec.topology, spec.offload,
                    timeout=GUEST_PY_TIMEOUT)
    except CallError as exc:
        raise ScenarioError(f"topology {spec.topology}: {exc}") from exc
    devices = tuple(topo.devices)
    try:
        yield Wiring(End(host, topo.server_ns, devices), End(host, topo.client_ns, devices),
                     topo.server_v4, topo.server_v6)
    except BaseException:
        try:
            call(host, topologies.teardown, topo.run_id, timeout=GUEST_PY_TIMEOUT)
        except HostError as exc:  # the run's own error is the one to report (a dead host too)
            say(f"and the teardown of topology {topo.run_id} failed: {exc}")
        raise
    call(host, topologies.teardown, topo.run_id, timeout=GUEST_PY_TIMEOUT)


@contextmanager
def on_link(lk: Link) -> Iterator[Wiring]:
    """Two machines over a prepared link (``ktlskit.link``): client on the DUT, server on
    the remote."""
    d, r = lk.dut, lk.remote
    label = (f"client on {d.where} ({d.driver or '?'}), "
             f"server on {r.where} ({r.driver or '?'})")
    yield Wiring(End(r.host, r.netns, (r.device,)), End(d.host, "", (d.device,)), r.v4, r.v6,
                 label)


# ---- the run ----------------------------------------------------------------------

#: Told, once both peers run, where each one's control socket is: {role: (host, path)}.
Started = Callable[[dict[str, tuple[Host, str]]], None]


def run(host: Host, spec: ScenarioSpec, kernel: str = "") -> ScenarioReport:
    """The scenario on one host, in the topology ``spec`` names."""
    spec.check()
    return run_on(on_topology(host, spec), spec, kernel)


def run_on(setup: AbstractContextManager[Wiring], spec: ScenarioSpec, kernel: str = "",
           started: Started | None = None) -> ScenarioReport:
    """The scenario on the ends ``setup`` provides (and removes afterwards)."""
    spec.check()
    t0 = time.monotonic()
    with setup as wiring:
        report = ScenarioReport(spec, kernel, wiring.describe())
        hosts = wiring.hosts()
        _put_keys(hosts, KeyMaterial.generate(spec.version, spec.cipher))
        before = _snapshots(wiring)
        say(f"traffic: TLS {spec.version} {spec.cipher}, {spec.nbytes} bytes each way, "
            f"rekey every {spec.rekey_every or 'never'} records"
            f"{f', SO_RCVBUF {spec.rcvbuf}' if spec.rcvbuf else ''} ({wiring.describe()})")
        report.peers, mid = _traffic(wiring, spec, started)
        exclude_pause(report.peers)
        after = _snapshots(wiring)
        _count(report, before, after)
        report.sockets = [asdict(s) for snap in (mid or after).values() for s in snap.sockets]
    for h in hosts:
        h.check("during the scenario")
    report.checks = judge(spec, report)
    report.seconds = round(time.monotonic() - t0, 1)
    return report


def _put_keys(hosts: list[Host], keys: KeyMaterial) -> None:
    # 0600 in the system temp dir: the cache is read-only when this runs inside a guest
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(asdict(keys), f)
        f.flush()
        for h in hosts:
            h.put(Path(f.name), f"{h.tmpdir}/keys.json")


def _snapshots(wiring: Wiring) -> dict[str, Snapshot]:
    """Each host's counters: tls_stat of the ends' namespaces, ethtool -S of their devices."""
    out = {}
    for h in wiring.hosts():
        ends = wiring.ends_on(h)
        devices = sorted({d for e in ends for d in e.devices})
        namespaces = sorted({e.netns for e in ends})
        out[h.name] = call(h, tlsstats.snapshot, devices, namespaces, timeout=GUEST_PY_TIMEOUT)
    return out


def _count(report: ScenarioReport, before: dict[str, Snapshot],
           after: dict[str, Snapshot]) -> None:
    """Counter deltas per host; the totals add the hosts' kernel and device counters up."""
    report.counters_by_host = {h: delta(before[h], after[h]) for h in after}
    if len(after) == 1:
        report.counters = next(iter(report.counters_by_host.values()))
        return
    for d in report.counters_by_host.values():
        for k, v in d.items():
            if "/" not in k:  # per-interface entries stay per host
                report.counters[k] = report.counters.get(k, 0) + v


def _peer_kwargs(spec: ScenarioSpec, wiring: Wiring, role: str,
                 ctl: dict[str, str]) -> dict[str, object]:
    end = wiring.server if role == "server" else wiring.client
    addr = wiring.server_v6 if spec.ipv6 else wiring.server_v4
    rekey_every = spec.rekey_every if (role == "client" or spec.rekey_dirs == "both") else 0
    other = "client" if role == "server" else "server"
    same_host = wiring.server.host is wiring.client.host
    kw: dict[str, object] = {
        "role": role, "addr": addr, "port": 0,
        "keys_file": f"{end.host.tmpdir}/keys.json", "nbytes": spec.nbytes,
        "rekey_every": rekey_every, "rekey_dirs": "tx", "control": ctl[role],
        # "rx" (ask the other end to rekey) reaches it only on the same machine
        "peer_control": ctl[other] if same_host else "", "connect_timeout": 60,
        "rcvbuf": spec.rcvbuf}
    if role == "client" and spec.extra_rekey:
        kw["pause_at"] = max(1, len(frames(b"", spec.nbytes)) // 2)
    return kw


def _listening_port(server: Pending[peer.Result]) -> int:
    for line in server.process.stderr.splitlines():
        if line.startswith("listening on "):
            return int(line.split()[-1])
    raise ScenarioError(f"the server did not say its port:\n{server.process.stderr[-2000:]}")


def _traffic(wiring: Wiring, spec: ScenarioSpec, started: Started | None
             ) -> tuple[dict[str, dict], dict[str, Snapshot] | None]:
    """Run both peers; with ``extra_rekey``, also a mid-stream snapshot (sockets open)."""
    ctl = {r: f"{e.host.tmpdir}/{r}.ctl" for r, e in (("server", wiring.server),
                                                      ("client", wiring.client))}
    srv_kw = _peer_kwargs(spec, wiring, "server", ctl)
    server = start(wiring.server.host, peerrun.run_peer, netns=wiring.server.netns,
                   timeout=spec.timeout, **srv_kw)
    pending = [server]
    try:
        server.await_text("listening on", GUEST_PY_TIMEOUT, "the server peer")
        cli_kw = {**_peer_kwargs(spec, wiring, "client", ctl), "port": _listening_port(server)}
        client = start(wiring.client.host, peerrun.run_peer, netns=wiring.client.netns,
                       timeout=spec.timeout, **cli_kw)
        pending.append(client)
        if started is not None:
            started({"server": (wiring.server.host, ctl["server"]),
                     "client": (wiring.client.host, ctl["client"])})
        mid = None
        if spec.extra_rekey:
            client.await_text("paused at frame", GUEST_PY_TIMEOUT, "the client peer")
            mid = _snapshots(wiring)
            say("triggering one rekey over SSH (client TX, update requested)")
            call(wiring.client.host, peer.send_control, ctl["client"], "both",
                 timeout=GUEST_PY_TIMEOUT)
        results = {}
        for role, proc in (("client", client), ("server", server)):
            results[role] = proc.result(timeout=spec.timeout + 30).to_json()
        pending.clear()
        return results, mid
    except CallError as exc:
        raise ScenarioError(str(exc)) from exc
    finally:
        for proc in pending:  # interrupted or failed: stop what still runs
            proc.kill()


def judge(spec: ScenarioSpec, rep: ScenarioReport) -> list[Check]:
    c, s = rep.peers.get("client", {}), rep.peers.get("server", {})
    checks = [
        Check("client stream", bool(c.get("ok")), "; ".join(c.get("errors", []))),
        Check("server stream", bool(s.get("ok")), "; ".join(s.get("errors", []))),
        Check("integrity client->server", bool(c.get("sha256_sent")) and
              c.get("sha256_sent") == s.get("sha256_received"), "SHA-256 of the stream"),
        Check("integrity server->client", bool(s.get("sha256_sent")) and
              s.get("sha256_sent") == c.get("sha256_received"), "SHA-256 of the stream"),
    ]
    k = rep.counters
    rk = rep.rekeys()
    for name in ("TlsDecryptError", "TlsTxRekeyError", "TlsRxRekeyError"):
        checks.append(Check(f"{name} unchanged", k.get(name, 0) == 0, f"delta {k.get(name, 0)}"))
    if spec.version == "1.3" and spec.offload:
        checks += offload_rekey_checks(k, rk)
    elif spec.version == "1.3":
        checks.append(Check("TlsTxRekeyOk = rekeys sent", k.get("TlsTxRekeyOk", 0) == rk["tx"],
                            f"kernel {k.get('TlsTxRekeyOk', 0)}, peers {rk['tx']}"))
        checks.append(Check("TlsRxRekeyOk = rekeys received",
                            k.get("TlsRxRekeyOk", 0) == rk["rx"],
                            f"kernel {k.get('TlsRxRekeyOk', 0)}, peers {rk['rx']}"))
    if spec.version == "1.3" and (spec.rekey_every or spec.extra_rekey):
        checks.append(Check("rekeys happened", rk["tx"] > 0 and rk["rx"] == rk["tx"],
                            f"tx {rk['tx']}, rx {rk['rx']}"))
    if spec.offload:
        caps = topologies.KINDS[spec.topology].offload
        # the kernel's and the device's own counters (ethtool -S)
        names = ["TlsTxDevice", "TlsRxDevice", *(caps.device_counters if caps else ())]
        for name in names:
            checks.append(Check(f"{name} moved", k.get(name, 0) > 0, f"delta {k.get(name, 0)}"))
        if spec.version == "1.3" and (spec.rekey_every or spec.extra_rekey):
            checks += device_share_checks(k, spec.nbytes)
            if spec.rekey_dirs == "both":
                checks.append(rekeys_each_way(rep.peers))
    else:
        checks.append(Check("TlsTxSw/TlsRxSw moved",
                            k.get("TlsTxSw", 0) == 2 and k.get("TlsRxSw", 0) == 2,
                            f"TlsTxSw {k.get('TlsTxSw', 0)}, TlsRxSw {k.get('TlsRxSw', 0)}"))
    return checks
