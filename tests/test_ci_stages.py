"""CI's stages (.ci/stages.sh): budgets, CI's own deadline, and a summary that always prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

STAGES = Path(__file__).resolve().parent.parent / ".ci" / "stages.sh"


def _ci(body: str, limit: int = 100, min_stage: int = 1) -> tuple[int, str]:
    script = f"set -euo pipefail\n. {STAGES}\ntrap summary EXIT\n{body}\nexit \"$failed\"\n"
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "KTLSKIT_CI_LIMIT": str(limit),
                              "KTLSKIT_CI_MIN_STAGE": str(min_stage)}, check=False)
    return res.returncode, res.stdout


def _verdicts(out: str) -> dict[str, str]:
    lines = out.split("ci: ---- stage times ----\n", 1)[1].splitlines()
    return {ln[:28].strip(): ln[28:].strip() for ln in lines if not ln.startswith("ci: ")}


def test_passing_stages_print_their_times() -> None:
    rc, out = _ci("stage one 10 true\nstage two 10 true")
    assert rc == 0, out
    v = _verdicts(out)
    assert v["one"].endswith("ok") and v["two"].endswith("ok"), v
    assert "ci: ---- one (budget 10s) ----" in out and "ci: finished in" in out


def test_a_stage_over_its_budget_is_stopped_and_later_ones_do_not_run() -> None:
    rc, out = _ci("stage slow 1 sleep 30\nstage next 10 true")
    assert rc == 1, out
    v = _verdicts(out)
    assert v["slow"].endswith("STOPPED at its 1s budget"), v
    assert v["next"] == "-   not run (an earlier stage failed)", v


def test_a_failing_stage_is_named_with_its_status() -> None:
    rc, out = _ci("stage bad 10 sh -c 'exit 3'\nstage next 10 true")
    assert rc == 1 and _verdicts(out)["bad"].endswith("FAILED (3)"), out


def test_the_deadline_cuts_a_budget_and_skips_what_no_longer_fits() -> None:
    rc, out = _ci("stage long 100 sleep 30\nstage late 10 true", limit=2, min_stage=1)
    assert rc == 1, out
    assert "ci: ---- long (budget 2s) ----" in out, out
    v = _verdicts(out)
    assert v["long"].endswith("STOPPED at its 2s budget"), v
    assert v["late"].startswith("-   not run"), v


def test_too_little_time_left_is_not_a_start() -> None:
    rc, out = _ci("stage first 10 true", limit=30, min_stage=60)
    assert rc == 1 and _verdicts(out)["first"].startswith("-   not run (30s left)"), out
