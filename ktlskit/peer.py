"""A kTLS traffic peer: one end of a verified, rekeying kTLS connection.

Run in the guest as ``python -m ktlskit.peer server|client``. Both ends
stream ``--bytes`` to each other in frames of at most one TLS record
(``[magic u32][seq u64][len u32][payload]``, payload derived from the
sender's seed and the frame number), so the receiver checks every frame's
sequence and content as well as a running SHA-256 of the whole stream.

Rekeys (TLS 1.3): every ``--rekey-every`` records in the chosen directions,
and on demand through a UNIX datagram control socket
(``python -m ktlskit.peer control SOCKET tx|rx|both``). ``tx`` sends a
KeyUpdate; ``both`` sends one with update_requested, which the other end
answers; ``rx`` asks the other end (through its own control socket) to
rekey its TX. The receiver records how long each KeyUpdate stalled it: from
the KeyUpdate record to the first application data under the new key.

The result is one JSON object on stdout; exit status 0 only if the stream
was complete, in order and intact and no error occurred.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import socket
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .ciphers import lookup
from .errors import KtlskitError
from .keyschedule import DirectionState
from .ksocket import EOF_CONTENT_TYPE, Direction, KtlsSocket
from .records import ContentType

MAGIC = 0x4B544C53  # "KTLS"
HEADER = struct.Struct("!IQI")
RECORD_MAX = 16384
PAYLOAD_MAX = RECORD_MAX - HEADER.size
# Socket deadline: long enough for a stream held while the harness starts a rekey
# command in a slow TCG guest; the harness bounds the whole run separately.
IO_TIMEOUT = 300.0


class PeerError(KtlskitError):
    """The stream broke: wrong frame, short stream, or a kernel error."""


# ---- keys -----------------------------------------------------------------

@dataclass(frozen=True)
class KeyMaterial:
    """What both ends agree on: version, cipher and one secret per direction."""

    version: str  # "1.2" or "1.3"
    cipher: str
    c2s: str  # hex: TLS 1.3 traffic secret, or TLS 1.2 key||iv
    s2c: str

    @classmethod
    def generate(cls, version: str, cipher: str) -> KeyMaterial:
        spec = lookup(cipher)
        n = spec.hash_len if version == "1.3" else spec.key_size + spec.tls12_fixed_iv_size
        return cls(version, spec.name, os.urandom(n).hex(), os.urandom(n).hex())

    def state(self, direction: str) -> DirectionState:
        """``direction`` is "c2s" or "s2c"."""
        raw = bytes.fromhex(self.c2s if direction == "c2s" else self.s2c)
        spec = lookup(self.cipher)
        if self.version == "1.3":
            return DirectionState.from_tls13_secret(spec, raw)
        return DirectionState.from_tls12(spec, raw[:spec.key_size], raw[spec.key_size:])


# ---- the stream -----------------------------------------------------------

def payload(seed: bytes, seq: int, length: int) -> bytes:
    return hashlib.shake_128(seed + seq.to_bytes(8, "big")).digest(length)


def frames(seed: bytes, total: int) -> list[tuple[int, int]]:
    """(seq, payload length) of the frames that make exactly ``total`` bytes.

    Each frame fits one record. A tail shorter than a header is avoided by
    shortening the frame before it, so the last frame is at least a header.
    """
    if total < HEADER.size:
        raise PeerError(f"a stream needs at least {HEADER.size} bytes, not {total}")
    out = []
    left = total
    while left > 0:
        size = min(left, RECORD_MAX)
        if 0 < left - size < HEADER.size:
            size = left - HEADER.size
        out.append((len(out), size - HEADER.size))
        left -= size
    return out


@dataclass
class Result:
    role: str
    version: str
    cipher: str
    bytes_sent: int = 0
    bytes_received: int = 0
    records_sent: int = 0
    records_received: int = 0
    sha256_sent: str = ""
    sha256_received: str = ""
    tx_rekeys: int = 0
    rx_rekeys: int = 0
    stalls_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    paused_seconds: float = 0.0  # held by --pause-at, waiting for the harness: not traffic
    complete: bool = False

    @property
    def ok(self) -> bool:
        return self.complete and not self.errors

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["ok"] = self.ok
        mb = (self.bytes_sent + self.bytes_received) / 1e6
        d["throughput_mbps"] = throughput_mbps(mb, self.seconds - self.paused_seconds)
        return d


def throughput_mbps(megabytes: float, seconds: float) -> float:
    return round(8 * megabytes / seconds, 2) if seconds > 0 else 0.0


@dataclass
class Options:
    role: str
    keys: KeyMaterial
    nbytes: int
    rekey_every: int = 0  # records; 0 = never
    rekey_dirs: str = "tx"  # which scheduled rekeys this end does: tx, both, none
    control: str = ""  # control socket path
    peer_control: str = ""  # the other end's control socket (for "rx")
    pause_at: int = -1  # before this frame, wait for one control command (-1: never)


class Peer:
    def __init__(self, sock: socket.socket, opts: Options) -> None:
        self.opts = opts
        self.ks = KtlsSocket(sock, auto_key_update=False)
        self.tx_lock = threading.Lock()
        self.commands: queue.Queue[str] = queue.Queue()
        self.res = Result(opts.role, opts.keys.version, opts.keys.cipher)
        self._rx_hash = hashlib.sha256()
        self._tx_hash = hashlib.sha256()
        self._ku_at: float | None = None
        self._rx_done = threading.Event()  # receiver finished (EOF or error)
        self._rx_all = threading.Event()  # the whole peer stream has arrived

    def install(self) -> None:
        mine, theirs = ("c2s", "s2c") if self.opts.role == "client" else ("s2c", "c2s")
        self.ks.attach_ulp()
        self.ks.install(Direction.TX, self.opts.keys.state(mine))
        self.ks.install(Direction.RX, self.opts.keys.state(theirs))

    # -- TX -----------------------------------------------------------------

    def _seed(self, role: str) -> bytes:
        return hashlib.sha256(f"ktlskit-{role}".encode()).digest()

    def sender(self) -> None:
        plan = frames(self._seed(self.opts.role), self.opts.nbytes)
        seed = self._seed(self.opts.role)
        for seq, n in plan:
            if seq == self.opts.pause_at:
                self._await_command()
            self._serve_commands()
            data = HEADER.pack(MAGIC, seq, n) + payload(seed, seq, n)
            with self.tx_lock:
                self.ks.send(data)
            self._tx_hash.update(data)
            self.res.bytes_sent += len(data)
            self.res.records_sent += 1
            every = self.opts.rekey_every
            if every and self.opts.rekey_dirs != "none" and (seq + 1) % every == 0 \
                    and seq + 1 < len(plan):
                self.rekey_tx(requested=self.opts.rekey_dirs == "both")
        self.res.sha256_sent = self._tx_hash.hexdigest()
        # Keep serving rekey commands (and answers to requested updates) until the whole
        # peer stream is in: a KeyUpdate(update_requested) always comes before the rest of
        # the peer's data, so once that is here nothing is left to answer. Then FIN.
        while not self._rx_all.wait(0.02) and not self._rx_done.is_set():
            self._serve_commands()
        self._serve_commands()
        with self.tx_lock:
            self.ks.sock.shutdown(socket.SHUT_WR)

    def _await_command(self) -> None:
        """Hold the stream mid-way until the harness sends a command (a rekey over SSH)."""
        print(f"paused at frame {self.opts.pause_at}", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            cmd = self.commands.get(timeout=IO_TIMEOUT)
        except queue.Empty as exc:
            raise PeerError(f"no control command within {IO_TIMEOUT:.0f}s while paused") from exc
        self.res.paused_seconds = round(time.monotonic() - start, 3)
        self.commands.put(cmd)

    def rekey_tx(self, requested: bool) -> None:
        with self.tx_lock:
            self.ks.send_key_update(requested)
            self.res.tx_rekeys += 1

    def _serve_commands(self) -> None:
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return
            if cmd == "answer":
                if self.ks.update_answer_due:
                    self.rekey_tx(requested=False)
            elif cmd == "tx":
                self.rekey_tx(requested=False)
            elif cmd == "both":
                self.rekey_tx(requested=True)
            elif cmd == "rx":
                send_control(self.opts.peer_control, "tx")

    # -- RX -----------------------------------------------------------------

    def receiver(self, expect: int) -> None:
        seed = self._seed("server" if self.opts.role == "client" else "client")
        buf = bytearray()
        next_seq = 0
        while self.res.bytes_received < expect:
            ctype, data = self.ks.recv_record(RECORD_MAX + 256, auto_key_update=False)
            if ctype == ContentType.HANDSHAKE:
                # Never take the TX lock here: the sender may hold it while blocked on a
                # full send buffer that only our reading will drain. A requested answer
                # is left to the sender thread.
                self._ku_at = time.monotonic()
                if self.ks.handle_key_update(data, answer=False):
                    self.res.rx_rekeys += 1
                    if self.ks.update_answer_due:
                        self.commands.put("answer")
                continue
            if ctype != ContentType.APPLICATION_DATA:
                if not data:
                    raise PeerError(f"stream ended after {self.res.bytes_received} of "
                                    f"{expect} bytes")
                raise PeerError(f"unexpected record type {ctype}")
            if self._ku_at is not None:
                self.res.stalls_ms.append(round((time.monotonic() - self._ku_at) * 1000, 3))
                self._ku_at = None
            self._rx_hash.update(data)
            self.res.bytes_received += len(data)
            buf += data
            next_seq = self._check_frames(buf, seed, next_seq)
        self.res.records_received = next_seq
        self.res.sha256_received = self._rx_hash.hexdigest()
        if buf:
            raise PeerError(f"{len(buf)} bytes of a partial frame at the end of the stream")
        self._rx_all.set()
        self._drain()

    def _drain(self) -> None:
        """After the stream: read to EOF, following trailing KeyUpdates (late answers)."""
        while True:
            ctype, data = self.ks.recv_record(RECORD_MAX + 256, auto_key_update=False)
            if ctype == EOF_CONTENT_TYPE:
                return
            if ctype == ContentType.HANDSHAKE and self.ks.handle_key_update(data, answer=False):
                self.res.rx_rekeys += 1
                continue
            raise PeerError(f"record type {ctype} ({len(data)} bytes) after the end of the "
                            "stream")

    def _check_frames(self, buf: bytearray, seed: bytes, next_seq: int) -> int:
        while len(buf) >= HEADER.size:
            magic, seq, n = HEADER.unpack_from(buf)
            if magic != MAGIC:
                raise PeerError(f"bad frame magic {magic:#x} at frame {next_seq}")
            if seq != next_seq:
                raise PeerError(f"frame {seq} arrived where {next_seq} was due")
            if len(buf) < HEADER.size + n:
                break
            if bytes(buf[HEADER.size:HEADER.size + n]) != payload(seed, seq, n):
                raise PeerError(f"frame {seq}: payload corrupted")
            del buf[:HEADER.size + n]
            next_seq += 1
        return next_seq

    # -- the run --------------------------------------------------------------

    def run(self) -> Result:
        start = time.monotonic()
        errors: list[str] = []

        def guarded(fn: object, *a: object) -> None:
            try:
                fn(*a)  # type: ignore[operator]
            except (KtlskitError, OSError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                if fn == self.receiver:
                    self._rx_done.set()

        ctl = self._control_thread()
        rx = threading.Thread(target=guarded, args=(self.receiver, self.opts.nbytes),
                              daemon=True)
        rx.start()
        guarded(self.sender)
        rx.join(timeout=IO_TIMEOUT * 4)
        if rx.is_alive():
            errors.append("receiver did not finish in time")
        self.res.complete = self.res.bytes_received == self.opts.nbytes and \
            self.res.bytes_sent == self.opts.nbytes
        self.res.errors = errors
        self.res.seconds = round(time.monotonic() - start, 3)
        if ctl:
            ctl.close()
        return self.res

    def _control_thread(self) -> socket.socket | None:
        if not self.opts.control:
            return None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.opts.control)
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ctl.bind(self.opts.control)

        def loop() -> None:
            while True:
                try:
                    msg = ctl.recv(64).decode().strip()
                except OSError:
                    return
                if msg in ("tx", "rx", "both"):
                    self.commands.put(msg)

        threading.Thread(target=loop, daemon=True).start()
        return ctl


def send_control(path: str, command: str) -> None:
    if command not in ("tx", "rx", "both"):
        raise PeerError(f"unknown rekey command {command!r}: tx, rx or both")
    if not path or not Path(path).exists():
        raise PeerError(f"no peer control socket at {path!r} (is the peer running?)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(command.encode(), path)


if __name__ == "__main__":  # the command line lives with the connection setup
    from .peerrun import main

    sys.exit(main())
