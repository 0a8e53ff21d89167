"""CI's stages (.ci/stages.sh): budgets, CI's own deadline, and a summary that always prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

STAGES = Path(__file__).resolve().parent.parent / ".ci" / "stages.sh"


def _ci(body: str, limit: int = 100, min_stage: int = 1,
        cwd: Path | None = None) -> tuple[int, str]:
    script = f"set -euo pipefail\n. {STAGES}\ntrap summary EXIT\n{body}\nexit \"$failed\"\n"
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=cwd,
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


# A stage beside the next ones: the foreground stage waits for a file only the background
# one writes, so passing proves they ran at once (no timing involved).
WAIT_FOR_FLAG = "sh -c 'for i in $(seq 100); do [ -e flag ] && exit 0; sleep 0.1; done; exit 1'"


def test_a_stage_beside_runs_at_idle_priority_while_the_next_ones_run(tmp_path: Path) -> None:
    rc, out = _ci("stage_beside 'build (debug)' 20 sh -c 'chrt -p $$; touch flag; echo built'\n"
                  f"stage fg 10 {WAIT_FOR_FLAG}\nstage_join\nstage after 10 true",
                  cwd=tmp_path)
    assert rc == 0, out
    v = _verdicts(out)
    assert v["fg"].endswith("ok") and v["after"].endswith("ok"), v
    assert v["build (debug)"].endswith("ok, beside the stages before"), v
    # its output is printed at the join, from its log in results/
    log = (tmp_path / "results/build__debug_.log").read_text()
    assert "SCHED_IDLE" in log and "built" in log, log
    assert out.index("ci: ---- build (debug) (joined: ok") < out.index("built\n"), out


def test_a_failed_stage_stops_the_one_beside(tmp_path: Path) -> None:
    rc, out = _ci("stage_beside slowbuild 50 sh -c 'sleep 40; echo compiled everything'\n"
                  "stage bad 10 false\nstage_join\nstage next 10 true", cwd=tmp_path)
    assert rc == 1, out
    v = _verdicts(out)
    assert v["slowbuild"].endswith("stopped (an earlier stage failed)"), v
    assert "compiled everything" not in out and v["next"].startswith("-   not run"), v


def test_a_failing_stage_beside_fails_ci_at_the_join(tmp_path: Path) -> None:
    rc, out = _ci("stage_beside badbuild 10 sh -c 'echo no compiler; exit 2'\n"
                  "stage fg 10 true\nstage_join\nstage tests 10 true", cwd=tmp_path)
    assert rc == 1, out
    v = _verdicts(out)
    assert v["fg"].endswith("ok") and v["badbuild"].endswith("FAILED (2)"), v
    assert v["tests"].startswith("-   not run") and "no compiler" in out, v


def test_ci_ending_before_the_join_leaves_nothing_running(tmp_path: Path) -> None:
    marker = f"ktlskit-ci-test-{tmp_path.name}"
    rc, out = _ci(f"stage_beside orphan 50 sh -c 'exec -a {marker} sleep 40'\n"
                  "stage bad 10 false", cwd=tmp_path)
    assert rc == 1 and _verdicts(out)["orphan"] == "-   stopped (CI ended first)", out
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    assert left.stdout == "", left.stdout
