"""Guest side of ``ktlskit bench offload``: kTLS device offload against software kTLS.

``python -m ktlskit.offloadbench --bytes N --rounds K --tls-version 1.2 --tls-version 1.3``
sets up the ``netdevsim`` topology (two linked ports in namespaces ``ktls-a``/``ktls-b``, the
fake TLS offload of ``patches/tls-offload``) and runs K rounds; each round runs every mode
once, in an order that rotates from round to round. A mode (:class:`ModeSpec`) is a TLS
version, offload on or off (``ethtool -K tls-hw-tx/rx-offload``), and a KeyUpdate schedule.

Each transfer is one verified one-way stream (``ktlskit.benchstream``) from a kTLS client in
``ktls-a`` (TX) to a kTLS server in ``ktls-b`` (RX), keys installed with raw
``setsockopt(SOL_TLS)``. Right after the install the namespaces' ``TlsCurr{Tx,Rx}Device``
say where the kernel put each direction: an offload mode whose sockets the kernel kept in
software is reported as "not supported by this kernel" (7.3 without ``patches/tls-offload``
refuses TLS 1.3 offload; with it, the rekey of an offloaded direction is refused) and not run
again. After the transfer the device counters must have moved (``tx_tls_encrypted_*`` on
the sender's port, ``rx_tls_decrypted_*`` on the receiver's) for an offload mode, and must not
have for a software mode; anything else fails the benchmark, so an "offload" figure is never
software in disguise. The device share (bytes the device handled / bytes of records on the
wire) is kept per transfer.

Modes with ``rekey_every`` send TLS 1.3 KeyUpdates, timed like ``bench traffic``. Their
offload transfers also keep their *timing* (``ktlskit.rekeytrace``): the sender's KeyUpdate
times, the receiver's progress at each read and the ports' timed key epochs, from which the
host computes how long each rekey kept a direction in software (``ktlskit.rekeywindows``).
A ``deladd`` mode is the same with netdevsim's ``refuse_rekey`` set on both ports, so the
stack runs the 2023 netdev design (del + add) instead of the device taking keys itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from . import cpuwhere, rekeytrace, rekeywindows, topology, trafficbench
from .benchstream import (
    RECORD,
    TIMEOUT,
    BenchError,
    Transfer,
    expected_digest,
    progress,
    receive_ktls,
    round_order,
    run_forked,
    send_all,
    verify,
)
from .ciphers import lookup
from .errors import KtlskitError
from .keyschedule import DirectionState
from .ksocket import Direction, KtlsError, KtlsSocket
from .offload.netns import connect
from .offload.nsim import Counters
from .offload.probes import TCP_KEYS, delta, tcp_counters

VERSIONS = ("1.2", "1.3")
CIPHERS = ("aes-gcm-128", "aes-gcm-256")  # what the fake device offloads
TX_DEVICE = ("tx_tls_encrypted_packets", "tx_tls_encrypted_bytes")
RX_DEVICE = ("rx_tls_decrypted_packets", "rx_tls_decrypted_bytes")


class Unsupported(KtlskitError):
    """The kernel did not put this mode's sockets where the mode needs them."""


@dataclass(frozen=True)
class ModeSpec:
    """One benchmark mode; ``name`` is its row label."""

    version: str
    offload: bool
    rekey_every: int = 0
    deladd: bool = False  # both ports refuse to take keys: tls_dev_del + tls_dev_add

    @property
    def name(self) -> str:
        rekey = f"+rekey/{self.rekey_every}" if self.rekey_every else ""
        deladd = "-deladd" if self.deladd else ""
        return f"tls{self.version}-{'offload' if self.offload else 'software'}{rekey}{deladd}"

    @property
    def timed(self) -> bool:
        """Its transfers keep the rekey timing (offload with KeyUpdates)."""
        return self.offload and bool(self.rekey_every)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "name": self.name}


def modes(versions: list[str], rekey_every: int = 0, deladd: bool = False) -> list[ModeSpec]:
    """Offload and software for each version; with ``rekey_every``, for TLS 1.3 offload (the
    device taking keys; with ``deladd`` also the del + add design) and software with a
    KeyUpdate every that many records."""
    out = [ModeSpec(v, off) for v in versions for off in (True, False)]
    if rekey_every and "1.3" in versions:
        out.append(ModeSpec("1.3", True, rekey_every))
        if deladd:
            out.append(ModeSpec("1.3", True, rekey_every, True))
        out.append(ModeSpec("1.3", False, rekey_every))
    return out


def overhead(version: str) -> int:
    """Bytes a 16 KiB AES-GCM record adds on the wire: header, explicit nonce/type, tag."""
    return 5 + 8 + 16 if version == "1.2" else 5 + 1 + 16


def _state(version: str, cipher: str) -> DirectionState:
    spec = lookup(cipher)
    if version == "1.3":
        return DirectionState.from_tls13_secret(spec, os.urandom(spec.hash_len))
    return DirectionState.from_tls12(spec, os.urandom(spec.key_size),
                                     os.urandom(spec.tls12_fixed_iv_size),
                                     seq=int.from_bytes(os.urandom(4), "big"))


def _open(spec: ModeSpec, cipher: str) -> tuple[KtlsSocket, KtlsSocket, dict[str, str]]:
    """(client TX, server RX) over the netdevsim link, and where the kernel put each."""
    before = Counters.read(eth=False)
    c, s = connect()
    for sk in (c, s):
        sk.settimeout(TIMEOUT)
    client, server = KtlsSocket(c, auto_key_update=False), KtlsSocket(s, auto_key_update=False)
    state = _state(spec.version, cipher)
    for ks in (client, server):
        ks.attach_ulp()
    client.install(Direction.TX, state)
    server.install(Direction.RX, state)
    opened = Counters.read(eth=False).since(before)
    placement = {
        "tx": "device" if opened["a"].get("TlsCurrTxDevice", 0) > 0 else "software",
        "rx": "device" if opened["b"].get("TlsCurrRxDevice", 0) > 0 else "software",
    }
    return client, server, placement


def _device_facts(spec: ModeSpec, delta: dict[str, dict[str, int]], nbytes: int,
                  placement: dict[str, str]) -> dict[str, Any]:
    wire = nbytes + math.ceil(nbytes / RECORD) * overhead(spec.version)
    tx = {k: delta["a_eth"].get(k, 0) for k in TX_DEVICE}
    rx = {k: delta["b_eth"].get(k, 0) for k in RX_DEVICE}
    facts = {"placement": placement, **tx, **rx, "record_bytes": wire,
             "tx_share": round(tx["tx_tls_encrypted_bytes"] / wire, 4),
             "rx_share": round(rx["rx_tls_decrypted_bytes"] / wire, 4),
             "TlsTxDevice": delta["a"].get("TlsTxDevice", 0),
             "TlsRxDevice": delta["b"].get("TlsRxDevice", 0),
             "TlsDecryptError": delta["b"].get("TlsDecryptError", 0)}
    if spec.rekey_every:
        facts["rekey_counters"] = {k: v for side in ("a", "b") for k, v in delta[side].items()
                                   if "Rekey" in k and v}
    moved = tx["tx_tls_encrypted_packets"] > 0 and rx["rx_tls_decrypted_packets"] > 0
    if spec.offload and not moved:
        raise BenchError(f"{spec.name}: the sockets were offloaded but the device counters did "
                         f"not move ({tx}, {rx}): the figure would be software in disguise")
    if not spec.offload and (tx["tx_tls_encrypted_packets"] or rx["rx_tls_decrypted_packets"]):
        raise BenchError(f"{spec.name}: offload is off but the device counters moved "
                         f"({tx}, {rx})")
    if facts["TlsDecryptError"]:
        raise BenchError(f"{spec.name}: {facts['TlsDecryptError']} decrypt errors")
    return facts


def _check_rekey(spec: ModeSpec, cipher: str) -> None:
    """One KeyUpdate each way on a throwaway connection of ``spec``: a kernel that refuses
    to rekey an offloaded socket makes the mode Unsupported instead of failing the bench."""
    client, server, placement = _open(spec, cipher)
    try:
        if set(placement.values()) != {"device"}:
            return  # not offloaded at all: transfer() reports that
        client.send_key_update(False)
        client.send(b"after the KeyUpdate")
        ctype, data = server.recv_record(RECORD + 256, auto_key_update=False)
        if not server.handle_key_update(data, answer=False):
            raise BenchError(f"{spec.name}: expected a KeyUpdate, got record type {ctype}")
        if server.recv_record(RECORD + 256)[1] != b"after the KeyUpdate":
            raise BenchError(f"{spec.name}: data after a KeyUpdate came back wrong")
    except KtlsError as exc:
        raise Unsupported(f"KeyUpdate on an offloaded socket: {exc}") from exc
    finally:
        client.close()
        server.close()


def transfer(spec: ModeSpec, topo: topology.Topology, cipher: str,
             nbytes: int) -> dict[str, Any]:
    """One verified transfer in ``spec``; raises Unsupported when the kernel would not
    place the sockets as the mode needs (or, for rekey modes, would not rekey them)."""
    if topo.offload != spec.offload:
        topology.set_offload(topo, spec.offload)
    if spec.timed:
        rekeytrace.refuse(spec.deladd)
    try:
        return _transfer(spec, cipher, nbytes)
    finally:
        if spec.deladd:
            rekeytrace.refuse(False)


def _rekeyer(client: KtlsSocket, times: rekeytrace.KeyUpdateTimes | None) -> Callable[[], None]:
    def rekey() -> None:
        if times is not None:
            times.stamp()
        client.send_key_update(False)
    return rekey


STALL_KEYS = (*TCP_KEYS, "TcpExtTCPToZeroWindowAdv", "TcpExtTCPFromZeroWindowAdv",
              "TcpExtTCPWantZeroWindowAdv", "TcpExtDelayedACKs")
"""TCP's counters of each namespace around a transfer: what a stall in it waited for (a
retransmission timeout, a closed window, a delayed ACK)."""


def _tcp_now() -> dict[str, dict[str, int]]:
    return {ns: tcp_counters(ns, STALL_KEYS) for ns in (topology.NS_A, topology.NS_B)}


def _tcp_facts(before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The non-zero changes of ``STALL_KEYS`` per namespace since ``before``."""
    now = _tcp_now()
    return {ns: {k: v for k, v in delta(now[ns], before[ns]).items() if v} for ns in now}


def _transfer(spec: ModeSpec, cipher: str, nbytes: int) -> dict[str, Any]:
    seen: dict[str, int] = {}
    if spec.timed:
        _check_rekey(spec, cipher)
        Counters.settled()  # its TX keys leave the device (and the epochs) once acked
        seen = rekeytrace.last_indexes()
    before = Counters.read()
    tcp_before = _tcp_now()
    cpu_before = cpuwhere.snapshot()
    client, server, placement = _open(spec, cipher)
    want_device = "device" if spec.offload else "software"
    if set(placement.values()) != {want_device}:
        client.close()
        server.close()
        raise Unsupported(f"TX {placement['tx']}, RX {placement['rx']}")
    want = expected_digest(nbytes)
    h = hashlib.sha256()
    times = rekeytrace.KeyUpdateTimes() if spec.timed else None
    trace: list[tuple[int, int]] = []

    def sender() -> None:
        server.close()
        rekey = _rekeyer(client, times) if spec.rekey_every else None
        send_all(client.send, nbytes, rekey, spec.rekey_every)
        client.sock.shutdown(socket.SHUT_WR)
        client.close()
        if times is not None:
            times.hand_back()

    def receiver() -> Transfer:
        client.close()  # our copy: the peer sees EOF when the child closes its own
        res = Transfer(spec.name, cipher)
        try:
            receive_ktls(server, res, h, trace if spec.timed else None)
        finally:
            server.close()
        return res

    try:
        res = verify(run_forked(sender, receiver, TIMEOUT + nbytes / 1e5), nbytes, h, want)
        after = Counters.settled() if spec.timed else Counters.read()
        out = {**res.to_json(),
               "device": _device_facts(spec, after.since(before), nbytes, placement),
               "tcp": _tcp_facts(tcp_before),
               "cpu": cpuwhere.since(cpuwhere.snapshot(), cpu_before)}
    finally:
        kus = times.collect() if times is not None else []
    if spec.timed:
        out["timing"] = rekeytrace.timing(seen, kus, trace, rekeywindows.layout(
            nbytes, RECORD, spec.rekey_every, overhead(spec.version)))
    return out


class _Eta:
    """``[done/total transfers, elapsed, time left]`` for the progress lines."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.t0 = total, 0, time.monotonic()

    def step(self) -> str:
        self.done += 1
        spent = time.monotonic() - self.t0
        left = spent / self.done * (self.total - self.done)
        return f"[{self.done}/{self.total}, {spent:.0f} s, ~{left:.0f} s left]"


def one_round(index: int, specs: list[ModeSpec], topo: topology.Topology,
              args: argparse.Namespace, unsupported: dict[str, str],
              eta: _Eta) -> dict[str, Any]:
    order = round_order([s.name for s in specs], index)
    by_name = {s.name: s for s in specs}
    out: dict[str, Any] = {"order": order, "transfers": {}}
    for name in order:
        if name in unsupported:
            eta.step()
            continue
        try:
            out["transfers"][name] = transfer(by_name[name], topo, args.cipher, args.bytes)
        except Unsupported as exc:
            unsupported[name] = f"not supported by this kernel ({exc})"
            progress(f"round {index + 1}/{args.rounds}: {name}: {unsupported[name]} "
                     f"{eta.step()}")
            continue
        t = out["transfers"][name]
        windows = f", {rekeywindows.brief(t['timing'])}" if "timing" in t else ""
        progress(f"round {index + 1}/{args.rounds}: {name}: {t['mbytes_per_s']} MB/s, device "
                 f"share tx {t['device']['tx_share']:.2f} rx {t['device']['rx_share']:.2f}"
                 f"{windows} {eta.step()}")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    specs = modes(args.tls_version, args.rekey_every, args.deladd)
    try:
        topo = topology.setup("netdevsim", offload=True)
    except topology.TopologyError as exc:
        raise BenchError(f"{exc} (the netdevsim TLS offload needs patches/tls-offload)") \
            from exc
    unsupported: dict[str, str] = {}
    try:
        out: dict[str, Any] = {
            "kernel": os.uname().release, "bytes": args.bytes, "rounds": args.rounds,
            "cipher": args.cipher, "versions": args.tls_version,
            "modes": [s.to_json() for s in specs],
            "kernel_aead": trafficbench.ktls_driver(args.cipher),
        }
        eta = _Eta(args.rounds * len(specs))
        out["round_data"] = [one_round(i, specs, topo, args, unsupported, eta)
                             for i in range(args.rounds)]
    finally:
        topology.teardown()
    out["unsupported"] = unsupported
    return out


def measure(argv: list[str]) -> dict[str, Any]:
    """The bench for these command-line options: its raw document (``ktlskit.hosts.call``)."""
    return run(_args(argv))


def guest_argv(nbytes: int, rounds: int, cipher: str, versions: list[str],
               rekey_every: int = 0, deladd: bool = False) -> list[str]:
    """The command line of this module (``measure()``) for these options."""
    argv = ["--bytes", str(nbytes), "--rounds", str(rounds), "--cipher", cipher,
            "--rekey-every", str(rekey_every)] + (["--deladd"] if deladd else [])
    for v in versions:
        argv += ["--tls-version", v]
    return argv


def guest_timeout(nbytes: int, rounds: int, nmodes: int) -> float:
    """Seconds one run of ``rounds`` x ``nmodes`` transfers may take in a TCG guest."""
    return 300 + rounds * nmodes * (max(60, nbytes / 1e6 * 4) + 10)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ktlskit.offloadbench")
    p.add_argument("--bytes", type=int, default=16 << 20, help="bytes per transfer")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--cipher", choices=CIPHERS, default="aes-gcm-128")
    p.add_argument("--tls-version", action="append", choices=VERSIONS,
                   help="repeatable; default both")
    p.add_argument("--rekey-every", type=int, default=0,
                   help="also TLS 1.3 modes with a KeyUpdate every N records (0: none)")
    p.add_argument("--deladd", action="store_true",
                   help="with --rekey-every, also the del + add design (refuse_rekey)")
    return p


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = _parser()
    args = p.parse_args(argv)
    args.tls_version = sorted(set(args.tls_version or VERSIONS))
    if args.bytes < 1 or args.rounds < 1 or args.rekey_every < 0:
        p.error("--bytes and --rounds must be positive, --rekey-every not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    try:
        out = run(args)
    except KtlskitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
