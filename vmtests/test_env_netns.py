"""REMOTE_TYPE=netns, NIPA's other kind of remote: the remote end is a namespace on the DUT.

The DUT is the test guest, reached the way a real machine is (an SSH config alias, ktlskit
deployed into its /tmp, splats from /dev/kmsg), so this also runs the real-machine path
with a single guest.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from ktlskit import lab, scenario
from ktlskit.commands.runcmd import run_on_machines
from ktlskit.guest import Guest
from ktlskit.hosts import Host
from ktlskit.hosts.netenv import EnvError, NetEnv


@pytest.fixture()
def netns_env(guest: Host, tmp_path: Path) -> Iterator[NetEnv]:
    if not isinstance(guest, Guest):
        pytest.skip("needs the guest reached over SSH (run from the host)")
    rid = secrets.token_hex(2)
    ns, dut_if, peer_if = f"ktpeer-{rid}", f"ktd{rid}", f"ktp{rid}"
    guest.run(f"ip netns add {ns} && ip link add {dut_if} type veth peer name {peer_if} && "
              f"ip link set {peer_if} netns {ns}", timeout=60)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(lab.ssh_config({"guest": str(guest.boot_dir)}))
    try:
        yield NetEnv(netif=dut_if, local_v4="198.51.100.1", remote_v4="198.51.100.2",
                     local_v6="2001:db8:2::1", remote_v6="2001:db8:2::2", remote_type="netns",
                     remote_args=ns, dut="lab-guest", remote_netif=peer_if,
                     ssh_config=str(cfg), source="the test's env")
    finally:
        guest.run(f"ip link del {dut_if}; ip netns del {ns}", timeout=60, check=False)


def test_remote_in_a_namespace_of_the_dut(netns_env: NetEnv, guest: Host) -> None:
    spec = scenario.ScenarioSpec(topology="link", nbytes=256 << 10, rekey_every=8, ipv6=True)
    rep = run_on_machines(netns_env, spec)
    assert rep.verdict == "pass", [c for c in rep.checks if not c.ok]
    assert list(rep.counters_by_host) == ["lab-guest"]
    assert rep.counters["TlsTxSw"] == 2 and rep.rekeys()["tx"] > 0
    # what the run added (addresses, links up) is gone again
    out = guest.run(f"ip -br addr show {netns_env.netif}", timeout=30).stdout
    assert "198.51.100.1" not in out and "DOWN" in out, out


def test_a_bad_env_is_refused_before_connecting() -> None:
    with pytest.raises(EnvError, match="REMOTE_TYPE='rdma'"):
        NetEnv.parse("NETIF=eth0\nLOCAL_V4=192.0.2.1\nREMOTE_V4=192.0.2.2\nREMOTE_TYPE=rdma\n"
                     "REMOTE_ARGS=x\n", "net.config").check()
