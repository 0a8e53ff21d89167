"""A device's offload features, ``ethtool -k`` and ``ethtool -K``, with the standard library
alone: the ``SIOCETHTOOL`` ioctl (``ETHTOOL_GFEATURES``, ``ETHTOOL_SFEATURES``) with the
feature names of the ``ETH_SS_FEATURES`` string set, as ethtool itself does without netlink.

Under TCG each ``ip netns exec NS ethtool ...`` cost two process starts (0.2-0.4 s), and
turning offload on and checking it took four of them per device; here it is a few ioctls.
Names are the kernel's (``rx-checksum``, ``tls-hw-tx-offload``), not ethtool's aliases
(``rx``).
"""

from __future__ import annotations

import ctypes
import socket
import struct
from dataclasses import dataclass

from .netnsenter import ethtool_ioctl, socket_in, string_count, strings

ETHTOOL_GFEATURES = 0x3A
ETHTOOL_SFEATURES = 0x3B
ETH_SS_FEATURES = 4


@dataclass(frozen=True)
class Feature:
    """One feature as ``ethtool -k`` shows it."""

    changeable: bool  # in hw_features and not NETIF_F_NEVER_CHANGE, else "[fixed]"
    requested: bool
    active: bool

    def shown(self) -> str:
        """``on``, ``off [fixed]``, ``off [requested on]``: ethtool -k's words."""
        text = "on" if self.active else "off"
        if not self.changeable:
            return f"{text} [fixed]"
        if self.requested != self.active:
            return f"{text} [requested {'on' if self.requested else 'off'}]"
        return text


def _names(sock: socket.socket, ifname: str) -> list[str]:
    n = string_count(sock, ifname, ETH_SS_FEATURES)
    names = strings(sock, ifname, ETH_SS_FEATURES, n) if n else None
    if not names:  # the feature set is fixed at build time: a change here is not a race
        raise OSError(f"{ifname}: the kernel lists no feature names")
    return names


def _words(n: int) -> int:
    return (n + 31) // 32


def _read(sock: socket.socket, ifname: str, names: list[str]) -> dict[str, Feature]:
    words = _words(len(names))
    req = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_GFEATURES, words)
                                      + bytes(16 * words))
    ethtool_ioctl(sock, ifname, req)
    blocks = [struct.unpack_from("=IIII", req.raw, 8 + 16 * i) for i in range(words)]

    def bit(field: int, i: int) -> bool:
        return bool(blocks[i // 32][field] >> (i % 32) & 1)

    return {name: Feature(bit(0, i) and not bit(3, i), bit(1, i), bit(2, i))
            for i, name in enumerate(names) if name}


def features(ifname: str, ns: str | None = None) -> dict[str, Feature]:
    """``ethtool -k IFNAME`` (in namespace ``ns``) as name -> Feature."""
    with socket_in(ns) as sock:
        return _read(sock, ifname, _names(sock, ifname))


def set_features(ifname: str, wanted: dict[str, bool],
                 ns: str | None = None) -> dict[str, Feature]:
    """``ethtool -K IFNAME NAME on|off ...`` as one request; returns the features after it.

    The kernel fixes up the wanted set as a whole (one feature may need another), so the
    caller compares what it wanted with what is active. A name the kernel does not know is a
    ValueError, before anything changes."""
    with socket_in(ns) as sock:
        names = _names(sock, ifname)
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"{ifname}: no feature named {', '.join(unknown)}")
        words = _words(len(names))
        valid, requested = [0] * words, [0] * words
        for i, name in enumerate(names):
            if name in wanted:
                valid[i // 32] |= 1 << (i % 32)
                requested[i // 32] |= int(wanted[name]) << (i % 32)
        blocks = b"".join(struct.pack("=II", v, r) for v, r in zip(valid, requested, strict=True))
        req = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_SFEATURES, words) + blocks)
        ethtool_ioctl(sock, ifname, req)
        return _read(sock, ifname, names)


def not_taken(wanted: dict[str, bool], now: dict[str, Feature]) -> list[str]:
    """``name: shown state`` for each wanted feature that is not in the wanted state."""
    return [f"{name}: {now[name].shown()}" for name, on in wanted.items()
            if now[name].active != on]
