"""The check report as tables, JSON and KTAP."""

from __future__ import annotations

from .. import ktap, table
from ..kernel.source import source_info
from .runner import PATCH_CHECKS, Report, Result

CELL = {"pass": "pass", "fail": "FAIL", "waived": "waived", "cannot-run": "cannot"}
KTAP_STATUS = {"pass": "pass", "fail": "fail", "waived": "xfail", "cannot-run": "skip"}


def render(rep: Report) -> str:
    out = [f"kernel: {rep.src.describe()}", f"series: {rep.patchset.source}"]
    for g in rep.groups:
        cover = g.group.cover.name if g.group.cover else "none"
        out += ["", f"== series {g.group.name}: {len(g.group.patches)} patch(es), "
                    f"cover letter: {cover}",
                table.render(["series check", "result", "reason"],
                             [(n, CELL[r.status], r.waived.outcome.reason)
                              for n, r in g.series.items()]),
                "",
                table.render(["patch", *PATCH_CHECKS],
                             [(p.patch.short, *(CELL[p.results[c].status] for c in PATCH_CHECKS))
                              for p in g.patches])]
    details = [_detail(r) for r in rep.results() if r.status != "pass"]
    if details:
        out += ["", "== findings (everything that is not a pass)", *details]
    out += ["", *_waiver_lines(rep)]
    out += ["", table.render(["check", "seconds"], sorted(rep.seconds.items())),
            f"wall time: {rep.wall:.1f} s", f"verdict: {'PASS' if rep.ok else 'FAIL'}"]
    return "\n".join(out)


def _detail(r: Result) -> str:
    lines = [f"{r.subject} [{r.check}] {r.status}: {r.waived.outcome.reason}"]
    lines += [f"    {f}" for f in r.waived.remaining]
    lines += [f"    waived: {f}\n        because: {w.reason}" for f, w in r.waived.accepted]
    return "\n".join(lines)


def _waiver_lines(rep: Report) -> list[str]:
    if not rep.waivers:
        return [f"waivers: none ({rep.waiver_file or 'no waivers.toml next to the series'})"]
    lines = [f"waivers from {rep.waiver_file}:"]
    for w in rep.waivers:
        state = f"used {len(w.used)}x" if w.used else "UNUSED (matched nothing)"
        lines.append(f"  {w.check} on {w.patch} /{w.pattern}/: {state}\n"
                     f"      reason: {w.reason}")
    return lines


def _result_json(r: Result) -> dict[str, object]:
    return {
        "status": r.status,
        "reason": r.waived.outcome.reason,
        "findings": list(r.waived.remaining),
        "waived": [{"finding": f, "pattern": w.pattern, "reason": w.reason}
                   for f, w in r.waived.accepted],
        "seconds": r.seconds,
    }


def to_json(rep: Report) -> dict[str, object]:
    return {
        "ok": rep.ok,
        "source": source_info(rep.src),
        "series_path": str(rep.patchset.source),
        "wall_seconds": rep.wall,
        "seconds_per_check": dict(sorted(rep.seconds.items())),
        "series": [{
            "name": g.group.name,
            "cover": g.group.cover.name if g.group.cover else None,
            "checks": {n: _result_json(r) for n, r in g.series.items()},
            "patches": [{"name": p.patch.name, "subject": p.patch.subject,
                         "checks": {n: _result_json(r) for n, r in p.results.items()}}
                        for p in g.patches],
        } for g in rep.groups],
        "waiver_file": str(rep.waiver_file) if rep.waiver_file else None,
        "waivers": [w.to_json() for w in rep.waivers],
        "unused_waivers": [w.to_json() for w in rep.waivers if not w.used],
    }


def to_ktap(rep: Report) -> str:
    results = []
    for r in rep.results():
        reason = r.waived.outcome.reason
        if r.status == "waived":
            reason = "waived: " + "; ".join(sorted({w.reason for _, w in r.waived.accepted}))
        results.append(ktap.TestResult(0, f"{r.subject}:{r.check}", KTAP_STATUS[r.status],
                                       reason.replace("\n", " ")))
    return ktap.write("ktlskit patches check", results)
