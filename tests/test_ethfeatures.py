"""Offload features through the ioctl, against this host's kernel: a real veth pair in a real
network namespace, compared with ethtool itself."""

from __future__ import annotations

import subprocess

import pytest

from ktlskit import ethfeatures


def _ethtool_k(*prefix: str, ifname: str) -> dict[str, str]:
    out = subprocess.run([*prefix, "ethtool", "-k", ifname], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    shown = {}
    for line in out.splitlines()[1:]:
        name, _, state = line.strip().partition(": ")
        shown[name] = state
    return shown


def test_features_read_as_ethtool_shows_them(veth_in_netns: tuple[str, str, str]) -> None:
    _ns, a, _b = veth_in_netns
    ours = ethfeatures.features(a)
    theirs = _ethtool_k(ifname=a)
    same_names = set(ours) & set(theirs)  # ethtool shows a few under older names (rx, tx)
    assert len(same_names) > 30, sorted(theirs)
    assert {n: ours[n].shown() for n in same_names} == {n: theirs[n] for n in same_names}


def test_one_request_turns_features_off_and_on_inside_a_namespace(
        veth_in_netns: tuple[str, str, str]) -> None:
    ns, _a, b = veth_in_netns
    wanted = {"rx-checksum": False, "tx-scatter-gather": False}
    now = ethfeatures.set_features(b, wanted, ns)
    assert ethfeatures.not_taken(wanted, now) == []
    shown = _ethtool_k("ip", "netns", "exec", ns, ifname=b)
    assert (shown["rx-checksumming"], shown["tx-scatter-gather"]) == ("off", "off")
    back = {"rx-checksum": True, "tx-scatter-gather": True}
    assert ethfeatures.not_taken(back, ethfeatures.set_features(b, back, ns)) == []
    assert _ethtool_k("ip", "netns", "exec", ns, ifname=b)["rx-checksumming"] == "on"


def test_a_fixed_feature_does_not_take_and_says_so(veth_in_netns: tuple[str, str, str]) -> None:
    _ns, a, _b = veth_in_netns
    wanted = {"tls-hw-tx-offload": True}  # veth has no TLS offload
    now = ethfeatures.set_features(a, wanted)
    assert ethfeatures.not_taken(wanted, now) == ["tls-hw-tx-offload: off [fixed]"]


def test_an_unknown_name_changes_nothing(veth_in_netns: tuple[str, str, str]) -> None:
    _ns, a, _b = veth_in_netns
    before = ethfeatures.features(a)
    with pytest.raises(ValueError, match="no feature named rx-checksumz"):
        ethfeatures.set_features(a, {"rx-checksum": False, "rx-checksumz": True})
    assert ethfeatures.features(a) == before


def test_a_missing_device_is_an_error() -> None:
    with pytest.raises(OSError):
        ethfeatures.features("ktnosuchdev")
