"""In-guest mode: ``vng -- pytest vmtests/`` runs the tests in the guest itself, where the
guest is this machine (``ktlskit.hosts.LocalHost``)."""

from __future__ import annotations

import os
from pathlib import Path

from ..hosts.local import LocalHost, LocalProcess

#: The name this class had before the Host contract.
LocalGuest = LocalHost

__all__ = ["LocalGuest", "LocalHost", "LocalProcess", "running_in_guest"]


def running_in_guest() -> bool:
    """True inside a virtme-ng guest (or when KTLSKIT_IN_GUEST=1 says so)."""
    if os.environ.get("KTLSKIT_IN_GUEST") in ("0", "1"):
        return os.environ["KTLSKIT_IN_GUEST"] == "1"
    try:
        return "virtme" in Path("/proc/cmdline").read_text()
    except OSError:
        return False
