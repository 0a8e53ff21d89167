"""The scenario verdict: what makes a run pass or fail."""

import argparse
import socket
import threading

import pytest

from ktlskit import peerrun, scenario
from ktlskit.commands import runcmd
from ktlskit.scenario import ScenarioError, ScenarioReport, ScenarioSpec, judge


def _peer(sent: str, received: str, tx: int, rx: int, ok: bool = True) -> dict:
    return {
        "ok": ok,
        "sha256_sent": sent,
        "sha256_received": received,
        "tx_rekeys": tx,
        "rx_rekeys": rx,
        "errors": [] if ok else ["boom"],
        "stalls_ms": [1.0],
        "throughput_mbps": 10.0,
    }


def _report(counters: dict, spec: ScenarioSpec | None = None, ok: bool = True) -> ScenarioReport:
    rep = ScenarioReport(spec or ScenarioSpec(), "Linux test", "guest (tcg)")
    rep.peers = {"client": _peer("aa", "bb", 3, 2, ok), "server": _peer("bb", "aa", 2, 3)}
    rep.counters = counters
    rep.checks = judge(rep.spec, rep)
    return rep


GOOD = {"TlsTxRekeyOk": 5, "TlsRxRekeyOk": 5, "TlsRxRekeyReceived": 5, "TlsTxSw": 2, "TlsRxSw": 2}


def test_a_clean_run_passes() -> None:
    rep = _report(GOOD)
    assert rep.verdict == "pass", [c for c in rep.checks if not c.ok]
    assert rep.rekeys() == {"tx": 5, "rx": 5}
    assert rep.to_json()["verdict"] == "pass"


def test_counter_mismatch_fails() -> None:
    rep = _report({**GOOD, "TlsTxRekeyOk": 4})
    assert rep.verdict == "fail"
    bad = [c.name for c in rep.checks if not c.ok]
    assert bad == ["TlsTxRekeyOk = rekeys sent"]


def test_decrypt_error_fails() -> None:
    assert _report({**GOOD, "TlsDecryptError": 1}).verdict == "fail"


def test_integrity_mismatch_fails() -> None:
    rep = _report(GOOD)
    rep.peers["server"]["sha256_received"] = "zz"
    assert not all(c.ok for c in judge(rep.spec, rep))


def test_peer_error_fails() -> None:
    assert _report(GOOD, ok=False).verdict == "fail"


NO_REKEY = {"rekey_every": 0, "extra_rekey": False}


def test_offload_needs_device_counters() -> None:
    spec = ScenarioSpec(topology="netdevsim", offload=True, **NO_REKEY)
    assert _report(GOOD, spec).verdict == "fail"
    dev = {**GOOD, "TlsTxDevice": 1, "TlsRxDevice": 1}
    assert _report(dev, ScenarioSpec(topology="veth", offload=True,
                                     **NO_REKEY)).verdict == "pass"
    assert _report(dev, spec).verdict == "fail"  # netdevsim: its ethtool counters too
    assert _report({**dev, "tx_tls_encrypted_packets": 5}, spec).verdict == "fail"
    assert _report({**dev, "tx_tls_encrypted_packets": 5, "rx_tls_decrypted_packets": 2},
                   spec).verdict == "pass"


def test_tls12_rekey_is_refused_before_anything_runs() -> None:
    with pytest.raises(ScenarioError, match=r"TLS 1\.2 has no rekey"):
        ScenarioSpec(version="1.2").check()
    ScenarioSpec(version="1.2", rekey_every=0, extra_rekey=False).check()


def test_throughput_leaves_out_the_harness_pause() -> None:
    peers = {"client": {"bytes_sent": 1_000_000, "bytes_received": 1_000_000, "seconds": 12.0,
                        "paused_seconds": 10.0},
             "server": {"bytes_sent": 1_000_000, "bytes_received": 1_000_000, "seconds": 12.5}}
    scenario.exclude_pause(peers)
    assert peers["client"]["active_seconds"] == 2.0
    assert peers["client"]["throughput_mbps"] == 8.0  # 2 MB in 2 s
    assert peers["server"]["throughput_mbps"] == 6.4  # 2 MB in 2.5 s


# An offloaded run with rekeys: 5 rekeys each way counted as outcomes, the device on both ports
# handling more than half of the 4 MiB each way.
NBYTES = 4 << 20
OFFLOAD_REKEY = {"TlsTxRekeyOk": 5, "TlsRxRekeyOk": 4, "TlsRxRekeyAborted": 1,
                 "TlsRxRekeyReceived": 5, "TlsTxDevice": 2, "TlsRxDevice": 2,
                 "tx_tls_encrypted_packets": 9, "rx_tls_decrypted_packets": 9,
                 "a/kta0:tx_tls_encrypted_bytes": NBYTES, "b/ktb0:tx_tls_encrypted_bytes": NBYTES,
                 "a/kta0:rx_tls_decrypted_bytes": NBYTES // 2,
                 "b/ktb0:rx_tls_decrypted_bytes": NBYTES // 2 + 1}


def _offload_rekey(counters: dict) -> ScenarioReport:
    return _report(counters, ScenarioSpec(topology="netdevsim", offload=True, nbytes=NBYTES,
                                          rekey_every=16))


def test_offload_rekeys_pass_with_one_outcome_each() -> None:
    rep = _offload_rekey(OFFLOAD_REKEY)
    assert rep.verdict == "pass", [c for c in rep.checks if not c.ok]


@pytest.mark.parametrize(("change", "failing"), [
    ({"TlsTxRekeyOk": 4}, "TlsTxRekeyOk + Fallback + Aborted = rekeys"),
    ({"TlsRxRekeyOk": 3, "TlsRxRekeyFallback": 1}, "TlsRxRekeyFallback unchanged"),
    ({"TlsCurrTxRekey": 1}, "TlsCurrTxRekey back to 0"),
    ({"a/kta0:rx_tls_decrypted_bytes": NBYTES // 2 - 1},
     "a/kta0 decrypted >= 50% of the stream"),
])
def test_offload_rekeys_fail_on_fallback_lost_outcome_or_little_device(
        change: dict, failing: str) -> None:
    rep = _offload_rekey({**OFFLOAD_REKEY, **change})
    assert failing in [c.name for c in rep.checks if not c.ok]


def test_offload_rekeys_need_two_each_way() -> None:
    rep = ScenarioReport(ScenarioSpec(topology="netdevsim", offload=True, nbytes=NBYTES,
                                      rekey_every=16), "Linux test", "tcg")
    rep.peers = {"client": _peer("aa", "bb", 4, 1), "server": _peer("bb", "aa", 1, 4)}
    rep.counters = {**OFFLOAD_REKEY, "TlsRxRekeyOk": 4, "TlsRxRekeyAborted": 1}
    bad = [c.name for c in judge(rep.spec, rep) if not c.ok]
    assert ">= 2 rekeys each way" in bad


def test_two_machines_counters_are_summed_and_kept_per_machine() -> None:
    from ktlskit import report
    from ktlskit.tlsstats import Snapshot

    before = {"dut": Snapshot({"TlsTxSw": 5}, {"/eth1": {"tx_kicks": 10}}),
              "peer": Snapshot({"TlsTxSw": 0}, {"/eth1": {"tx_kicks": 0}})}
    after = {"dut": Snapshot({"TlsTxSw": 6, "TlsTxRekeyOk": 3}, {"/eth1": {"tx_kicks": 12}}),
             "peer": Snapshot({"TlsTxSw": 1, "TlsTxRekeyOk": 2}, {"/eth1": {"tx_kicks": 7}})}
    rep = ScenarioReport(ScenarioSpec(topology="link"), "k", "client on dut, server on peer")
    scenario._count(rep, before, after)
    assert rep.counters_by_host["dut"] == {"TlsTxSw": 1, "TlsTxRekeyOk": 3,
                                           "/eth1:tx_kicks": 2, "tx_kicks": 2}
    assert rep.counters == {"TlsTxSw": 2, "TlsTxRekeyOk": 5, "tx_kicks": 9}
    rep.peers = {"client": _peer("a", "b", 1, 1), "server": _peer("b", "a", 1, 1)}
    rep.checks = judge(rep.spec, rep)
    text = report.text(rep)
    assert "counter" in text and "dut" in text and "peer" in text and "total" in text


def _run_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    runcmd.register(sub)
    return p.parse_args(["run", *argv])


def test_offloaded_rekeying_peers_get_a_bounded_receive_buffer() -> None:
    spec = runcmd.spec_from(_run_args("--topology", "netdevsim", "--offload"))
    assert spec.rcvbuf == scenario.OFFLOAD_REKEY_RCVBUF
    assert runcmd.spec_from(_run_args("--topology", "netdevsim", "--offload",
                                      "--no-rekey")).rcvbuf == 0
    assert runcmd.spec_from(_run_args()).rcvbuf == 0
    assert runcmd.spec_from(_run_args("--offload", "--topology", "netdevsim",
                                      "--rcvbuf", "0")).rcvbuf == 0


@pytest.mark.parametrize("rcvbuf", [-1, 100, 1 << 30])
def test_bad_rcvbuf_is_refused_before_any_work(rcvbuf: int) -> None:
    with pytest.raises(scenario.ScenarioError, match="--rcvbuf"):
        scenario.ScenarioSpec(rcvbuf=rcvbuf).check()


def test_peers_connect_with_the_receive_buffer_asked_for() -> None:
    got: list[socket.socket] = []
    t = threading.Thread(target=lambda: got.append(peerrun.accept_one("127.0.0.1", port, 10,
                                                                        32768)))
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    t.start()
    cli = peerrun.connect("127.0.0.1", port, 10, 32768)
    t.join(10)
    try:
        # Linux doubles SO_RCVBUF for its bookkeeping
        assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 65536
        assert got[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 65536
    finally:
        cli.close()
        for s in got:
            s.close()
