"""The topology table and the generated names that let two runs coexist."""

from __future__ import annotations

import argparse

import pytest

from ktlskit import scenario, topologies
from ktlskit.commands.runcmd import spec_from
from ktlskit.topology import Names, TopologyError


def test_one_table_for_every_reader() -> None:
    assert topologies.names(machines=1) == ("loopback", "veth", "netdevsim")
    assert topologies.names(machines=2) == ("link",)
    caps = topologies.lookup("netdevsim").offload
    assert caps is not None and caps.device_counters == topologies.DEVICE_TLS_COUNTERS
    assert topologies.offload_problem("veth", "1.2", "aes-gcm-128") is not None
    assert topologies.offload_problem("netdevsim", "1.2", "aes-gcm-128") is None
    with pytest.raises(TopologyError, match="unknown topology 'wifi'"):
        topologies.lookup("wifi")


def test_a_two_machine_topology_is_not_built_on_one_host() -> None:
    with pytest.raises(TopologyError, match="spans two machines"):
        topologies.build("link", False, Names.generate())


def test_generated_names_fit_and_differ() -> None:
    seen = {Names.generate() for _ in range(50)}
    assert len({n.run_id for n in seen}) == 50
    for n in seen:
        assert all(len(i) <= 15 for i in n.ifnames)  # IFNAMSIZ
        assert n.nsim_ids[1] == n.nsim_ids[0] + 1 and n.nsim_ids[0] >= 10000
        assert len(set(n.ns)) == 2
    assert Names.generate("0a0b0c") == Names.generate("0a0b0c")


def _args(**kw: object) -> argparse.Namespace:
    base = {"no_rekey": False, "rekey_every": 64, "topology": None, "offload": False,
            "tls_version": "1.3", "cipher": "aes-gcm-128", "bytes": 1 << 20, "ipv6": False,
            "rcvbuf": None}
    return argparse.Namespace(**{**base, **kw})


def test_the_cli_reads_the_table() -> None:
    assert spec_from(_args()).topology == "veth"
    assert spec_from(_args(), machines=True).topology == "link"
    with pytest.raises(scenario.ScenarioError, match="needs two machines"):
        spec_from(_args(topology="link"))
    with pytest.raises(scenario.ScenarioError, match="one-machine topology"):
        spec_from(_args(topology="veth"), machines=True)
