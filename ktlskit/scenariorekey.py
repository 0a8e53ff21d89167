"""The verdict on rekeys of device offloaded sockets (patches/tls-rekey).

A KeyUpdate on an offloaded direction ends in one outcome: the device took the new key
(``TlsTxRekeyOk``/``TlsRxRekeyOk``), it did not and the direction went on in software
(``...Fallback``), or the socket was closed first (``...Aborted``); ``TlsCurr*Rekey`` counts
the ones still in progress. A healthy run has no fallback, and the device, re-armed after
every rekey, handled at least half of each direction's bytes (``ethtool -S``, per port:
each port's TX is one direction and its RX the other).
"""

from __future__ import annotations

from .scenariocheck import Check

SHARE = 0.5  # of each direction's bytes that the device must en/decrypt


def offload_rekey_checks(k: dict[str, int], rekeys: dict[str, int]) -> list[Check]:
    """Every rekey the peers did has one outcome, none is a fallback, none is left."""
    out = []
    for d in ("tx", "rx"):
        D = d.capitalize()
        ok, fb, ab = (k.get(f"Tls{D}Rekey{o}", 0) for o in ("Ok", "Fallback", "Aborted"))
        out.append(Check(f"Tls{D}RekeyOk + Fallback + Aborted = rekeys",
                         ok + fb + ab == rekeys[d],
                         f"ok {ok}, fallback {fb}, aborted {ab}, peers {rekeys[d]}"))
        out.append(Check(f"Tls{D}RekeyFallback unchanged", fb == 0, f"delta {fb}"))
        out.append(Check(f"TlsCurr{D}Rekey back to 0", k.get(f"TlsCurr{D}Rekey", 0) == 0,
                         f"delta {k.get(f'TlsCurr{D}Rekey', 0)}"))
    return out


def device_share_checks(k: dict[str, int], nbytes: int) -> list[Check]:
    """Each port's device encrypted and decrypted at least ``SHARE`` of the stream's bytes."""
    out = []
    for stat, what in (("tx_tls_encrypted_bytes", "encrypted"),
                       ("rx_tls_decrypted_bytes", "decrypted")):
        ports = sorted(key.rpartition(":")[0] for key in k if key.endswith(f":{stat}"))
        if len(ports) < 2:
            out.append(Check(f"device {what} on both ports", False,
                             f"{stat} moved on {ports or 'no port'}"))
            continue
        for port in ports:
            got = k[f"{port}:{stat}"]
            out.append(Check(f"{port} {what} >= {SHARE:.0%} of the stream", got >= nbytes * SHARE,
                             f"{got} of {nbytes} bytes"))
    return out


MIN_REKEYS = 2  # each way, for a run to say anything about re-arming the device


def rekeys_each_way(peers: dict[str, dict]) -> Check:
    """Both peers sent at least ``MIN_REKEYS`` KeyUpdates."""
    sent = {role: int(p.get("tx_rekeys", 0)) for role, p in sorted(peers.items())}
    return Check(f">= {MIN_REKEYS} rekeys each way",
                 len(sent) == 2 and min(sent.values()) >= MIN_REKEYS,
                 ", ".join(f"{r} sent {n}" for r, n in sent.items()))
