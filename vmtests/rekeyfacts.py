"""What the rekey vmtest modules share: one guest run of their offload cases, a case's facts,
and the outcome counters every KeyUpdate must end in (``from rekeyfacts import ...``, as
``tests/`` imports ``minikernel``)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from ktlskit.hosts.call import call
from ktlskit.offload.run import run_cases


def run_module_cases(request: pytest.FixtureRequest, guest: Any, cases: tuple[str, ...],
                     timeout: float, nbytes: tuple[int, int] = (4 << 20, 1 << 20)
                     ) -> dict[str, Any]:
    """``cases`` in one guest run, streams of ``nbytes`` (default kernel, debug kernel). All
    the facts are kept in ``results/facts/MODULE-PROFILE.json`` (an assertion shows them cut
    short)."""
    profile = request.config.getoption("--kernel-profile")
    size = nbytes[1] if profile == "debug" else nbytes[0]
    facts = call(guest, run_cases, list(cases), size, timeout=timeout)
    root = request.config.rootpath
    if os.access(root, os.W_OK):  # not from inside a guest (a read-only root)
        out = root / "results" / "facts" / f"{request.module.__name__}-{profile}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(facts, indent=1, sort_keys=True))
    return facts


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
