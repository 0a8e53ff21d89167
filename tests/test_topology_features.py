"""Reading ``ethtool -k``: the TLS offload features' states, as the kernel prints them."""

from ktlskit.topology import TLS_FEATURES, _features

# ethtool 6.1 -k on a veth (excerpt) and on a netdevsim port with offload on
VETH = """Features for kta0:
rx-checksumming: on
tx-checksumming: on
tls-hw-tx-offload: off [fixed]
tls-hw-rx-offload: off [fixed]
tls-hw-record: off [fixed]
"""
NSIM = """Features for kta0:
rx-checksumming: on
tls-hw-tx-offload: on
tls-hw-rx-offload: on
"""


def test_fixed_off_features_are_seen_as_off() -> None:
    f = _features(VETH)
    assert [f[n] for n in TLS_FEATURES] == ["off [fixed]", "off [fixed]"]


def test_features_that_took_are_on() -> None:
    f = _features(NSIM)
    assert all(f[n] == "on" for n in TLS_FEATURES)
    assert f["rx-checksumming"] == "on"
