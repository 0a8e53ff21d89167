"""Fixtures shared by the host tests."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest

from ktlskit.hosts.local import LocalHost


@pytest.fixture()
def local_host() -> Iterator[LocalHost]:
    """This machine as a Host; its temporary directory is removed after the test."""
    host = LocalHost()
    yield host
    host.close()


def _sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture()
def veth_in_netns() -> Iterator[tuple[str, str, str]]:
    """(namespace, host-side ifname, namespace-side ifname), removed afterwards."""
    tag = secrets.token_hex(3)
    ns, a, b = f"ktlskit-t-{tag}", f"kt{tag}a", f"kt{tag}b"
    try:
        _sh("ip", "netns", "add", ns)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot create a network namespace here: {exc}")
    try:
        _sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        _sh("ip", "link", "set", b, "netns", ns)
        _sh("ip", "-n", ns, "addr", "add", "198.51.100.7/24", "dev", b)
        _sh("ip", "-n", ns, "link", "set", b, "up")
        yield ns, a, b
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True, check=False, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=30)
