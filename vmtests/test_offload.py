"""kTLS device offload on netdevsim (the patches/tls-offload series) in a real guest.

Every case runs in the guest (``ktlskit.offload.run.run_cases``, through the call seam) on two
netdevsim ports linked across two namespaces (``a`` = client side ``kta0``, ``b`` = server
side ``ktb0``) and reports facts plus counter deltas per namespace (``/proc/net/tls_stat``)
and per port (``ethtool -S``). TLS 1.2 and TLS 1.3 run the same cases. A kernel splat during
a test fails it (the ktlskit plugin). CI runs this file a second time on the debug profile
(KASAN, lockdep, kmemleak; ``-m debug --kernel-profile debug``): each case that exercises a path
of its own, once, under TLS 1.3 with AES-GCM-128 (``DEBUG_RUN``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from ktlskit.hosts import Host
from ktlskit.hosts.call import call
from ktlskit.offload.run import run_cases

pytestmark = pytest.mark.offload

VERSIONS = ("1.2", "1.3")
CIPHERS = ("aes-gcm-128", "aes-gcm-256")
# What CI runs again on the debug kernel (marker ``debug``): each path once, under TLS 1.3 (the
# offload the series adds; the in-tree selftest covers both versions there) and AES-GCM-128.
DEBUG_RUN = ("1.3", "aes-gcm-128")
OVERHEAD = {"1.2": 29, "1.3": 22}  # header + explicit nonce + tag / header + type + tag
REKEY_ERROR = {"1.2": "EBUSY", "1.3": None}  # TLS 1.3 rekeys offloaded directions (tls-rekey)
HANDSHAKE_TAIL = 12  # the wire case ends with a 12-byte handshake record
MSS_MAX = 1460  # netdevsim's MTU is 1500
TLS_ETH = ("tx_tls_encrypted_packets", "tx_tls_encrypted_bytes", "tx_tls_ooo", "tx_tls_ctx",
           "rx_tls_decrypted_packets", "rx_tls_decrypted_bytes", "rx_tls_ctx",
           "rx_tls_resync_req_pkt", "rx_tls_resync_res_ok", "rx_tls_auth_fail", "rx_tls_err")


def _marked(debug: bool, *values: str) -> Any:
    """A parameter set, marked ``debug`` when it is ``DEBUG_RUN``'s (and ``debug`` is asked)."""
    mark = debug and values == DEBUG_RUN[:len(values)]
    return pytest.param(*values, marks=[pytest.mark.debug] if mark else [])


def versions(debug: bool = True) -> list[Any]:
    return [_marked(debug, v) for v in VERSIONS]


def versions_ciphers(debug: bool = True) -> list[Any]:
    return [_marked(debug, v, c) for v in VERSIONS for c in CIPHERS]


def _specs(case: str, ciphers: tuple[str, ...] = ("aes-gcm-128",)) -> list[str]:
    return [f"{case}:{v}:{c}" for v in VERSIONS for c in ciphers]


# The guest-side cases each test asserts on, in the order they run (device removal last).
CASES = {
    "test_offload_both_directions": _specs("bulk", CIPHERS),
    "test_device_ciphertext_opens_with_the_reference_layer": _specs("wire", CIPHERS),
    "test_link_down_moves_tx_to_the_software_fallback": _specs("down"),
    "test_loss_on_the_offloaded_sender": _specs("loss"),
    "test_reordering_towards_the_rx_offload": _specs("reorder"),
    "test_user_space_records_towards_the_rx_offload": _specs("records"),
    "test_failed_tls_dev_add_falls_back_to_software": _specs("fail-add"),
    "test_refused_cipher_falls_back_only_for_that_cipher": _specs("refuse"),
    "test_corrupted_record_is_a_decrypt_error": _specs("corrupt"),
    "test_forced_resync_recovers": _specs("resync"),
    "test_new_key_for_an_offloaded_direction": _specs("rekey"),
    "test_offload_features_off_use_software": _specs("software"),
    "test_close_or_shutdown_right_after_eagain_loses_nothing": _specs("fin-nonblock"),
    "test_software_close_or_shutdown_right_after_eagain_loses_nothing":
        _specs("fin-nonblock-sw"),
    "test_device_deleted_with_live_offloaded_sockets": _specs("delete"),
}


@pytest.fixture(scope="module")
def mbytes(request: pytest.FixtureRequest) -> int:
    """Bytes per bulk stream: 4 MiB, 1 MiB on the (much slower) debug kernel."""
    return (1 if request.config.getoption("--kernel-profile") == "debug" else 4) << 20


@pytest.fixture(scope="module")
def all_facts(request: pytest.FixtureRequest, guest: Host, mbytes: int) -> dict[str, Any]:
    """Every selected test's cases, run in one guest process (one Python start under TCG).

    A splat while they run fails the first test (the plugin checks after each test).
    """
    specs: list[str] = []
    for item in request.session.items:
        if item.module is not request.module:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        specs += [c for c in CASES[getattr(item, "originalname", item.name)]
                  if _selected(c, params) and c not in specs]
    return call(guest, run_cases, specs, mbytes, timeout=3600)


def _selected(spec: str, params: dict[str, Any]) -> bool:
    """Whether the case ``CASE:VERSION:CIPHER`` is the one a test item's parameters name."""
    _, version, cipher = spec.split(":")
    return params.get("version", version) == version and params.get("cipher", cipher) == cipher


@pytest.fixture()
def offload(all_facts: dict[str, Any], request: pytest.FixtureRequest) -> Any:
    """The facts of one case; they also go into the JUnit report as a property."""
    def get(spec: str) -> dict[str, Any]:
        facts = all_facts[spec]
        request.node.user_properties.append((spec, json.dumps(facts, sort_keys=True)))
        assert "exception" not in facts, facts
        return facts
    return get


def _zero(d: dict[str, int], *names: str) -> None:
    bad = {n: d.get(n) for n in names if d.get(n, 0) != 0}
    assert not bad, f"expected no change in {bad}"


def _check_tx_bytes(eth: dict[str, int], plaintext: int, min_records: int,
                    overhead: int) -> int:
    """tx_tls_encrypted_bytes is the plaintext plus the overhead of each record when nothing
    was resent."""
    enc = eth["tx_tls_encrypted_bytes"]
    pkts = eth["tx_tls_encrypted_packets"]
    if eth["tx_tls_ooo"] == 0:
        assert (enc - plaintext) % overhead == 0, (enc, plaintext, overhead)
        records = (enc - plaintext) // overhead
        assert min_records <= records <= 2 * min_records, (records, min_records)
    else:
        assert enc >= plaintext + overhead * min_records, (enc, plaintext)
    assert math.ceil(enc / 65536) <= pkts and math.ceil(enc / MSS_MAX) <= pkts <= enc, (pkts, enc)
    return enc


@pytest.mark.parametrize(("version", "cipher"), versions_ciphers())
def test_offload_both_directions(offload: Any, mbytes: int, version: str, cipher: str) -> None:
    f = offload(f"bulk:{version}:{cipher}")
    ovh = OVERHEAD[version]
    assert f["bulk"]["up_ok"] and f["bulk"]["down_ok"], f["bulk"]
    assert f["pp"]["pp_ok"]
    for side in ("a", "b"):
        cur = f["curr_open"][side]
        assert cur["TlsCurrTxDevice"] == 1 and cur["TlsCurrRxDevice"] == 1, cur
        _zero(cur, "TlsCurrTxSw", "TlsCurrRxSw")
        d = f["delta"][side]
        assert d["TlsTxDevice"] == 1 and d["TlsRxDevice"] == 1, d
        _zero(d, "TlsTxSw", "TlsRxSw", "TlsDecryptError", "TlsCurrTxDevice", "TlsCurrRxDevice")
        eth = f["delta"][f"{side}_eth"]
        assert eth["tx_tls_ctx"] == 1 and eth["rx_tls_ctx"] == 1, eth
        assert eth["tx_tls_del"] == 1 and eth["rx_tls_del"] == 1, eth
        _zero(eth, "rx_tls_err", "rx_tls_auth_fail", "tx_tls_drop_no_sync_data")
    # Bulk: each side encrypted exactly its stream (16 KiB records) on its port.
    calls = f["bulk"]["send_calls"]
    for side, n in (("a", calls[0]), ("b", calls[1])):
        _check_tx_bytes(f["bulk_delta"][f"{side}_eth"], mbytes, n, ovh)
    # ... and the receiving port decrypted all of it, records split across frames
    # included, unless something was sent twice (then whatever went up untouched).
    for tx, rx in (("a_eth", "b_eth"), ("b_eth", "a_eth")):
        sent, got = f["bulk_delta"][tx], f["bulk_delta"][rx]
        if sent["tx_tls_ooo"] == 0:
            assert got["rx_tls_decrypted_bytes"] == sent["tx_tls_encrypted_bytes"], (tx, got)
        assert got["rx_tls_decrypted_packets"] > 0, (rx, got)
    # Ping-pong: every 1000-byte record a sends arrives whole in one frame and
    # the device decrypts it; so does every 1-byte answer on a's port.
    pp_a, pp_b = f["pp_delta"]["a_eth"], f["pp_delta"]["b_eth"]
    assert pp_a["tx_tls_encrypted_bytes"] == 200 * (1000 + ovh), pp_a
    assert pp_b["tx_tls_encrypted_bytes"] == 200 * (1 + ovh), pp_b
    assert pp_b["rx_tls_decrypted_packets"] == 200, pp_b
    assert pp_b["rx_tls_decrypted_bytes"] == 200 * (1000 + ovh), pp_b
    assert pp_a["rx_tls_decrypted_packets"] == 200, pp_a
    assert pp_a["rx_tls_decrypted_bytes"] == 200 * (1 + ovh), pp_a
    # Whatever the device decrypted, it never decrypted more than was encrypted.
    for rx, tx in (("b_eth", "a_eth"), ("a_eth", "b_eth")):
        got, sent = f["delta"][rx], f["delta"][tx]
        assert 0 < got["rx_tls_decrypted_bytes"] <= sent["tx_tls_encrypted_bytes"]


# the device's ciphertext is the same on the debug kernel: not run again there
@pytest.mark.parametrize(("version", "cipher"), versions_ciphers(debug=False))
def test_device_ciphertext_opens_with_the_reference_layer(offload: Any, mbytes: int,
                                                          version: str, cipher: str) -> None:
    f = offload(f"wire:{version}:{cipher}")
    assert f["received_ok"], "the software kTLS receiver got other data"
    assert f["last_record"] == [22, True], "the handshake record arrived changed"
    assert f["socket_drops"] == 0, "the packet socket lost frames: capture incomplete"
    assert f["isn_seen"] and f["fin_seen"], f
    assert f["decrypt_error"] is None, f["decrypt_error"]
    assert f["wire_plaintext_ok"] and f["wire_plaintext_bytes"] == mbytes, f
    # TLS 1.3: the device put each record's type inside the encryption (outer type 23)
    assert f["wire_types"] == [23, 22], f["wire_types"]
    assert f["records"] >= f["send_calls"] + 1, f
    assert f["retransmit_mismatch_bytes"] == 0, "a retransmit carried other ciphertext"
    eth = f["delta"]["a_eth"]
    assert eth["tx_tls_encrypted_bytes"] >= f["wire_bytes"] - f["retransmitted_bytes"]
    if eth["tx_tls_ooo"] == 0:
        assert eth["tx_tls_encrypted_bytes"] == f["wire_bytes"] == mbytes + HANDSHAKE_TAIL + \
            OVERHEAD[version] * f["records"], (eth, f)
    assert f["delta"]["a"]["TlsTxDevice"] == 1 and f["delta"]["b"]["TlsRxSw"] == 1
    _zero(f["delta"]["b"], "TlsDecryptError", "TlsRxDevice")


@pytest.mark.parametrize("version", versions())
def test_link_down_moves_tx_to_the_software_fallback(offload: Any, mbytes: int,
                                                      version: str) -> None:
    """The second half of the stream is encrypted by tls_device_fallback.c, not the device:
    its records must open with the reference layer just the same."""
    f = offload(f"down:{version}:aes-gcm-128")
    assert f["received_ok"] and f["last_record"] == [22, True], f
    assert f["decrypt_error"] is None and f["socket_drops"] == 0, f
    assert f["wire_plaintext_ok"] and f["wire_types"] == [23, 22], f
    assert f["retransmit_mismatch_bytes"] == 0, "a retransmit carried other ciphertext"
    eth = f["delta"]["a_eth"]
    assert eth["tx_tls_ctx"] == 1 and eth["tx_tls_del"] == 1, "device context gone at down"
    # the device encrypted the first half at most: the fallback did the rest
    assert 0 < eth["tx_tls_encrypted_bytes"] < f["wire_bytes"], (eth, f["wire_bytes"])
    _zero(f["delta"]["b"], "TlsDecryptError")


@pytest.mark.parametrize("version", versions())
def test_loss_on_the_offloaded_sender(offload: Any, mbytes: int, version: str) -> None:
    f = offload(f"loss:{version}:aes-gcm-128")
    assert f["received_ok"] and f["wire_plaintext_ok"], f
    assert f["decrypt_error"] is None and f["socket_drops"] == 0, f
    assert f["retransmit_mismatch_bytes"] == 0, "a retransmit carried other ciphertext"
    eth = f["delta"]["a_eth"]
    _zero(eth, "tx_tls_drop_no_sync_data")
    assert f["rx_bulk"]["up_ok"] and f["rx_bulk"]["down_ok"], f["rx_bulk"]
    for side in ("a", "b"):
        _zero(f["rx_delta"][side], "TlsDecryptError", "TlsTxSw", "TlsRxSw")
    # The device must have met retransmits (out-of-order segments) under the loss. Counted over
    # both transfers: one TLS 1.3 transfer of ~6 runs showed none at the device under 3% loss
    # (an open question of issue #10), and a test that fails on one random draw is not CI's.
    ooo = eth["tx_tls_ooo"], f["rx_delta"]["a_eth"]["tx_tls_ooo"]
    assert sum(ooo) > 0, f"3% loss on two transfers and no out-of-order segment: {ooo}"
    # Records in frames of their own under the same loss: the device decrypts them.
    assert f["rx_pp"]["pp_ok"]
    pp = f["rx_pp_delta"]
    assert pp["b_eth"]["rx_tls_decrypted_packets"] > 0, pp["b_eth"]
    _zero(pp["b"], "TlsDecryptError")
    _zero(pp["b_eth"], "rx_tls_err", "rx_tls_auth_fail")


@pytest.mark.parametrize("version", versions())
def test_reordering_towards_the_rx_offload(offload: Any, mbytes: int, version: str) -> None:
    f = offload(f"reorder:{version}:aes-gcm-128")
    assert f["down_ok"] and f["pp"]["pp_ok"], f
    d, eth = f["delta"]["a"], f["delta"]["a_eth"]
    assert d["TlsRxDevice"] == 1 and d["TlsDecryptError"] == 0, d
    _zero(eth, "rx_tls_auth_fail")
    assert eth["rx_tls_resync_req_pkt"] > 0 and eth["rx_tls_resync_res_ok"] > 0, eth
    # the stack counts every tls_dev_resync() call, the device what it did with it
    assert d["TlsRxDeviceResync"] == eth["rx_tls_resync_res_ok"] + eth["rx_tls_resync_res_skip"]
    assert f["pp_delta"]["a_eth"]["rx_tls_decrypted_packets"] > 0, f["pp_delta"]


@pytest.mark.parametrize("version", versions())
def test_user_space_records_towards_the_rx_offload(offload: Any, version: str) -> None:
    """Records sealed by ktlskit.records (TLS 1.3: with padding) open in the device."""
    f = offload(f"records:{version}:aes-gcm-128")
    assert f["types_ok"] and f["data_ok"], f
    d, eth = f["delta"]["b"], f["delta"]["b_eth"]
    _zero(d, "TlsDecryptError")
    assert eth["rx_tls_decrypted_bytes"] == f["wire_bytes"], eth
    _zero(eth, "rx_tls_err", "rx_tls_auth_fail")


@pytest.mark.parametrize("version", versions())
def test_failed_tls_dev_add_falls_back_to_software(offload: Any, version: str) -> None:
    f = offload(f"fail-add:{version}:aes-gcm-128")
    assert f["knobs_after_add"] == ["0", "0"], "one-shot knobs must be consumed"
    assert f["bulk"]["up_ok"] and f["bulk"]["down_ok"]
    a, b = f["delta"]["a"], f["delta"]["b"]
    assert (a["TlsTxSw"], a["TlsTxDevice"], a["TlsRxDevice"]) == (1, 0, 1), a
    assert (b["TlsRxSw"], b["TlsRxDevice"], b["TlsTxDevice"]) == (1, 0, 1), b
    assert f["delta"]["a_eth"]["tx_tls_ctx"] == 0 and f["delta"]["b_eth"]["rx_tls_ctx"] == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_refused_cipher_falls_back_only_for_that_cipher(offload: Any, version: str) -> None:
    f = offload(f"refuse:{version}:aes-gcm-128")
    for cipher, dev, sw in (("aes-gcm-256", 0, 1), ("aes-gcm-128", 1, 0)):
        assert f[cipher]["up_ok"] and f[cipher]["down_ok"], cipher
        for side in ("a", "b"):
            d = f[f"{cipher}_delta"][side]
            assert (d["TlsTxDevice"], d["TlsRxDevice"]) == (dev, dev), (cipher, d)
            assert (d["TlsTxSw"], d["TlsRxSw"]) == (sw, sw), (cipher, d)


@pytest.mark.parametrize("version", versions())
def test_corrupted_record_is_a_decrypt_error(offload: Any, version: str) -> None:
    f = offload(f"corrupt:{version}:aes-gcm-128")
    assert f["knob_after"] == "0"
    assert f["error"] == "EBADMSG", f
    # The bad record stays at the head of the queue: every read fails on it again.
    assert f["second_error"] == "EBADMSG", f
    assert f["delta"]["b"]["TlsDecryptError"] == 2, f["delta"]["b"]
    eth = f["delta"]["b_eth"]
    assert eth["rx_tls_auth_fail"] == 1, "the device must see the bad tag"
    _zero(eth, "rx_tls_err", "rx_tls_decrypted_packets")


@pytest.mark.parametrize("version", versions())
def test_forced_resync_recovers(offload: Any, version: str) -> None:
    f = offload(f"resync:{version}:aes-gcm-128")
    assert f["pp"]["pp_ok"] and f["knob_after"] == "0", f
    eth, d = f["delta"]["b_eth"], f["delta"]["b"]
    assert eth["rx_tls_resync_req_pkt"] >= 1 and eth["rx_tls_resync_res_ok"] >= 1, eth
    assert d["TlsRxDeviceResync"] >= 1 and d["TlsDecryptError"] == 0, d
    # Without the resync the device would decrypt none of the 200 records.
    assert eth["rx_tls_decrypted_packets"] >= 190, eth


@pytest.mark.parametrize("version", versions())
def test_new_key_for_an_offloaded_direction(offload: Any, version: str) -> None:
    """TLS 1.2 refuses a second key (EBUSY); TLS 1.3 takes it for the offloaded TX (port a)
    and RX (port b) without a KeyUpdate on the wire, and data flows under it both ways."""
    f = offload(f"rekey:{version}:aes-gcm-128")
    err = REKEY_ERROR[version]
    assert (f["tx_error"], f["rx_error"]) == (err, err), f
    assert f["pp"]["pp_ok"], "the connection must keep working"
    a, b = f["delta"]["a"], f["delta"]["b"]
    assert (a["TlsTxDevice"], a["TlsRxSw"], b["TlsTxSw"], b["TlsRxDevice"]) == (1, 1, 1, 1)
    _zero(a, "TlsDecryptError")
    _zero(b, "TlsDecryptError")
    if version == "1.2":
        assert a["TlsTxRekeyError"] == 1 and b["TlsRxRekeyError"] == 1, (a, b)
        return
    # nothing was in flight under the old TX key: the device took the new one at once
    assert a["TlsTxRekeyOk"] == 1 and a["TlsTxRekeyFallback"] == 0, a
    # RX completes once the stream passes what the device saw with the old key; 20 small
    # records may not get there before the close
    assert b["TlsRxRekeyOk"] + b["TlsRxRekeyAborted"] == 1 and b["TlsRxRekeyFallback"] == 0, b
    assert a["TlsCurrTxRekey"] == 0 and b["TlsCurrRxRekey"] == 0, (a, b)
    # the software direction (b -> a) rekeyed and carried data under the new key
    assert f["key_update_seen"] and f["pp_after_sw_rekey"]["pp_ok"], f
    assert b["TlsTxRekeyOk"] == 1 and a["TlsRxRekeyOk"] == 1, (a, b)


@pytest.mark.parametrize("version", VERSIONS)
def test_offload_features_off_use_software(offload: Any, version: str) -> None:
    f = offload(f"software:{version}:aes-gcm-128")
    assert f["bulk"]["up_ok"] and f["bulk"]["down_ok"] and f["pp"]["pp_ok"]
    for side in ("a", "b"):
        cur = f["curr_open"][side]
        assert cur["TlsCurrTxSw"] == 1 and cur["TlsCurrRxSw"] == 1, cur
        d = f["delta"][side]
        assert (d["TlsTxSw"], d["TlsRxSw"], d["TlsTxDevice"], d["TlsRxDevice"]) == \
            (1, 1, 0, 0), d
        _zero(f["delta"][f"{side}_eth"], *TLS_ETH)


def _check_fin_delivered(f: dict[str, Any]) -> None:
    """Both runs of a fin-nonblock case filled the window, and all that send() took arrived."""
    for how in ("close", "shutdown"):
        assert f[how]["eagain"], f"{how}: the sender never filled the window: nothing tested"
        assert f[how]["received_ok"], (how, f[how]["accepted"], f[how]["received"],
                                       f[how]["held_at_fin"])


@pytest.mark.parametrize("version", versions())
def test_close_or_shutdown_right_after_eagain_loses_nothing(offload: Any, version: str) -> None:
    """close() and shutdown(SHUT_WR) send the rest of a record TCP took only part of before
    the FIN (7.3's device path sent the FIN behind a truncated record)."""
    f = offload(f"fin-nonblock:{version}:aes-gcm-128")
    _check_fin_delivered(f)
    assert f["delta"]["a"]["TlsTxDevice"] == 2, f["delta"]["a"]


@pytest.mark.parametrize("version", versions())
def test_software_close_or_shutdown_right_after_eagain_loses_nothing(offload: Any,
                                                                      version: str) -> None:
    """The same with offload off: software kTLS keeps what TCP did not take on its own list
    (tx_list); a FIN right after EAGAIN must not cut it off either (7.3 dropped it when the
    send buffer filled mid-record; tls-fixes/0004). ``held_at_fin`` says whether a run got
    there; the tls selftest's ``*_right_after_eagain`` cases get there every time."""
    f = offload(f"fin-nonblock-sw:{version}:aes-gcm-128")
    _check_fin_delivered(f)
    assert f["delta"]["a"]["TlsTxSw"] == 2 and f["delta"]["a"]["TlsTxDevice"] == 0, \
        f["delta"]["a"]


@pytest.mark.parametrize("version", versions())
def test_device_deleted_with_live_offloaded_sockets(offload: Any, version: str) -> None:
    f = offload(f"delete:{version}:aes-gcm-128")
    assert f["warmup"]["pp_ok"]
    before = f["curr_before"]  # two connections, each with both ends offloaded both ways
    assert before.get("TlsCurrTxDevice") == 4 and before.get("TlsCurrRxDevice") == 4, before
    assert f["curr_after_close"] == {}, "sockets closed, yet kTLS contexts are still counted"
    leaks = f["kmemleak"]
    assert leaks in ("absent", ""), f"kmemleak after device removal:\n{leaks[:4000]}"
