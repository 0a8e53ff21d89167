"""The veth topology built for real on this host's kernel (root, network namespaces): the same
builder the guest uses, with ``ip -batch`` and setns instead of pyroute2."""

from __future__ import annotations

import subprocess

import pytest

from ktlskit import netnsenter, topologies


def _can_make_namespaces() -> bool:
    probe = "ktlskit-probe-ns"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False,
                          timeout=30).returncode == 0
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False, timeout=30)
    return made


pytestmark = pytest.mark.skipif(not _can_make_namespaces(), reason="no network namespaces here")


def test_veth_is_built_addressed_and_removed() -> None:
    topo = topologies.setup("veth")
    try:
        assert {topo.server_ns, topo.client_ns} <= set(netnsenter.names())
        ping = subprocess.run(["ip", "netns", "exec", topo.client_ns, "ping", "-c1", "-W5",
                               topo.server_v4], capture_output=True, text=True, timeout=30,
                              check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        for dev in topo.devices:
            ns, _, ifname = dev.partition("/")
            assert "peer_ifindex" in netnsenter.ethtool_stats(ifname, ns)
    finally:
        assert topologies.teardown(topo.run_id)
    assert not {topo.server_ns, topo.client_ns} & set(netnsenter.names())
