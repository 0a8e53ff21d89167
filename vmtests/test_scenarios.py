"""Traffic scenarios (what ``ktlskit run`` does) over every topology, no offload."""

import pytest

from ktlskit import scenario, topologies
from ktlskit.hosts import Host
from ktlskit.hosts.call import RemoteError, call
from ktlskit.topology import Topology

TOPOLOGIES = topologies.names(machines=1)


def _assert_pass(rep: scenario.ScenarioReport) -> None:
    bad = [c for c in rep.checks if not c.ok]
    assert rep.verdict == "pass", bad


@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_tls13_streams_without_rekey(guest: Host, topo: str) -> None:
    spec = scenario.ScenarioSpec(topology=topo, nbytes=1 << 20, rekey_every=0,
                                 extra_rekey=False)
    rep = scenario.run(guest, spec)
    _assert_pass(rep)
    assert rep.counters["TlsTxSw"] == 2 and rep.counters["TlsRxSw"] == 2


@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_tls13_with_rekeys_under_load(guest: Host, topo: str) -> None:
    spec = scenario.ScenarioSpec(topology=topo, nbytes=1 << 20, rekey_every=8)
    rep = scenario.run(guest, spec)
    _assert_pass(rep)
    rk = rep.rekeys()
    assert rk["tx"] >= 2 * (((1 << 20) // 16384) // 8 - 1), rk
    assert rep.counters["TlsTxRekeyOk"] == rk["tx"]
    # a stall is measured for each KeyUpdate that data followed (not for late answers)
    assert 0 < len(rep.stalls_ms()) <= rk["rx"]


def test_tls12_without_rekey_over_netdevsim(guest: Host) -> None:
    spec = scenario.ScenarioSpec(topology="netdevsim", version="1.2", cipher="aes-gcm-256",
                                 nbytes=1 << 20, rekey_every=0, extra_rekey=False)
    _assert_pass(scenario.run(guest, spec))


def test_ipv6_over_veth(guest: Host) -> None:
    spec = scenario.ScenarioSpec(topology="veth", nbytes=256 << 10, rekey_every=0,
                                 extra_rekey=False, ipv6=True)
    _assert_pass(scenario.run(guest, spec))


def test_offload_without_a_capable_device_is_refused_before_the_guest() -> None:
    spec = scenario.ScenarioSpec(topology="veth", offload=True)
    with pytest.raises(scenario.ScenarioError, match="topology veth has none"):
        spec.check()


def test_the_offload_table_matches_the_kernel(guest: Host) -> None:
    """topologies.py says veth has no TLS offload: the guest's kernel agrees (ethtool -K
    refuses the features), and netdevsim's ports take them. A failed setup leaves nothing."""
    before = guest.run("ip netns list", timeout=30).stdout
    with pytest.raises(RemoteError, match="tls-hw") as err:
        call(guest, topologies.setup, "veth", True)
    assert err.value.kind == "TopologyError"
    assert guest.run("ip netns list", timeout=30).stdout == before, "setup left namespaces"
    topo = call(guest, topologies.setup, "netdevsim", True)
    assert topo.offload and topo.kind == "netdevsim"
    assert call(guest, topologies.teardown, topo.run_id)
    assert not call(guest, topologies.teardown, topo.run_id)  # nothing left to remove


def test_topology_fixture_sets_up_each_kind(topology: Topology, guest: Host) -> None:
    ns = topology.server_ns
    prefix = f"ip netns exec {ns} " if ns else ""
    guest.run(f"{prefix}ip -o addr show | grep -q {topology.server_v4}", timeout=30)


def test_two_runs_coexist(guest: Host) -> None:
    """Generated names: two netdevsim pairs at once, each removed on its own."""
    first = call(guest, topologies.setup, "netdevsim")
    second = call(guest, topologies.setup, "netdevsim")
    try:
        assert set(first.namespaces()).isdisjoint(second.namespaces())
        assert set(first.devices).isdisjoint(second.devices)
    finally:
        call(guest, topologies.teardown, first.run_id)
    listed = guest.run("ip netns list", timeout=30).stdout
    assert second.server_ns in listed and first.server_ns not in listed
    call(guest, topologies.teardown, second.run_id)
