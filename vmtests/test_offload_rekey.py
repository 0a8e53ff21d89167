"""Rekey of device offloaded sockets (patches/tls-rekey) on the netdevsim pair, in one guest run.

A stream of 4 MiB (1 MiB on the debug kernel) in 16 KiB writes with a KeyUpdate every 8 writes
(31 rekeys, 7 on the debug kernel), one way (``tx-rekey``: the offloaded sender rekeys;
``rx-rekey``: towards the offloaded receiver) or both ways at once on fully offloaded ports
(``both-rekey``). Each asserts the stream intact, one outcome per KeyUpdate with no fallback,
and what the device did under each key (debugfs ``tls/epochs``). The ``rx-rekey-*-header`` and
``-first`` cases write their own frames around one KeyUpdate (rekeysplit.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from rekeyfacts import case, outcomes, run_module_cases

pytestmark = [pytest.mark.offload, pytest.mark.debug]

CASES = ("tx-rekey", "rx-rekey", "rx-rekey-reorder", "tx-rekey-del", "rx-rekey-del", "both-rekey",
         "open-record:1.2", "open-record:1.3", "wire-rekey", "rx-rekey-split-header",
         "rx-rekey-whole-header", "rx-rekey-split-first")


@pytest.fixture(scope="module")
def facts(request: pytest.FixtureRequest, guest: Any) -> dict[str, Any]:
    return run_module_cases(request, guest, CASES, 1800)


def test_tx_rekey_resumes_offload_after_every_key(facts: dict[str, Any]) -> None:
    f = case(facts, "tx-rekey")
    st = f["stream"]
    assert st["ok"] and st["tx_rekeys"] == st["rx_rekeys"] > 0, st
    a, eth = f["delta"]["a"], f["delta"]["a_eth"]
    outcomes(a, "Tx", st["tx_rekeys"])
    assert a["TlsTxRekeyAborted"] <= 1, a
    # netdevsim takes each new key ahead (tx_tls_rekey) and switches at its first record;
    # a key it could not hold is installed later (tls_dev_del + tls_dev_add). Either way
    # every device key encrypted something, and the device most of the stream.
    assert eth["tx_tls_ctx"] == eth["tx_tls_del"], eth
    assert eth["tx_tls_rekey"] >= 1, eth
    assert eth["tx_tls_rekey"] + eth["tx_tls_ctx"] - 1 <= st["tx_rekeys"], eth
    tx = [e for e in f["epochs_a"] if e["direction"] == "tx"]
    assert len(tx) == eth["tx_tls_ctx"] + eth["tx_tls_rekey"], tx
    # a key taken ahead is used once the stream reaches it; one installed later (del + add,
    # past 8 keys ahead or while one is refused) may be replaced before the device sees an
    # skb under it: at most tx_tls_ctx - 1 unused keys
    assert sum(e["nbytes"] == 0 for e in tx[:-1]) <= eth["tx_tls_ctx"] - 1, (eth, tx)
    assert eth["tx_tls_encrypted_bytes"] * 2 > st["received"], eth


def test_rx_rekey_reencrypts_and_rearms(facts: dict[str, Any]) -> None:
    """The EBADMSG this once got on the debug kernel was a record start reported wrong in
    the strparser's copy mode (tls-fixes patch 4, the header-split tests below)."""
    f = case(facts, "rx-rekey")
    st = f["stream"]
    assert st["ok"] and st["tx_rekeys"] == st["rx_rekeys"] > 0, st
    b, eth = f["delta"]["b"], f["delta"]["b_eth"]
    outcomes(b, "Rx", st["rx_rekeys"])
    # at each KeyUpdate the device switched keys at a record boundary (rx_tls_rekey), or,
    # out of sync, lost its key and got the next one to resync with
    assert eth["rx_tls_ctx"] == eth["rx_tls_del"], eth
    assert eth["rx_tls_rekey"] + eth["rx_tls_ctx"] - 1 == st["rx_rekeys"], eth
    assert eth["rx_tls_rekey"] >= 1 and b["TlsRxRekeyOk"] >= 1, (b, eth)
    rx = [e for e in f["epochs_b"] if e["direction"] == "rx"]
    # one epoch per key the device took: a key switch not reached yet when the next
    # KeyUpdate comes is replaced by the newer key, and one not reached when the socket
    # closes ends unused (31 epochs for 31 rekeys in one run, 32 in others)
    assert 2 <= len(rx) <= st["rx_rekeys"] + 1, rx
    # offload resumed after the KeyUpdates: most keys decrypted something (with the
    # remove-and-resync path of tls-rekey v1, 4 of 25 did). The device takes each key where
    # it is when the reader installs it, so this needs a reader that keeps up: with an
    # autotuned buffer CI saw 9 of 32 keys used; with 64 KiB, 32 of 32 (62% of the bytes in
    # the device). The share of the bytes is not asserted: it falls with the unread queue.
    assert sum(e["nbytes"] > 0 for e in rx) * 2 > len(rx), rx


def test_rx_rekey_through_reordering_and_loss(facts: dict[str, Any]) -> None:
    """``rx-rekey`` with netem reordering 25% of the frames and dropping 1% on the way: the
    stream arrives intact and each KeyUpdate ends in one outcome. A device out of sync
    (resyncing after a hole) when a KeyUpdate comes falls back, which is allowed here."""
    f = case(facts, "rx-rekey-reorder")
    st = f["stream"]
    assert st["ok"] and st["tx_rekeys"] == st["rx_rekeys"] > 0, st
    b, eth = f["delta"]["b"], f["delta"]["b_eth"]
    outcomes(b, "Rx", st["rx_rekeys"], fallback=True)
    assert eth["rx_tls_ctx"] == eth["rx_tls_del"], eth
    rx = [e for e in f["epochs_b"] if e["direction"] == "rx"]
    # offload resumed after a KeyUpdate: a key other than the first decrypted something
    assert any(e["nbytes"] > 0 for e in rx[1:]), (eth, rx)


def test_tx_rekey_without_keys_ahead_waits_for_acks(facts: dict[str, Any]) -> None:
    f = case(facts, "tx-rekey-del")
    st = f["stream"]
    assert st["ok"] and st["tx_rekeys"] == st["rx_rekeys"] > 0, st
    a, eth = f["delta"]["a"], f["delta"]["a_eth"]
    outcomes(a, "Tx", st["tx_rekeys"])
    # the device took no key ahead; it was re-armed (rekeys that pile up behind the
    # unacknowledged records share one re-arm) and encrypted again after a rekey. Not under
    # most of its keys: a key re-armed just before the next KeyUpdate may see no skb before
    # it is replaced (3 of 6 keys used in one run, 4 of 6 in others)
    assert eth["tx_tls_rekey"] == 0, eth
    assert 2 <= eth["tx_tls_ctx"] == eth["tx_tls_del"] <= st["tx_rekeys"] + 1, eth
    tx = [e for e in f["epochs_a"] if e["direction"] == "tx"]
    assert len(tx) == eth["tx_tls_ctx"], tx
    assert tx[0]["nbytes"] > 0 and any(e["nbytes"] > 0 for e in tx[1:]), tx


def test_rx_rekey_without_key_switch_resyncs(facts: dict[str, Any]) -> None:
    f = case(facts, "rx-rekey-del")
    st = f["stream"]
    assert st["ok"] and st["tx_rekeys"] == st["rx_rekeys"] > 0, st
    b, eth = f["delta"]["b"], f["delta"]["b_eth"]
    outcomes(b, "Rx", st["rx_rekeys"])
    # the device lost its key at every KeyUpdate and got the next one to resync with
    assert eth["rx_tls_rekey"] == 0, eth
    assert eth["rx_tls_ctx"] == eth["rx_tls_del"] == st["rx_rekeys"] + 1, eth
    assert b["TlsRxRekeyOk"] >= 1 and eth["rx_tls_resync_res_ok"] >= 1, (b, eth)


def test_both_ways_rekey_at_once(facts: dict[str, Any]) -> None:
    f = case(facts, "both-rekey")
    for way in ("up", "down"):
        assert f[way]["ok"] and f[way]["tx_rekeys"] == f[way]["rx_rekeys"] > 0, f[way]
    for side, way_tx, way_rx in (("a", "up", "down"), ("b", "down", "up")):
        d = f["delta"][side]
        outcomes(d, "Tx", f[way_tx]["tx_rekeys"])
        # both readers run beside both writers in one guest, and one full run had RX Ok 2,
        # Fallback 12, Aborted 17 of 31 on one side: a reader more than 8 KeyUpdates behind
        # (TLS_RX_OLD_KEYS_MAX) leaves RX in software until the next KeyUpdate; that run
        # did not keep the device counters that would tell this from a failed re-add
        outcomes(d, "Rx", f[way_rx]["rx_rekeys"], fallback=True)
        eth = f["delta"][f"{side}_eth"]
        assert eth["tx_tls_encrypted_bytes"] > 0 and eth["rx_tls_decrypted_bytes"] > 0, eth


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_open_record_closed_by_another_type_on_tx_offload(facts: dict[str, Any],
                                                          version: str) -> None:
    """The device's handler closes the open record (patch 1); a rekey waits for it."""
    f = case(facts, f"open-record:{version}")
    assert f["records"] == [[23, 1000], [22, 8]], f
    assert f["rekey_open"] == ("EBUSY" if version == "1.3" else None), f
    a = f["delta"]["a"]
    assert a["TlsTxDevice"] == 1 and a["TlsDecryptError"] == 0, a


def test_wire_records_under_one_key_each_with_loss(facts: dict[str, Any]) -> None:
    """The wire oracle (rekeywire.py) on the TX-offloaded sender's ciphertext, 3% loss."""
    f = case(facts, "wire-rekey")
    st = f["stream"]
    assert st["ok"] and st["tx_rekeys"] > 0, st
    assert f["wire_error"] is None, f
    assert f["wire_key_updates"] == st["tx_rekeys"], f
    # a lost segment's retransmission fills a hole of the capture: the oracle opened it at its
    # place in the key chain; a spurious one overlaps and must be byte-identical
    assert f["retransmit_mismatch_bytes"] == 0, f
    a = f["delta"]["a"]
    outcomes(a, "Tx", st["tx_rekeys"])


# rekeysplit.py: the frames each case sends, each one segment. Those in which a key-1 record
# ends while the device still has key 0 go up raw, the others are decrypted: under key 0
# before the switch, key 1 after it. The device's epochs prove the frames were as laid out.
@pytest.mark.parametrize(("name", "key0_frames", "key1_frames"), [
    ("rx-rekey-split-header", [0], [2, 3]),  # the header at the switch, split 3 + 2
    ("rx-rekey-whole-header", [0], [2, 3]),  # its control: the header whole
    ("rx-rekey-split-first", [0, 2], [4]),  # the first header after the KeyUpdate
])
def test_rx_rekey_record_header_split_across_frames(facts: dict[str, Any], name: str,
                                                    key0_frames: list[int],
                                                    key1_frames: list[int]) -> None:
    """tls-fixes patch 4: the record start the strparser reports when a header is split
    between a raw and a decrypted skb picks the key; EBADMSG on every run before it."""
    f = case(facts, name)
    assert f["read"] == {"records_read": 5, "error": None, "intact": True}, f
    assert f["sender"] == "ok", f
    b, eth = f["delta"]["b"], f["delta"]["b_eth"]
    outcomes(b, "Rx", 1)
    assert b["TlsRxRekeyOk"] == 1 and eth["rx_tls_rekey"] == 1, (b, eth)
    raw = len(f["frames"]) - len(key0_frames) - len(key1_frames)
    assert eth["rx_tls_auth_fail"] == raw and eth["rx_tls_err"] == 0, eth
    rx = [e["nbytes"] for e in f["epochs_b"] if e["direction"] == "rx"]
    assert rx == [sum(f["frames"][i] for i in key0_frames),
                  sum(f["frames"][i] for i in key1_frames)], (f["frames"], rx)
