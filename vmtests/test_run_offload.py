"""``ktlskit run`` with device offload on netdevsim, as a user types it: the options go through
the CLI's own parser (``runcmd.spec_from``), so its defaults are what is tested."""

import argparse

import pytest

from ktlskit import scenario
from ktlskit.commands import runcmd
from ktlskit.hosts import Host

pytestmark = [pytest.mark.offload]


def _spec(*argv: str) -> scenario.ScenarioSpec:
    p = argparse.ArgumentParser()
    runcmd.register(p.add_subparsers())
    return runcmd.spec_from(p.parse_args(["run", "--topology", "netdevsim", "--offload",
                                          "--tls-version", "1.3", *argv]))


def _passes(rep: scenario.ScenarioReport) -> None:
    assert rep.verdict == "pass", [c for c in rep.checks if not c.ok]


def test_tls13_offload_without_rekey(guest: Host) -> None:
    rep = scenario.run(guest, _spec("--no-rekey"))
    _passes(rep)
    for name in ("tx_tls_encrypted_packets", "rx_tls_decrypted_packets"):
        assert rep.counters[name] > 0, rep.counters
    assert rep.counters["TlsTxDevice"] == rep.counters["TlsRxDevice"] == 2, rep.counters


def test_tls13_offload_with_a_rekey_every_16_records(guest: Host) -> None:
    """Both ways, >= 2 rekeys each, no fallback, each port's device en/decrypting at least
    half of its stream: offload resumed between rekeys (``scenariorekey.py``)."""
    spec = _spec("--rekey-every", "16")
    assert spec.rcvbuf == scenario.OFFLOAD_REKEY_RCVBUF
    rep = scenario.run(guest, spec)
    _passes(rep)
    rk = rep.rekeys()
    assert rk["tx"] >= 2 and rk["rx"] >= 2, rk
    assert rep.counters.get("TlsTxRekeyFallback", 0) == 0, rep.counters
    assert rep.counters.get("TlsRxRekeyFallback", 0) == 0, rep.counters
