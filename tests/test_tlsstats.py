"""Parsers of /proc/net/tls_stat, ethtool -S and ss, on outputs captured in a guest."""

from pathlib import Path

from ktlskit.tlsstats import Snapshot, SocketTls, delta, parse_ethtool_s, parse_ss, parse_tls_stat

FIXTURES = Path(__file__).parent / "fixtures"


def test_tls_stat_from_a_7_3_guest() -> None:
    stats = parse_tls_stat((FIXTURES / "tls_stat-7.3.txt").read_text())
    assert list(stats)[:4] == ["TlsCurrTxSw", "TlsCurrRxSw", "TlsCurrTxDevice", "TlsCurrRxDevice"]
    assert len(stats) == 17
    assert stats["TlsTxRekeyOk"] >= 1


def test_unknown_counters_are_kept_in_order() -> None:
    text = "TlsCurrTxSw                     \t1\nTlsFutureThing                  \t7\n"
    assert list(parse_tls_stat(text).items()) == [("TlsCurrTxSw", 1), ("TlsFutureThing", 7)]


def test_ethtool_s_text() -> None:
    text = "NIC statistics:\n     rx_packets: 10\n     tx_tls_encrypted_packets: 3\n"
    assert parse_ethtool_s(text) == {"rx_packets": 10, "tx_tls_encrypted_packets": 3}


def test_ss_ulp_tls_from_a_guest() -> None:
    socks = parse_ss((FIXTURES / "ss-tinHe-ktls.txt").read_text(), "ktls-a")
    assert socks, "no tcp-ulp-tls socket parsed"
    s = socks[0]
    assert s.netns == "ktls-a"
    assert s.version == "1.3" and s.cipher == "aes-gcm-128"
    assert s.txconf == "sw" and s.rxconf == "sw"
    # without a State column (ss ... state established): Recv-Q Send-Q Local Peer
    assert s.local.startswith("127.0.0.1:") and s.peer.startswith("127.0.0.1:"), s
    assert not s.peer.startswith(("ino:", "timer:")), s


def test_delta_keeps_kernel_names_and_sums_devices() -> None:
    before = Snapshot({"TlsTxSw": 1, "TlsTxRekeyOk": 0},
                      {"a/kta0": {"tx_tls_encrypted_packets": 5},
                       "b/ktb0": {"tx_tls_encrypted_packets": 0}})
    after = Snapshot({"TlsTxSw": 3, "TlsTxRekeyOk": 4, "TlsNew": 1},
                     {"a/kta0": {"tx_tls_encrypted_packets": 9},
                      "b/ktb0": {"tx_tls_encrypted_packets": 2}},
                     [SocketTls("a", "1:1", "2:2", "1.3", "aes-gcm-128", "sw", "sw")])
    d = delta(before, after)
    assert d["TlsTxSw"] == 2 and d["TlsTxRekeyOk"] == 4 and d["TlsNew"] == 1
    assert d["tx_tls_encrypted_packets"] == 6
    assert d["a/kta0:tx_tls_encrypted_packets"] == 4
    assert Snapshot.from_json(after.to_json()).sockets == after.sockets


def test_ss_half_installed_sockets() -> None:
    socks = parse_ss((FIXTURES / "ss-tinHe-ktls.txt").read_text())
    confs = {(s.txconf, s.rxconf) for s in socks}
    assert ("sw", "none") in confs and ("none", "sw") in confs
    assert all(s.local and s.peer for s in socks)
