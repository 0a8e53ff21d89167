"""What each topology is and can do, read on the host before anything is built or booted.

One table for the CLI choices, the scenario's input checks and its verdict: which topologies
have a TLS offload device, for which TLS versions and ciphers, and which of the device's
``ethtool -S`` counters must move when it offloads. The guest-side builders live in
``topology.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OffloadCaps:
    """The TLS offload a topology's devices have (with the project's kernel series)."""

    versions: tuple[str, ...]
    ciphers: tuple[str, ...]
    device_counters: tuple[str, ...]
    """``ethtool -S`` counters that must move when the device really offloads."""


@dataclass(frozen=True)
class TopologyInfo:
    name: str
    summary: str
    offload: OffloadCaps | None = None  # None: no device with TLS offload


TOPOLOGIES: dict[str, TopologyInfo] = {t.name: t for t in (
    TopologyInfo("loopback", "one namespace, 127.0.0.1 / ::1"),
    TopologyInfo("veth", "a veth pair between two namespaces (veth has no TLS offload)"),
    TopologyInfo("netdevsim", "two linked netdevsim ports in two namespaces, with the fake "
                 "TLS offload of patches/tls-offload",
                 OffloadCaps(versions=("1.2", "1.3"), ciphers=("aes-gcm-128", "aes-gcm-256"),
                             device_counters=("tx_tls_encrypted_packets",
                                              "rx_tls_decrypted_packets"))),
)}


def names() -> tuple[str, ...]:
    return tuple(TOPOLOGIES)


def offload_problem(topology: str, version: str, cipher: str) -> str | None:
    """Why ``--offload`` cannot work on this combination, or None when it can."""
    info = TOPOLOGIES[topology]
    with_offload = [t.name for t in TOPOLOGIES.values() if t.offload]
    if info.offload is None:
        return (f"--offload needs a device with TLS offload; topology {topology} has none "
                f"(topologies with offload: {', '.join(with_offload)})")
    caps = info.offload
    if version not in caps.versions:
        return (f"the {topology} device offloads TLS {'/'.join(caps.versions)} only, "
                f"not TLS {version}")
    if cipher not in caps.ciphers:
        return (f"the {topology} device offloads {', '.join(caps.ciphers)} only, not {cipher}")
    return None
