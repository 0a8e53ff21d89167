"""Which offload cases there are, and running them: one spec, or a list (the call seam's
entry: ``call(host, run.run_cases, specs, nbytes)`` returns ``{spec: facts}``).

A spec is ``NAME[:VERSION][:CIPHER]``; every case sets up the netdevsim pair itself and the
topology is torn down after each, whatever happened. Progress goes to stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict

from .. import topology
from ..errors import KtlskitError
from . import cases, fin
from .netns import CaseFailure
from .nsim import Counters
from .rekey import REKEY_CASES, read_epochs
from .rekeyfaults import REKEY_FAULT_CASES
from .rekeysplit import REKEY_SPLIT_CASES
from .traffic import Facts, Suite, err_name

CASES: dict[str, Callable[[Suite, int], Facts]] = {
    "bulk": cases.case_bulk, "software": cases.case_software, "wire": cases.case_wire,
    "down": cases.case_down, "loss": cases.case_loss, "reorder": cases.case_reorder,
    "records": cases.case_records, "fail-add": cases.case_fail_add,
    "refuse": cases.case_refuse, "corrupt": cases.case_corrupt, "resync": cases.case_resync,
    "rekey": cases.case_rekey, "fin-nonblock": fin.case_fin_nonblock,
    "fin-nonblock-sw": fin.case_fin_nonblock_sw,
    "delete": cases.case_delete,
    **REKEY_CASES, **REKEY_FAULT_CASES, **REKEY_SPLIT_CASES,
}


class CaseSpecError(KtlskitError, ValueError):
    """A case spec names no case, or a TLS version or cipher the device does not offload."""


def parse_spec(spec: str) -> tuple[str, Suite]:
    """``NAME[:VERSION][:CIPHER]``, e.g. ``bulk:1.3:aes-gcm-256``; default TLS 1.3, GCM-128."""
    name, *rest = spec.split(":")
    if name not in CASES:
        raise CaseSpecError(f"unknown case {name!r} in {spec!r}; known: {', '.join(CASES)}")
    version, cipher = Suite().version, Suite().cipher
    for part in rest:
        if part in ("1.2", "1.3"):
            version = part
        elif part in ("aes-gcm-128", "aes-gcm-256"):
            cipher = part
        else:
            raise CaseSpecError(f"{spec!r}: {part!r} is neither a TLS version (1.2, 1.3) nor "
                                "a cipher the device offloads (aes-gcm-128, aes-gcm-256)")
    return name, Suite(version, cipher)


def run_case(spec: str, nbytes: int) -> Facts:
    """Errors become facts; the topology is always torn down."""
    name, suite = parse_spec(spec)
    t0 = time.monotonic()
    try:
        facts = CASES[name](suite, nbytes)
    except (OSError, CaseFailure, topology.TopologyError) as exc:
        facts = {"exception": type(exc).__name__, "message": str(exc),
                 "errno": err_name(exc), "at_failure": state_at_failure()}
    finally:
        topology.teardown()
    facts["case_seconds"] = round(time.monotonic() - t0, 1)
    facts["suite"] = {"version": suite.version, "cipher": suite.cipher,
                      "overhead": suite.overhead}
    return facts


def state_at_failure() -> Facts:
    """Right after a case failed, before the teardown: both namespaces' tls_stat and both
    ports' ``ethtool -S`` (absolute: each case's namespaces and devices are new) and the
    ports' key epochs; what could not be read (no topology left, no epochs file) is said."""
    out: Facts = {}
    try:
        out.update(asdict(Counters.read()))
    except (OSError, KtlskitError, CaseFailure) as exc:
        out["counters"] = _unreadable(exc)
    for side in ("a", "b"):
        try:
            out[f"epochs_{side}"] = read_epochs(side)
        except (OSError, KtlskitError, CaseFailure) as exc:
            out[f"epochs_{side}"] = _unreadable(exc)
    return out


def _unreadable(exc: Exception) -> str:
    return f"unreadable: {type(exc).__name__}: {exc}"


def run_cases(specs: list[str], nbytes: int) -> dict[str, Facts]:
    """Every spec checked first (a typo costs nothing), then run in order."""
    for spec in specs:
        parse_spec(spec)
    out = {}
    for spec in specs:
        print(f"offload: {spec} ...", file=sys.stderr, flush=True)
        out[spec] = run_case(spec, nbytes)
        print(f"offload: {spec} done in {out[spec]['case_seconds']}s", file=sys.stderr,
              flush=True)
    return out
