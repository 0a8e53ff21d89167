"""Guest side of ``ktlskit bench traffic``: software kTLS against userspace TLS, and the
crypto limit both run against.

``python -m ktlskit.trafficbench --bytes N --rekey-every R --rounds K`` runs, on loopback in
this kernel, K rounds. Each round runs, in an order that rotates from round to round:

* three one-way transfers of N bytes (``ktlskit.benchstream``), each after a real TLS 1.3
  handshake by the stdlib ``ssl`` module (so all use the suite OpenSSL negotiates):
  ``ssl`` (OpenSSL in user space), ``ktls`` (the session handed to kTLS),
  ``ktls-rekey`` (as ``ktls`` with a KeyUpdate every R records);
* the crypto limit on 16 KiB records (``ktlskit.cryptolimit``): the kernel AEAD kTLS uses
  (through AF_ALG), the kernel's library implementation (what kTLS would get without the
  architecture AEAD driver), ``openssl speed -evp``, and the same with AES-NI/PCLMULQDQ
  masked off;
* the floor of a KeyUpdate stall: bare ``setsockopt(TLS_RX)`` installs of the next key on an
  idle kTLS socket (the rekey path: a second TLS_RX on a TLS 1.3 socket).

Before the rounds it reports which kernel driver kTLS took for the negotiated cipher
(``/proc/crypto`` refcnt) and which instructions OpenSSL detected (``openssl version -c``).
Prints one JSON object with every round's raw figures; ``ktlskit.benchreport`` summarises.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import cryptolimit, handshake, uapi
from .benchstream import (
    RECORD,
    TIMEOUT,
    BenchError,
    Transfer,
    expected_digest,
    progress,
    receive_ktls,
    receive_plain,
    round_order,
    run_forked,
    send_all,
    verify,
)
from .certs import self_signed_pem
from .errors import KtlskitError
from .keyschedule import DirectionState
from .ksocket import Direction, KtlsSocket

MODES = ("ssl", "ktls", "ktls-rekey")
LIMITS = ("kernel", "kernel-lib", "openssl", "openssl-no-aesni")
TLS13_AAD = 5

__all__ = ["MODES", "BenchError", "Transfer", "main", "run", "transfer"]


# ---- transfers --------------------------------------------------------------------------------

class ReceiverReady:
    """The receiver's word to the forked sender, over a pipe, that its end is set up.

    The sender sends nothing before it. Otherwise a transfer that fits in the socket buffers
    (``negotiated_cipher``'s one byte) could be sent and closed before the receiver attached
    the TLS ULP, which the kernel refuses on a socket past ESTABLISHED (ENOTCONN): seen once
    in CI, with the guest slowed by a kernel build beside it. A receiver that fails first says
    so too (``give_up``), so the sender does not wait out its time for nothing."""

    READY, GAVE_UP = b"!", b"x"

    def __init__(self) -> None:
        self.r, self.w = os.pipe()

    def set(self) -> None:
        os.write(self.w, self.READY)

    def give_up(self) -> None:
        os.write(self.w, self.GAVE_UP)  # after a set() it is never read

    def wait(self, timeout: float) -> None:
        if not select.select([self.r], [], [], timeout)[0]:
            raise BenchError(f"the receiver was not set up within {timeout:.0f} s")
        if os.read(self.r, 1) != self.READY:
            raise BenchError("the receiver failed before its end was set up")

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def _sender(port: int, mode: str, nbytes: int, rekey_every: int, ready: ReceiverReady) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    ctx = handshake.make_client_context(verify=False)
    if mode == "ssl":
        conn = ctx.wrap_socket(sock)
        ready.wait(TIMEOUT)
        send_all(conn.sendall, nbytes)
        conn.close()  # nothing is left unread on our side, so this is a clean FIN
        return
    ks = handshake.handoff_client(sock, ctx, timeout=TIMEOUT).to_ktls(auto_key_update=False)
    ready.wait(TIMEOUT)
    rekey = (lambda: ks.send_key_update(False)) if mode == "ktls-rekey" else None
    send_all(ks.send, nbytes, rekey, rekey_every)
    ks.close()


def _receiver(listener: socket.socket, mode: str, cert: Path, h: hashlib._Hash,
              ready: ReceiverReady) -> Transfer:
    try:
        return _receive(listener, mode, cert, h, ready)
    except BaseException:
        ready.give_up()
        raise


def _receive(listener: socket.socket, mode: str, cert: Path, h: hashlib._Hash,
             ready: ReceiverReady) -> Transfer:
    sock, _ = listener.accept()
    sock.settimeout(TIMEOUT)
    res = Transfer(mode)
    try:
        ctx = handshake.make_server_context(str(cert))
        if mode == "ssl":
            conn = ctx.wrap_socket(sock, server_side=True)
            res.cipher = (conn.cipher() or ("?",))[0]
            ready.set()
            receive_plain(conn.recv, res, h)
        else:
            hand = handshake.handoff_server(sock, ctx, timeout=TIMEOUT)
            res.cipher = hand.cipher.name
            ks = hand.to_ktls(auto_key_update=False)
            ready.set()
            receive_ktls(ks, res, h)
    finally:
        sock.close()
    return res


def transfer(mode: str, nbytes: int, rekey_every: int, cert: Path) -> Transfer:
    """One verified transfer of ``nbytes`` in ``mode`` over loopback."""
    if mode not in MODES:
        raise BenchError(f"unknown mode {mode!r}: {', '.join(MODES)}")
    want = expected_digest(nbytes)
    h = hashlib.sha256()
    ready = ReceiverReady()
    try:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(TIMEOUT)
            port = listener.getsockname()[1]
            res = run_forked(lambda: _sender(port, mode, nbytes, rekey_every, ready),
                             lambda: _receiver(listener, mode, cert, h, ready),
                             timeout=TIMEOUT + nbytes / 1e5)
    finally:
        ready.close()
    return verify(res, nbytes, h, want)


# ---- kTLS sockets without a handshake (key install floor, driver in use) ----------------------

def _ktls_pair(cipher: str) -> tuple[KtlsSocket, KtlsSocket, DirectionState]:
    """A loopback TCP pair, client TX and server RX under fresh TLS 1.3 keys of ``cipher``."""
    from .ciphers import lookup

    spec = lookup(cipher)
    state = DirectionState.from_tls13_secret(spec, os.urandom(spec.hash_len))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        c = socket.create_connection(listener.getsockname()[:2], timeout=TIMEOUT)
        s, _ = listener.accept()
    s.settimeout(TIMEOUT)
    client, server = KtlsSocket(c, auto_key_update=False), KtlsSocket(s, auto_key_update=False)
    for ks in (client, server):
        ks.attach_ulp()
    client.install(Direction.TX, state)
    server.install(Direction.RX, state)
    return client, server, state


def key_install_times(cipher: str, count: int) -> dict[str, list[float]]:
    """Microseconds of ``count`` bare ``setsockopt(SOL_TLS, TLS_RX)`` rekeys on an idle kTLS
    socket (``install``) and of deriving each next key in user space (``derive``: next
    traffic secret, key and IV, as the peers do on every KeyUpdate), timed separately."""
    client, server, state = _ktls_pair(cipher)
    out: dict[str, list[float]] = {"install": [], "derive": []}
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            state = state.next()
            info = state.crypto_info().pack()
            t1 = time.perf_counter()
            server.sock.setsockopt(uapi.SOL_TLS, uapi.TLS_RX, info)
            t2 = time.perf_counter()
            out["derive"].append(round((t1 - t0) * 1e6, 2))
            out["install"].append(round((t2 - t1) * 1e6, 2))
    finally:
        client.close()
        server.close()
    return out


def negotiated_cipher(cert: Path) -> str:
    """The kTLS cipher of the suite OpenSSL negotiates here (one loopback handshake)."""
    return transfer("ktls", 1, 0, cert).cipher


def ktls_driver(cipher: str) -> dict[str, object]:
    def open_pair() -> Callable[[], None]:
        c, s, _ = _ktls_pair(cipher)
        return lambda: (c.close(), s.close())  # type: ignore[func-returns-value]
    return cryptolimit.ktls_driver(cipher, open_pair)


# ---- the crypto limit -------------------------------------------------------------------------

def limit(name: str, cipher: str, seconds: int) -> dict[str, object]:
    """One crypto-limit measurement on a TLS 1.3 record (16 KiB + the inner type byte for the
    kernel, 16 KiB for ``openssl speed``)."""
    kname = cryptolimit.KERNEL_AEAD[cipher]
    key = cryptolimit.KEY_SIZE[cipher]
    if name == "kernel":
        rate = cryptolimit.afalg_rate(kname, key, RECORD + 1, TLS13_AAD, seconds)
    elif name == "kernel-lib":
        lib = cryptolimit.KERNEL_LIB.get(kname)
        if lib is None:
            return {"unavailable": f"no library implementation known for {kname}"}
        rate = cryptolimit.afalg_rate(lib, key, RECORD + 1, TLS13_AAD, seconds)
    else:
        rate = cryptolimit.openssl_rate(cipher, RECORD, seconds,
                                        no_aesni=name == "openssl-no-aesni")
    return rate.to_json()


# ---- rounds -----------------------------------------------------------------------------------

def one_round(index: int, cipher: str, cert: Path, args: argparse.Namespace) -> dict[str, object]:
    tasks: dict[str, Callable[[], object]] = {
        m: (lambda m=m: transfer(m, args.bytes, args.rekey_every, cert).to_json())
        for m in MODES}
    tasks.update({f"limit:{n}": (lambda n=n: limit(n, cipher, args.crypto_seconds))
                  for n in LIMITS})
    tasks["key-install"] = lambda: key_install_times(cipher, args.installs)
    order = round_order(list(tasks), index)
    out: dict[str, object] = {"order": order, "transfers": {}, "limits": {}}
    for name in order:
        value = tasks[name]()
        if name.startswith("limit:"):
            out["limits"][name[6:]] = value  # type: ignore[index]
        elif name == "key-install":
            out["key_install_us"] = value["install"]  # type: ignore[index]
            out["key_derive_us"] = value["derive"]  # type: ignore[index]
        else:
            out["transfers"][name] = value  # type: ignore[index]
        progress(f"round {index + 1}/{args.rounds}: {name}: {_brief(value)}")
    return out


def _brief(value: object) -> str:
    if isinstance(value, dict) and "mbytes_per_s" in value:
        return f"{value['mbytes_per_s']} MB/s"
    if isinstance(value, dict) and "unavailable" in value:
        return str(value["unavailable"])
    if isinstance(value, dict) and "install" in value:
        return (f"median {statistics.median(value['install'])} us install, "
                f"{statistics.median(value['derive'])} us derivation")
    return "?"


def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        cert = self_signed_pem(Path(d))
        cipher = negotiated_cipher(cert)
        progress(f"negotiated {cipher}; finding the kernel driver kTLS uses")
        out: dict[str, object] = {
            "kernel": os.uname().release, "bytes": args.bytes, "rekey_every": args.rekey_every,
            "rounds": args.rounds, "cipher": cipher, "record": RECORD,
            "crypto_seconds": args.crypto_seconds, "cpu": cryptolimit.cpu_info(),
            "kernel_aead": ktls_driver(cipher), "openssl": cryptolimit.openssl_caps(),
        }
        out["round_data"] = [one_round(i, cipher, cert, args) for i in range(args.rounds)]
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ktlskit.trafficbench")
    p.add_argument("--bytes", type=int, default=32 << 20, help="bytes per transfer")
    p.add_argument("--rekey-every", type=int, default=64, help="records between KeyUpdates")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--crypto-seconds", type=int, default=1,
                   help="seconds per crypto-limit measurement")
    p.add_argument("--installs", type=int, default=64, help="key installs timed per round")
    return p


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("bytes", "rekey_every", "rounds", "crypto_seconds", "installs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")


def measure(argv: list[str]) -> dict[str, Any]:
    """The bench for these command-line options: its raw document (``ktlskit.hosts.call``)."""
    p = parser()
    args = p.parse_args(argv)
    check_args(p, args)
    return run(args)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    check_args(p, args)
    try:
        out = run(args)
    except KtlskitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
