"""What the rekey vmtest modules share: one guest run of their offload cases, a case's facts,
and the outcome counters every KeyUpdate must end in (``from rekeyfacts import ...``, as
``tests/`` imports ``minikernel``)."""

from __future__ import annotations

from typing import Any

import pytest

from ktlskit.hosts.call import call
from ktlskit.offload.run import run_cases


def run_module_cases(request: pytest.FixtureRequest, guest: Any, cases: tuple[str, ...],
                     timeout: float) -> dict[str, Any]:
    """``cases`` in one guest run: 4 MiB streams, 1 MiB on the debug kernel."""
    mb = 1 if request.config.getoption("--kernel-profile") == "debug" else 4
    return call(guest, run_cases, list(cases), mb << 20, timeout=timeout)


def case(facts: dict[str, Any], name: str) -> dict[str, Any]:
    f = facts[name]
    assert "exception" not in f, f
    return f


def outcomes(side: dict[str, int], d: str, rekeys: int, fallback: bool = False) -> None:
    """One outcome per KeyUpdate, none left in progress, no error; no fallback unless
    ``fallback``."""
    ok, fb, ab = (side[f"Tls{d}Rekey{o}"] for o in ("Ok", "Fallback", "Aborted"))
    assert ok + fb + ab == rekeys and (fallback or fb == 0), side
    assert side[f"TlsCurr{d}Rekey"] == 0, side
    assert side["TlsDecryptError"] == 0 and side[f"Tls{d}RekeyError"] == 0, side
