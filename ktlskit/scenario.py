"""A traffic scenario in a guest: topology, two peers, rekeys, counters, verdict.

Host side. Everything in the guest runs as ``python -m ktlskit.{topology,
peer,tlsstats}`` over SSH with the harness's own interpreter (the guest sees
the host root). The verdict needs: both streams complete and intact (frame
checks and SHA-256 on both ends), the kernel's rekey counters equal to the
rekeys the peers did, no decrypt/rekey errors, no splat, and with
``offload`` the device counters moving.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import ciphers, topologies
from .errors import KtlskitError
from .guest import Guest, GuestCommandError, LocalGuest
from .peer import KeyMaterial, frames, throughput_mbps
from .progress import say
from .scenariocheck import Check
from .scenariorekey import device_share_checks, offload_rekey_checks, rekeys_each_way
from .tlsstats import Snapshot, delta

GUEST_DIR = "/tmp/ktlskit-run"
PORT = 4433
# A Python start in a TCG guest on a loaded 2-core host can take tens of seconds.
GUEST_PY_TIMEOUT = 300
MIN_BYTES, MAX_BYTES = 16, 1 << 30


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

    def check(self) -> None:
        """Everything knowable on the host, before any build or boot; the error lists the
        valid choices."""
        if self.topology not in topologies.TOPOLOGIES:
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
    accel: str
    peers: dict[str, dict] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
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
            "accel": self.accel,
            "throughput_mbps": self.throughput_mbps(),
            "rekeys": self.rekeys(),
            "stall_ms": {"count": len(stalls), "max": max(stalls, default=0.0),
                         "mean": round(sum(stalls) / len(stalls), 3) if stalls else 0.0},
            "counters": self.counters,
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


def _py(guest: Guest | LocalGuest, module: str, args: str, netns: str = "") -> str:
    cmd = f"{shlex.quote(guest.python)} -m ktlskit.{module} {args}"
    return f"ip netns exec {netns} {cmd}" if netns else cmd


def _snapshot(guest: Guest | LocalGuest, topo: dict) -> Snapshot:
    args = " ".join([*(f"--dev {d}" for d in topo["devices"]),
                     *(f"--netns {n}" for n in sorted({topo["server_ns"], topo["client_ns"]})
                       if n)])
    out = guest.run(_py(guest, "tlsstats", f"snapshot {args}"), timeout=GUEST_PY_TIMEOUT).stdout
    return Snapshot.from_json(json.loads(out))


def _setup(guest: Guest | LocalGuest, spec: ScenarioSpec) -> dict:
    flag = " --offload" if spec.offload else ""
    try:
        res = guest.run(_py(guest, "topology", f"setup {spec.topology}{flag}"),
                        timeout=GUEST_PY_TIMEOUT)
    except GuestCommandError as exc:
        raise ScenarioError(f"topology {spec.topology}: {exc.result.stderr.strip()}") from exc
    return json.loads(res.stdout)


def _peer_args(spec: ScenarioSpec, topo: dict, role: str) -> str:
    addr = topo["server_v6"] if spec.ipv6 else topo["server_v4"]
    ctl = {r: f"{GUEST_DIR}/{r}.ctl" for r in ("server", "client")}
    other = "client" if role == "server" else "server"
    rekey_every = spec.rekey_every if (role == "client" or spec.rekey_dirs == "both") else 0
    args = [role, "--addr", addr, "--port", str(PORT), "--keys", f"{GUEST_DIR}/keys.json",
            "--bytes", str(spec.nbytes), "--rekey-every", str(rekey_every),
            "--rekey-dirs", "tx", "--control", ctl[role], "--peer-control", ctl[other],
            "--timeout", "60"]
    if role == "client" and spec.extra_rekey:
        args += ["--pause-at", str(max(1, len(frames(b"", spec.nbytes)) // 2))]
    return shlex.join(args)


def _put_keys(guest: Guest | LocalGuest, keys: KeyMaterial) -> None:
    guest.run(f"mkdir -p {GUEST_DIR}", timeout=10)
    # 0600 in the system temp dir: the cache is read-only when this runs inside a guest
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(asdict(keys), f)
        f.flush()
        guest.put(Path(f.name), f"{GUEST_DIR}/keys.json")


def run(guest: Guest | LocalGuest, spec: ScenarioSpec, kernel: str = "") -> ScenarioReport:
    spec.check()
    start = time.monotonic()
    report = ScenarioReport(spec, kernel, guest.accel)
    say(f"topology {spec.topology}{' with offload' if spec.offload else ''}")
    topo = _setup(guest, spec)
    try:
        _put_keys(guest, KeyMaterial.generate(spec.version, spec.cipher))
        before = _snapshot(guest, topo)
        say(f"traffic: TLS {spec.version} {spec.cipher}, {spec.nbytes} bytes each way, "
            f"rekey every {spec.rekey_every or 'never'} records")
        report.peers, mid = _traffic(guest, spec, topo)
        exclude_pause(report.peers)
        after = _snapshot(guest, topo)
        report.counters = delta(before, after)
        report.sockets = [asdict(s) for s in (mid or after).sockets]
    finally:
        guest.run(_py(guest, "topology", "teardown"), timeout=GUEST_PY_TIMEOUT, check=False)
    report.checks = judge(spec, report)
    report.seconds = round(time.monotonic() - start, 1)
    return report


def _traffic(guest: Guest | LocalGuest, spec: ScenarioSpec,
             topo: dict) -> tuple[dict[str, dict], Snapshot | None]:
    """Run both peers; with ``extra_rekey``, also a mid-stream snapshot (sockets open)."""
    server = guest.spawn(_py(guest, "peer", _peer_args(spec, topo, "server"), topo["server_ns"]),
                         timeout=spec.timeout)
    _await_text(server, "listening", GUEST_PY_TIMEOUT, "server")
    client = guest.spawn(_py(guest, "peer", _peer_args(spec, topo, "client"), topo["client_ns"]),
                         timeout=spec.timeout)
    mid = None
    if spec.extra_rekey:
        _await_text(client, "paused at frame", GUEST_PY_TIMEOUT, "client")
        mid = _snapshot(guest, topo)
        say("triggering one rekey over SSH (client TX, update requested)")
        guest.run(_py(guest, "peer", f"control {GUEST_DIR}/client.ctl both"),
                  timeout=GUEST_PY_TIMEOUT)
    results = {}
    for role, proc in (("client", client), ("server", server)):
        res = proc.wait(timeout=spec.timeout + 30, check=False)
        try:
            results[role] = json.loads(res.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError) as exc:
            raise ScenarioError(f"{role} peer printed no result (exit {res.rc}):\n"
                                f"{res.stderr[-2000:]}") from exc
    return results, mid


def _await_text(proc: object, text: str, timeout: float, who: str) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.stderr:  # type: ignore[attr-defined]
        if not proc.running():  # type: ignore[attr-defined]
            raise ScenarioError(f"{who} peer exited early:\n{proc.stdout}{proc.stderr}")  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise ScenarioError(f"{who} peer did not say {text!r} within {timeout:.0f}s")
        time.sleep(0.05)


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
        caps = topologies.TOPOLOGIES[spec.topology].offload
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
