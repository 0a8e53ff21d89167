"""The wire: capture on the receiving port, TCP reassembly, the reference record layer as oracle.

What the device puts on the wire is checked against ``ktlskit.records``, an independent TLS
1.2/1.3 record layer: every record must open under the connection's keys with the record
number the stream position gives it (TLS 1.3: nonce = IV XOR record number, no explicit nonce,
the content type inside the encryption).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

from .. import netnsenter, topology
from ..keyschedule import DirectionState
from ..records import RecordParser, RecordProtection
from .nsim import DEV_B
from .traffic import Worker

ETH_P_ALL = 0x0003
PACKET_STATISTICS = 6
SOL_PACKET = 263
SO_RCVBUFFORCE = 33


class Capture:
    """An AF_PACKET socket on ``ktb0`` (in ktls-b) collecting TCP payload by sequence number.

    Started before the connection exists, so it sees the SYN and the initial
    sequence number; ``segments()`` returns what the client sent.
    """

    def __init__(self) -> None:
        with netnsenter.entered(topology.NS_B):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        self.sock.bind((DEV_B, ETH_P_ALL))
        self.sock.settimeout(0.5)
        self.frames: list[bytes] = []
        self.stop = threading.Event()
        self.worker = Worker(self._loop)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                frame, addr = self.sock.recvfrom(1 << 18)
            except TimeoutError:
                continue
            if addr[2] != socket.PACKET_OUTGOING:
                self.frames.append(frame)

    def finish(self) -> dict[str, int]:
        time.sleep(1)
        self.stop.set()
        self.worker.result(30)
        _packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET,
                                                                   PACKET_STATISTICS, 8))
        self.sock.close()
        return {"frames": len(self.frames), "socket_drops": drops}

    def segments(self, dport: int) -> tuple[int | None, list[tuple[int, bytes]], bool]:
        """(ISN, [(seq, payload)], FIN seen) of IPv4 TCP frames to ``dport``."""
        isn, segs, fin = None, [], False
        for f in self.frames:
            if len(f) < 34 or f[12:14] != b"\x08\x00" or f[23] != 6:
                continue
            ihl = (f[14] & 0x0F) * 4
            tot = int.from_bytes(f[16:18], "big")
            th = 14 + ihl
            if int.from_bytes(f[th + 2:th + 4], "big") != dport:
                continue
            seq = int.from_bytes(f[th + 4:th + 8], "big")
            flags = f[th + 13]
            doff = (f[th + 12] >> 4) * 4
            if flags & 0x02:
                isn = seq
            fin = fin or bool(flags & 0x01)
            payload = f[th + doff:14 + tot]
            if payload:
                segs.append((seq, payload))
        return isn, segs, fin


def reassemble(isn: int, segs: list[tuple[int, bytes]]) -> tuple[bytes, int, int]:
    """The contiguous stream from ISN+1: (bytes, retransmitted bytes, mismatching bytes)."""
    buf = bytearray()
    start = (isn + 1) & 0xFFFFFFFF
    again = mismatch = 0
    for off, data in sorted((((seq - start) & 0xFFFFFFFF, data) for seq, data in segs),
                            key=lambda sd: sd[0]):
        if off > len(buf):
            break  # a hole: what follows was never captured
        overlap = min(len(buf) - off, len(data))
        if overlap > 0:
            again += overlap
            mismatch += sum(x != y for x, y in zip(buf[off:off + overlap], data[:overlap],
                                                   strict=True))
        buf += data[overlap:]
    return bytes(buf), again, mismatch


@dataclass(frozen=True)
class WireRecords:
    """What the oracle made of a captured stream."""

    plaintext: bytes
    records: int
    types: tuple[int, ...]
    """Content type of each record (TLS 1.3: the inner type)."""
    error: str | None


def decrypt_wire(wire: bytes, st: DirectionState) -> WireRecords:
    """Open every record with the reference layer, in order from ``st.seq``."""
    prot = RecordProtection(st)
    parser = RecordParser()
    plain = bytearray()
    types: list[int] = []

    def done(error: str | None) -> WireRecords:
        return WireRecords(bytes(plain), prot.seq - st.seq, tuple(types), error)

    try:
        for rec in parser.feed(wire):
            ctype, data = prot.open(rec)
            types.append(ctype)
            if ctype == 23:
                plain += data
    except Exception as exc:
        return done(f"record {prot.seq - st.seq}: {type(exc).__name__}: {exc}")
    if parser.buffered:
        return done(f"{len(parser.buffered)} bytes of partial record")
    return done(None)
