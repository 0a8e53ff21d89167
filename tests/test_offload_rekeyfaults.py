"""The pure parts of the rekey fault cases: /proc/net/snmp, /dev/kmsg records, the loop
steering (rekey hook, gate, held reader, outcome), and the registry."""

from __future__ import annotations

import errno
import threading
from typing import Any

import pytest

from ktlskit import uapi
from ktlskit.offload import run
from ktlskit.offload.probes import LOG_LINE, delta, parse_kmsg, parse_snmp
from ktlskit.offload.rekey import send_rekeying
from ktlskit.offload.rekeyfaults import REKEY_FAULT_CASES, fault_facts
from ktlskit.offload.steer import HeldReader, Hook, Once, outcome
from ktlskit.offload.traffic import Worker

SNMP = """\
Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 1200
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens RetransSegs
Tcp: 1 200 120000 -1 4 37
"""
NETSTAT = """\
TcpExt: SyncookiesSent TCPLossProbes TCPTimeouts
TcpExt: 0 5 2
IpExt: InNoRoutes InOctets
IpExt: 0 123456
"""


def test_snmp_keys_as_nstat_spells_them() -> None:
    got = parse_snmp(SNMP)
    assert got["TcpRetransSegs"] == 37 and got["TcpMaxConn"] == -1 and got["IpForwarding"] == 2
    ext = parse_snmp(NETSTAT)
    assert ext["TcpExtTCPLossProbes"] == 5 and ext["IpExtInOctets"] == 123456


def test_snmp_out_of_pairs_is_an_error() -> None:
    with pytest.raises(ValueError, match="out of pairs"):
        parse_snmp("Ip: A B\nTcp: 1 2\n")


def test_delta_keeps_zeros() -> None:
    assert delta({"a": 5, "b": 1}, {"a": 2, "b": 1}) == {"a": 3, "b": 0}


def test_kmsg_record_as_console_line() -> None:
    rec = "4,812,93127654,-;WARNING: net/tls/tls_device.c:164 at x+0x1/0x2\n SUBSYSTEM=net\n"
    assert parse_kmsg(rec) == "[   93.127654] WARNING: net/tls/tls_device.c:164 at x+0x1/0x2"
    assert parse_kmsg("not a record") is None
    assert parse_kmsg("6,1,x,-;msg") is None


@pytest.mark.parametrize(("line", "kept"), [
    ("[ 1.0] WARNING: CPU: 0 PID: 1 at net/tls/tls_device.c:1 f", True),
    ("[ 1.0] BUG: KASAN: slab-use-after-free in tls_device_down", True),
    ("[ 1.0] netdevsim netdevsim4201 kta0: renamed from eth1", False),
])
def test_log_lines_kept(line: str, kept: bool) -> None:
    assert bool(LOG_LINE.search(line)) is kept


class FakeSock:
    """What send_rekeying does to a socket: sendall, a KeyUpdate record, a new key."""

    def __init__(self) -> None:
        self.sent = 0
        self.keys = 0

    def sendall(self, data: bytes) -> None:
        self.sent += len(data)

    def sendmsg(self, bufs: list[bytes], anc: object) -> int:
        return len(bufs[0])

    def setsockopt(self, *args: object) -> None:
        self.keys += 1


def test_hook_counts_rekeys_and_fires_once_after_the_nth() -> None:
    from ktlskit.offload.traffic import Suite

    fired: list[int] = []
    hook = Hook(2, lambda: fired.append(len(fired)) or "armed")
    sock = FakeSock()
    st, _ = Suite().states()
    rekeys = send_rekeying(sock, st, bytes(10 * 100), 100, 2, hook)  # type: ignore[arg-type]
    assert rekeys == 4 and hook.rekeys == 4 and fired == [0] and hook.result == "armed"
    assert fault_facts(hook) == {"set": None}  # what it armed is no Fault


def test_outcome_value_errno_running() -> None:
    assert outcome(Worker(lambda: True), 5) is True

    def fail() -> None:
        raise OSError(errno.EPIPE, "broken pipe")

    assert outcome(Worker(fail), 5) == "EPIPE"
    gate = threading.Event()
    w = Worker(lambda: gate.wait(10))
    assert outcome(w, 0) == "running"
    gate.set()
    assert outcome(w, 5) is True


def test_fault_cases_registered() -> None:
    assert set(REKEY_FAULT_CASES) == {"tx-rekey-noack", "tx-rekey-noack-del", "rx-rekey-hold",
                                      "rekey-dev-del", "rekey-dev-del-rx", "rekey-close"}
    for name in REKEY_FAULT_CASES:
        assert run.parse_spec(name)[0] == name


def test_once_runs_when_the_last_party_arrives() -> None:
    ran: list[int] = []
    gate = Once(2, lambda: ran.append(1))
    gate()
    assert ran == []
    gate()
    gate()  # a late third call does nothing
    assert ran == [1]


class RecordSock:
    """recvmsg() returns one queued (type, bytes) record, with its TLS_GET_RECORD_TYPE."""

    def __init__(self, records: list[tuple[int, bytes]]) -> None:
        self.records = records

    def recvmsg(self, size: int, ancsize: int) -> tuple[bytes, list[Any], int, Any]:
        kind, data = self.records.pop(0)
        return data, [(uapi.SOL_TLS, uapi.TLS_GET_RECORD_TYPE, bytes([kind]))], 0, None


def test_held_reader_stops_before_the_record_after_limit_data_bytes() -> None:
    ku = (22, b"\x18\x00\x00\x01\x00")
    sock = RecordSock([(23, b"a" * 10), ku, (23, b"b" * 10), ku, (23, b"c")])
    go = threading.Event()
    reader = HeldReader(sock, 20, go)  # type: ignore[arg-type]
    got = [reader.recvmsg(64, 32)[0] for _ in range(3)]  # the KeyUpdate does not count
    assert got == [b"a" * 10, ku[1], b"b" * 10] and reader.read == 20
    w = Worker(lambda: reader.recvmsg(64, 32)[0])
    assert reader.held.wait(5) and outcome(w, 0) == "running"
    go.set()
    assert outcome(w, 5) == ku[1]
