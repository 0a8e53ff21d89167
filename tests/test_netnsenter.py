"""setns and ethtool statistics without pyroute2, against this host's kernel: a real veth pair
and a real network namespace, compared with iproute2 and ethtool themselves."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from ktlskit import netnsenter


def _sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def _ethtool_s(*prefix: str, ifname: str) -> dict[str, int]:
    out = {}
    for line in _sh(*prefix, "ethtool", "-S", ifname).splitlines()[1:]:
        key, _, value = line.strip().rpartition(": ")
        out[key] = int(value)
    return out


def test_stats_match_ethtool_on_the_host(veth_in_netns: tuple[str, str, str]) -> None:
    _ns, a, _b = veth_in_netns
    ours = netnsenter.ethtool_stats(a)
    assert ours and "peer_ifindex" in ours, ours
    assert ours == _ethtool_s(ifname=a)


def test_stats_match_ethtool_inside_a_namespace(veth_in_netns: tuple[str, str, str]) -> None:
    ns, _a, b = veth_in_netns
    assert netnsenter.ethtool_stats(b, ns) == _ethtool_s("ip", "netns", "exec", ns, ifname=b)


def test_a_device_without_statistics_gives_an_empty_dict() -> None:
    assert netnsenter.ethtool_stats("lo") == {}


def test_a_missing_device_is_an_error() -> None:
    with pytest.raises(OSError):
        netnsenter.ethtool_stats("ktnosuchdev")
    with pytest.raises(ValueError, match="not an interface name"):
        netnsenter.ethtool_stats("a-name-longer-than-ifnamsiz")


def test_a_socket_made_inside_belongs_to_the_namespace(
        veth_in_netns: tuple[str, str, str]) -> None:
    ns, _a, _b = veth_in_netns
    assert ns in netnsenter.names()
    home = os.readlink("/proc/thread-self/ns/net")
    with netnsenter.entered(ns):
        assert os.readlink("/proc/thread-self/ns/net") != home
        inside = socket.socket()
    assert os.readlink("/proc/thread-self/ns/net") == home
    with inside, socket.socket() as outside:
        inside.bind(("198.51.100.7", 0))  # that address exists only in the namespace
        with pytest.raises(OSError):
            outside.bind(("198.51.100.7", 0))


def test_entering_a_missing_namespace_names_it() -> None:
    with pytest.raises(FileNotFoundError, match="ktlskit-nosuch"), \
            netnsenter.entered("ktlskit-nosuch"):
        pass
