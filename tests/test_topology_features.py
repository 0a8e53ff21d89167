"""The TLS offload features' states as ethtool -k words, and which wanted ones did not take
(the kernel's answers are read for real in test_ethfeatures.py)."""

from ktlskit.ethfeatures import Feature, not_taken
from ktlskit.topology import TLS_FEATURES

FIXED_OFF = Feature(changeable=False, requested=False, active=False)
ON = Feature(changeable=True, requested=True, active=True)
# RX offload asked for while RX checksumming is off: the kernel leaves it off
DROPPED = Feature(changeable=True, requested=True, active=False)


def test_states_read_as_ethtool_prints_them() -> None:
    assert [f.shown() for f in (FIXED_OFF, ON, DROPPED)] == [
        "off [fixed]", "on", "off [requested on]"]
    assert Feature(changeable=False, requested=True, active=True).shown() == "on [fixed]"


def test_a_device_without_tls_offload_names_both_features() -> None:
    now = dict.fromkeys(TLS_FEATURES, FIXED_OFF)
    assert not_taken(dict.fromkeys(TLS_FEATURES, True), now) == [
        "tls-hw-tx-offload: off [fixed]", "tls-hw-rx-offload: off [fixed]"]
    assert not_taken(dict.fromkeys(TLS_FEATURES, False), now) == []


def test_rx_offload_dropped_by_the_kernel_is_caught() -> None:
    now = {"tls-hw-tx-offload": ON, "tls-hw-rx-offload": DROPPED}
    assert not_taken(dict.fromkeys(TLS_FEATURES, True), now) == [
        "tls-hw-rx-offload: off [requested on]"]
