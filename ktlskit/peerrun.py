"""Starting a traffic peer (``ktlskit.peer``): its connection, its keys, its whole run.

The server accepts one client (port 0: a free one, announced on stderr as ``listening on
PORT`` for the harness), the client connects with retries until a deadline; ``run_peer``
does one end from start to finish and returns its ``Result`` (what the harness calls through
``ktlskit.hosts.call``). ``main`` is the command line, ``python -m ktlskit.peer``.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

from .errors import KtlskitError
from .peer import IO_TIMEOUT, KeyMaterial, Options, Peer, PeerError, Result, send_control


def _family(addr: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _socket(addr: str, rcvbuf: int) -> socket.socket:
    """A TCP socket for ``addr``; ``rcvbuf`` > 0 sets SO_RCVBUF (before listen() or
    connect(), so that the window scale follows it)."""
    s = socket.socket(_family(addr), socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return s


def accept_one(addr: str, port: int, timeout: float, rcvbuf: int = 0) -> socket.socket:
    """Accept one client on ``addr``:``port`` (0: a free port, announced on stderr as
    ``listening on PORT``); the accepted socket inherits ``rcvbuf``."""
    srv = _socket(addr, rcvbuf)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1)
    srv.settimeout(timeout)
    print(f"listening on {srv.getsockname()[1]}", file=sys.stderr, flush=True)
    try:
        conn, _ = srv.accept()
    except TimeoutError as exc:
        raise PeerError(f"no client connected to {addr}:{port} within {timeout:.0f}s") from exc
    finally:
        srv.close()
    conn.settimeout(IO_TIMEOUT)
    return conn


def connect(addr: str, port: int, timeout: float, rcvbuf: int = 0) -> socket.socket:
    """Connect to ``addr``:``port`` (an IP address), retrying until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        conn = _socket(addr, rcvbuf)
        try:
            conn.settimeout(5)
            conn.connect((addr, port))
            conn.settimeout(IO_TIMEOUT)
            return conn
        except OSError as exc:
            conn.close()
            if time.monotonic() > deadline:
                raise PeerError(f"cannot connect to {addr}:{port}: {exc}") from exc
            time.sleep(0.1)


def run_peer(role: str, addr: str, port: int, keys_file: str, nbytes: int,
             rekey_every: int = 0, rekey_dirs: str = "tx", control: str = "",
             peer_control: str = "", connect_timeout: float = 60, pause_at: int = -1,
             rcvbuf: int = 0) -> Result:
    """One end of the stream (``role`` server or client), start to finish: its Result.

    A setup failure (no connection, the kernel refusing the keys) is a Result with the error,
    not an exception, so both ends always report.
    """
    if role not in ("server", "client"):
        raise PeerError(f"unknown role {role!r}: server or client")
    keys = KeyMaterial(**json.loads(Path(keys_file).read_text()))
    if keys.version == "1.2" and rekey_every:
        raise PeerError("TLS 1.2 has no rekey (KeyUpdate is TLS 1.3 only)")
    opts = Options(role, keys, nbytes, rekey_every, rekey_dirs, control, peer_control,
                   pause_at)
    try:
        sock = (accept_one if role == "server" else connect)(addr, port, connect_timeout,
                                                              rcvbuf)
        peer = Peer(sock, opts)
        peer.install()
    except KtlskitError as exc:
        return Result(role, keys.version, keys.cipher, errors=[f"setup: {exc}"])
    res = peer.run()
    peer.ks.close()
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ktlskit.peer")
    sub = p.add_subparsers(dest="cmd", required=True)
    for role in ("server", "client"):
        r = sub.add_parser(role)
        r.add_argument("--addr", required=True)
        r.add_argument("--port", type=int, default=4433, help="server: 0 for a free port")
        r.add_argument("--keys", required=True, help="JSON file with KeyMaterial")
        r.add_argument("--bytes", type=int, default=4 << 20)
        r.add_argument("--rekey-every", type=int, default=0, help="records; 0 = never")
        r.add_argument("--rekey-dirs", choices=("tx", "both", "none"), default="tx")
        r.add_argument("--control", default="")
        r.add_argument("--peer-control", default="")
        r.add_argument("--timeout", type=float, default=60)
        r.add_argument("--pause-at", type=int, default=-1,
                       help="wait for a control command before this frame")
        r.add_argument("--rcvbuf", type=int, default=0,
                       help="SO_RCVBUF of the socket (0: the kernel's autotuning)")
    c = sub.add_parser("control")
    c.add_argument("socket")
    c.add_argument("command", choices=("tx", "rx", "both"))
    args = p.parse_args(argv)
    try:
        if args.cmd == "control":
            send_control(args.socket, args.command)
            return 0
        res = run_peer(args.cmd, args.addr, args.port, args.keys, args.bytes, args.rekey_every,
                       args.rekey_dirs, args.control, args.peer_control, args.timeout,
                       args.pause_at, args.rcvbuf)
    except PeerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res.to_json()))
    return 0 if res.ok else 1

