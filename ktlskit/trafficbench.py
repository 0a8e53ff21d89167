"""Guest side of ``ktlskit bench traffic``: software kTLS against userspace TLS.

``python -m ktlskit.trafficbench --bytes N --rekey-every R`` runs, on loopback in
this kernel, three one-way transfers of N bytes, each after a real TLS 1.3 handshake
by the stdlib ``ssl`` module (so all three use the cipher OpenSSL negotiates):

* ``ssl``: the data goes through OpenSSL in user space (``SSLSocket``);
* ``ktls``: the session is handed to kTLS and the kernel encrypts and decrypts;
* ``ktls-rekey``: as ``ktls``, with a KeyUpdate every R records; the receiver
  measures each stall (KeyUpdate record read -> next application data read, which
  includes installing the next RX key).

The sender is a forked child; the receiver verifies the SHA-256 of the whole stream
against the expected digest, computed before the clock starts. Throughput is the
receiver's first-byte-to-last-byte rate. The stdlib cannot send a KeyUpdate, so there is
no userspace rekey figure. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import handshake
from .certs import self_signed_pem
from .errors import KtlskitError
from .ksocket import KtlsSocket
from .records import ContentType

RECORD = 16384
TIMEOUT = 120.0
MODES = ("ssl", "ktls", "ktls-rekey")


class BenchError(KtlskitError):
    """A benchmark transfer failed (short or corrupted stream, child error)."""


@dataclass
class Transfer:
    mode: str
    cipher: str = ""
    nbytes: int = 0
    seconds: float = 0.0
    mbytes_per_s: float = 0.0
    rekeys: int = 0
    stalls_ms: list[float] = field(default_factory=list)
    verified: bool = False

    def stall_summary(self) -> dict[str, float]:
        s = self.stalls_ms
        if not s:
            return {}
        return {"mean": round(statistics.fmean(s), 3), "median": round(statistics.median(s), 3),
                "max": round(max(s), 3)}


def stream_block() -> bytes:
    """One record's worth of incompressible data, sent repeatedly."""
    return hashlib.shake_128(b"ktlskit-bench").digest(RECORD)


def expected_digest(nbytes: int) -> str:
    block = stream_block()
    h = hashlib.sha256()
    full, tail = divmod(nbytes, RECORD)
    for _ in range(full):
        h.update(block)
    h.update(block[:tail])
    return h.hexdigest()


# ---- sender (forked child) ------------------------------------------------------------

def _sender(port: int, mode: str, nbytes: int, rekey_every: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    ctx = handshake.make_client_context(verify=False)
    block = stream_block()
    if mode == "ssl":
        conn = ctx.wrap_socket(sock)
        _send_all(conn.sendall, block, nbytes, None)
        conn.close()  # nothing is left unread on our side, so this is a clean FIN
        return
    ks = handshake.handoff_client(sock, ctx, timeout=TIMEOUT).to_ktls(auto_key_update=False)
    rekey = (lambda: ks.send_key_update(False)) if mode == "ktls-rekey" else None
    _send_all(ks.send, block, nbytes, rekey, rekey_every)
    ks.close()


def _send_all(send: Callable[[bytes], object], block: bytes, nbytes: int,
              rekey: Callable[[], object] | None, every: int = 0) -> None:
    left, records = nbytes, 0
    while left:
        n = min(left, RECORD)
        send(block[:n])
        left -= n
        records += 1
        if rekey and every and records % every == 0 and left:
            rekey()


# ---- receiver ---------------------------------------------------------------------------

def _receive_ssl(conn: ssl.SSLSocket, res: Transfer, h: hashlib._Hash) -> None:
    start = None
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        start = start or time.monotonic()
        h.update(data)
        res.nbytes += len(data)
    res.seconds = time.monotonic() - start if start else 0.0


def _receive_ktls(ks: KtlsSocket, res: Transfer, h: hashlib._Hash) -> None:
    start = None
    ku_at: float | None = None
    while True:
        ctype, data = ks.recv_record(RECORD + 256, auto_key_update=False)
        now = time.monotonic()
        if ctype == ContentType.HANDSHAKE:
            ku_at = now
            if ks.handle_key_update(data, answer=False):
                res.rekeys += 1
            continue
        if ctype != ContentType.APPLICATION_DATA:
            if not data:
                break
            raise BenchError(f"unexpected record type {ctype}")
        start = start or now
        if ku_at is not None:
            res.stalls_ms.append(round((now - ku_at) * 1000, 3))
            ku_at = None
        h.update(data)
        res.nbytes += len(data)
    res.seconds = time.monotonic() - start if start else 0.0


def transfer(mode: str, nbytes: int, rekey_every: int, cert: Path) -> Transfer:
    if mode not in MODES:
        raise BenchError(f"unknown mode {mode!r}: {', '.join(MODES)}")
    want = expected_digest(nbytes)
    res = Transfer(mode)
    h = hashlib.sha256()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _sender(listener.getsockname()[1], mode, nbytes, rekey_every)
            except BaseException as exc:  # the child must never return into the caller
                print(f"sender: {type(exc).__name__}: {exc}", file=sys.stderr)
                code = 1
            os._exit(code)
        sock, _ = listener.accept()
    sock.settimeout(TIMEOUT)
    try:
        ctx = handshake.make_server_context(str(cert))
        if mode == "ssl":
            conn = ctx.wrap_socket(sock, server_side=True)
            res.cipher = (conn.cipher() or ("?",))[0]
            _receive_ssl(conn, res, h)
        else:
            hand = handshake.handoff_server(sock, ctx, timeout=TIMEOUT)
            res.cipher = hand.cipher.name
            ks = hand.to_ktls(auto_key_update=False)
            _receive_ktls(ks, res, h)
    finally:
        _, status = os.waitpid(pid, 0)
        sock.close()
    if status != 0:
        raise BenchError(f"{mode}: the sending child failed (status {status:#x})")
    res.verified = res.nbytes == nbytes and h.hexdigest() == want
    if not res.verified:
        raise BenchError(f"{mode}: received {res.nbytes} of {nbytes} bytes, or the stream's "
                         "SHA-256 differs: data lost or corrupted")
    res.seconds = round(res.seconds, 4)
    res.mbytes_per_s = round(nbytes / res.seconds / 1e6, 2) if res.seconds else 0.0
    return res


def run(nbytes: int, rekey_every: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        cert = self_signed_pem(Path(d))
        runs = [transfer(m, nbytes, rekey_every, cert) for _ in range(repeat) for m in MODES]
    best = {m: max((r for r in runs if r.mode == m), key=lambda r: r.mbytes_per_s)
            for m in MODES}
    ssl_rate = best["ssl"].mbytes_per_s
    return {
        "kernel": os.uname().release,
        "bytes": nbytes, "rekey_every": rekey_every, "repeat": repeat,
        "cipher": best["ktls"].cipher,
        "best": {m: {**asdict(r), "stall_ms": r.stall_summary()} for m, r in best.items()},
        "ratio_ktls_vs_ssl": round(best["ktls"].mbytes_per_s / ssl_rate, 3) if ssl_rate else 0,
        "ratio_rekey_vs_ktls": round(best["ktls-rekey"].mbytes_per_s
                                     / best["ktls"].mbytes_per_s, 3)
        if best["ktls"].mbytes_per_s else 0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ktlskit.trafficbench")
    p.add_argument("--bytes", type=int, default=32 << 20)
    p.add_argument("--rekey-every", type=int, default=64, help="records between KeyUpdates")
    p.add_argument("--repeat", type=int, default=3, help="runs per mode; the best is kept")
    args = p.parse_args(argv)
    if args.bytes < 1 or args.rekey_every < 1 or args.repeat < 1:
        p.error("--bytes, --rekey-every and --repeat must be positive")
    try:
        out = run(args.bytes, args.rekey_every, args.repeat)
    except KtlskitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
