"""Rekey of device offloaded sockets under faults (issue #11), in one guest run.

``ktlskit/offload/rekeyfaults.py``: the ACKs of old-key records dropped on the TX offloaded
sender's port (``drop_acks``; keys taken ahead, and with ``refuse_rekey``), the RX re-arm
held (``hold_resync`` after ``refuse_rekey``'s remove and re-add), both devices deleted right
after a KeyUpdate (and with one unread on each side), sockets closed with a rekey pending.
4 MiB streams (1 MiB on the debug kernel). Each fault knob is read back: how many events the
device injected.
``rekey-close`` runs after the deletions: the pair comes back after one.
"""

from __future__ import annotations

from typing import Any

import pytest
from rekeyfacts import case, outcomes, run_module_cases

from ktlskit.offload.rekeyfaults import DROP_ACKS, FAULT_AT, HOLD_RESYNC, RETRANSMITTED

pytestmark = [pytest.mark.offload, pytest.mark.debug]

CASES = ("tx-rekey-noack", "tx-rekey-noack-del", "rx-rekey-hold", "rekey-dev-del",
         "rekey-dev-del-rx", "rekey-close")


@pytest.fixture(scope="module")
def facts(request: pytest.FixtureRequest, guest: Any) -> dict[str, Any]:
    return run_module_cases(request, guest, CASES, 2400)


def _stream(f: dict[str, Any]) -> dict[str, Any]:
    st = f["stream"]
    assert st["ok"] and st["tx_rekeys"] == st["rx_rekeys"] > FAULT_AT, st
    return st


def _fired(knob: dict[str, Any], count: int, ended: tuple[str, ...]) -> int:
    """Set to ``count``, consumed at least once, its watch ended for one of ``ended``."""
    assert knob["set"] == count and knob["fired"] >= 1 and knob["ended"] in ended, knob
    return knob["fired"]


@pytest.mark.parametrize("name", ["tx-rekey-noack", "tx-rekey-noack-del"])
def test_tx_rekey_with_old_key_acks_dropped(facts: dict[str, Any], name: str) -> None:
    """Old-key records unacknowledged, retransmitted under their key; the stream intact."""
    f = case(facts, name)
    st = _stream(f)
    # the port dropped ACKs until the sender had retransmitted (or all it was set to)
    dropped = _fired(f["drop_acks"], DROP_ACKS, ("consumed", "enough"))
    assert f["a_rx_dropped"] >= dropped, f
    assert f["tcp_a"]["TcpRetransSegs"] >= (RETRANSMITTED if dropped < DROP_ACKS else 1), f
    outcomes(f["delta"]["a"], "Tx", st["tx_rekeys"])
    eth = f["delta"]["a_eth"]
    assert eth["tx_tls_ctx"] == eth["tx_tls_del"] >= 1, eth
    assert (eth["tx_tls_rekey"] == 0) if name.endswith("-del") else (eth["tx_tls_rekey"] >= 1), eth
    # the wire: every record under one key, switching only after each KeyUpdate; what went
    # out again is the first transmission byte for byte (so under its record's key)
    assert f["wire_error"] is None and f["wire_key_updates"] == st["tx_rekeys"], f
    assert f["retransmitted_bytes"] > 0 and f["retransmit_mismatch_bytes"] == 0, f


def test_rx_rekey_with_rearm_held(facts: dict[str, Any]) -> None:
    f = case(facts, "rx-rekey-hold")
    st = _stream(f)
    assert _fired(f["hold_resync"], HOLD_RESYNC, ("consumed",)) == HOLD_RESYNC
    b, eth = f["delta"]["b"], f["delta"]["b_eth"]
    outcomes(b, "Rx", st["rx_rekeys"])
    assert eth["rx_tls_resync_res_skip"] >= HOLD_RESYNC, eth
    # removed at every KeyUpdate, re-added each time; resynced again once the hold was over
    assert eth["rx_tls_rekey"] == 0, eth
    assert eth["rx_tls_ctx"] == eth["rx_tls_del"] == st["rx_rekeys"] + 1, eth
    assert eth["rx_tls_resync_res_ok"] >= 1, eth


def _no_hang_no_loss(f: dict[str, Any]) -> None:
    """Every loop ended after shutdown(), none with a record it could not decrypt (what was
    queued before the devices went was received intact: lost only by the link), the
    gauges back to 0, one outcome per KeyUpdate each way (a fallback is fine: no device)."""
    assert f["deleted"], f
    end = f["after_shutdown"]
    assert "running" not in end.values() and "EBADMSG" not in end.values(), end
    assert f["curr_after_close"] == {}, f["curr_after_close"]
    r = f["rekeys"]
    assert r["up_tx"] >= FAULT_AT and r["down_tx"] >= FAULT_AT, r
    for side, d, peer in (("a", "Tx", "up_tx"), ("a", "Rx", "down_rx"),
                          ("b", "Tx", "down_tx"), ("b", "Rx", "up_rx")):
        outcomes(f["delta"][side], d, r[peer], fallback=True)
    assert f["splats"] == [], f["log"]


def test_device_deleted_mid_rekey(facts: dict[str, Any]) -> None:
    """The "deletion not finished" once seen on the debug kernel was the case's own loop
    giving up when one stream ended before the other reached its KeyUpdate (rekeyfaults.py)."""
    f = case(facts, "rekey-dev-del")
    # a rekey was in progress (the client's TX ones wait for ACKs: refuse_rekey)
    curr = f["curr_at_delete"]
    assert curr.get("TlsCurrTxRekey", 0) + curr.get("TlsCurrRxRekey", 0) >= 1, curr
    _no_hang_no_loss(f)


def test_device_deleted_with_key_update_unread(facts: dict[str, Any]) -> None:
    """Records after an unread KeyUpdate were decrypted by the device with the old key; with
    the device gone the stack must still encrypt them back before decrypting them."""
    f = case(facts, "rekey-dev-del-rx")
    assert f["held"], f
    _no_hang_no_loss(f)


def test_close_with_tx_rekey_waiting_for_acks(facts: dict[str, Any]) -> None:
    f = case(facts, "rekey-close")["tx"]
    assert f["ok"] and f["tx_rekeys"] == f["rx_rekeys"] == 1, f
    assert f["curr_at_close"].get("TlsCurrTxRekey") == 1, f["curr_at_close"]
    _fired(f["drop_acks"], DROP_ACKS, ("consumed", "enough", "case"))
    a, eth = f["delta"]["a"], f["delta"]["a_eth"]
    outcomes(a, "Tx", 1)
    assert a["TlsTxRekeyAborted"] == 1, a
    assert f["curr_after_close"] == {}, f["curr_after_close"]
    assert eth["tx_tls_ctx"] == eth["tx_tls_del"] >= 1, eth


def test_close_with_rx_rearm_pending(facts: dict[str, Any]) -> None:
    f = case(facts, "rekey-close")["rx"]
    assert f["ok"] and f["rx_rekeys"] == 1, f
    assert f["curr_at_close"].get("TlsCurrRxRekey") == 1, f["curr_at_close"]
    b, eth = f["delta"]["b"], f["delta"]["b_eth"]
    outcomes(b, "Rx", 1)
    assert b["TlsRxRekeyAborted"] == 1, b
    assert f["curr_after_close"] == {}, f["curr_after_close"]
    assert eth["rx_tls_ctx"] == eth["rx_tls_del"] == 2, eth


def test_no_splat_when_closing_mid_rekey(facts: dict[str, Any]) -> None:
    f = case(facts, "rekey-close")
    assert f["splats"] == [], f["log"]
