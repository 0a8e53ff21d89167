"""Traffic scenarios (what ``ktlskit run`` does) over every topology, no offload."""

from typing import Any

import pytest

from ktlskit import scenario
from ktlskit.guest import Guest, LocalGuest

TOPOLOGIES = ("loopback", "veth", "netdevsim")


def _assert_pass(rep: scenario.ScenarioReport) -> None:
    bad = [c for c in rep.checks if not c.ok]
    assert rep.verdict == "pass", bad


@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_tls13_streams_without_rekey(guest: Guest | LocalGuest, topo: str) -> None:
    spec = scenario.ScenarioSpec(topology=topo, nbytes=1 << 20, rekey_every=0,
                                 extra_rekey=False)
    rep = scenario.run(guest, spec)
    _assert_pass(rep)
    assert rep.counters["TlsTxSw"] == 2 and rep.counters["TlsRxSw"] == 2


@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_tls13_with_rekeys_under_load(guest: Guest | LocalGuest, topo: str) -> None:
    spec = scenario.ScenarioSpec(topology=topo, nbytes=1 << 20, rekey_every=8)
    rep = scenario.run(guest, spec)
    _assert_pass(rep)
    rk = rep.rekeys()
    assert rk["tx"] >= 2 * (((1 << 20) // 16384) // 8 - 1), rk
    assert rep.counters["TlsTxRekeyOk"] == rk["tx"]
    # a stall is measured for each KeyUpdate that data followed (not for late answers)
    assert 0 < len(rep.stalls_ms()) <= rk["rx"]


def test_tls12_without_rekey_over_netdevsim(guest: Guest | LocalGuest) -> None:
    spec = scenario.ScenarioSpec(topology="netdevsim", version="1.2", cipher="aes-gcm-256",
                                 nbytes=1 << 20, rekey_every=0, extra_rekey=False)
    _assert_pass(scenario.run(guest, spec))


def test_ipv6_over_veth(guest: Guest | LocalGuest) -> None:
    spec = scenario.ScenarioSpec(topology="veth", nbytes=256 << 10, rekey_every=0,
                                 extra_rekey=False, ipv6=True)
    _assert_pass(scenario.run(guest, spec))


def test_offload_without_a_capable_device_is_refused_before_the_guest() -> None:
    spec = scenario.ScenarioSpec(topology="veth", offload=True)
    with pytest.raises(scenario.ScenarioError, match="topology veth has none"):
        spec.check()


def test_the_offload_table_matches_the_kernel(guest: Guest | LocalGuest) -> None:
    """topologies.py says veth has no TLS offload: the guest's kernel agrees (ethtool -K
    refuses the features), and netdevsim's ports take them."""
    res = guest.run(f"{guest.python} -m ktlskit.topology setup veth --offload", timeout=300,
                    check=False)
    assert res.rc != 0 and "tls-hw" in res.stderr, res
    guest.run(f"{guest.python} -m ktlskit.topology setup netdevsim --offload", timeout=300)
    guest.run(f"{guest.python} -m ktlskit.topology teardown", timeout=300)


def test_topology_fixture_sets_up_each_kind(topology: dict[str, Any],
                                            guest: Guest | LocalGuest) -> None:
    ns = topology["server_ns"]
    prefix = f"ip netns exec {ns} " if ns else ""
    addr = topology["server_v4"]
    guest.run(f"{prefix}ip -o addr show | grep -q {addr}", timeout=30)
