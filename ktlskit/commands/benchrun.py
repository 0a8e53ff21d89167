"""Running a guest-side benchmark and keeping its document: shared by the ``bench`` commands.

``measure_in_guest()`` boots one kernel, runs a bench's ``measure(argv)`` there through
``ktlskit.hosts.call`` with a deadline, relays its progress lines and checks the console for
splats; ``run_in_guest()`` does the same on the kernel the options name (built if needed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import benchreport
from ..benchstream import BenchError
from ..guest import Guest, GuestConfig
from ..hosts.call import CallError, start
from ..pipeline import ensure_kernel
from ..progress import say
from .common import guest_config, kernel_options, print_json

Measure = Callable[[list[str]], dict[str, Any]]
Measured = tuple[dict[str, Any], dict[str, Any], str]
"""(the bench's raw document, the host's load and CPU around it, the guest's accel)."""


#: ``--icount`` shifts QEMU accepts (``-icount shift=N``: 2^N ns of guest time per instruction).
ICOUNT_SHIFTS = range(0, 11)


def bench_guest_config(args: argparse.Namespace) -> GuestConfig:
    """The guest options with ``--kernel-arg``s appended to the command line and ``--icount``
    as QEMU options, checked."""
    cfg = dataclasses.replace(guest_config(args), append=tuple(args.kernel_arg))
    if args.icount is None:
        return cfg
    if args.icount not in ICOUNT_SHIFTS:
        raise BenchError(f"--icount {args.icount}: a shift from {ICOUNT_SHIFTS.start} to "
                         f"{ICOUNT_SHIFTS.stop - 1} (2^SHIFT ns of guest time per instruction)")
    if cfg.accel == "kvm":
        raise BenchError("--icount counts instructions under TCG; it cannot go with --accel kvm")
    # icount needs TCG's single-threaded mode (the vCPUs take turns on one host thread).
    return dataclasses.replace(cfg, accel="tcg", qemu_opts=(
        "-accel", "tcg,thread=single", "-icount", f"shift={args.icount},sleep=off"))


def clock_facts(cfg: GuestConfig) -> dict[str, object]:
    """What the guest's clock measured: wall time, or instructions (``--icount``)."""
    icount = next((o for o in cfg.qemu_opts if o.startswith("shift=")), None)
    return {"kernel_args": list(cfg.append), "icount": icount}


def run_in_guest(args: argparse.Namespace, measure: Measure, argv: list[str],
                 timeout: float) -> Measured:
    """Build the kernel of ``args`` if needed and ``measure_in_guest()`` on it."""
    cfg = bench_guest_config(args)
    _src, kb = ensure_kernel(kernel_options(args))
    return measure_in_guest(kb.bzimage, cfg, measure, argv, timeout)


def measure_in_guest(bzimage: Path, cfg: GuestConfig, measure: Measure, argv: list[str],
                     timeout: float) -> Measured:
    """Boot ``bzimage``, run ``measure(argv)`` there relaying its progress; (raw, host,
    accel). The call gets ``timeout`` seconds, the whole boot a minute more."""
    host: dict[str, Any] = {"loadavg_before": benchreport.host_info()["loadavg"]}
    with Guest.boot(bzimage, cfg) as g:
        pending = start(g, measure, argv, timeout=timeout)
        shown = 0
        deadline = time.monotonic() + timeout + 60
        while pending.process.running() and time.monotonic() < deadline:
            shown = relay(pending.process.stderr, shown)
            time.sleep(0.5)
        try:
            raw = pending.result(max(1.0, deadline - time.monotonic()))
        except CallError as exc:
            raise BenchError(f"{measure.__module__} failed in the guest: {exc}") from exc
        finally:
            relay(pending.process.stderr, shown)
        g.check(f"while running {measure.__module__}")
        accel = g.accel
    host.update(benchreport.host_info())
    host["loadavg_after"] = host.pop("loadavg")
    host.update(clock_facts(cfg))
    return raw, host, accel


def earlier(args: argparse.Namespace) -> Measured | None:
    """(raw, host, accel) of the file given with --from-json, or None."""
    if args.from_json is None:
        return None
    try:
        doc = json.loads(args.from_json.read_text())
        return doc["raw"], doc["host"], doc["accel"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"{args.from_json}: not a bench JSON written by ktlskit ({exc})") \
            from exc


def relay(stderr: str, shown: int) -> int:
    """Say the complete lines of ``stderr`` after the first ``shown``; the new count."""
    lines = stderr.splitlines()
    complete = lines if stderr.endswith("\n") else lines[:-1]
    for line in complete[shown:]:
        say(line)
    return max(shown, len(complete))


def write_doc(out_dir: Path, name: str, doc: dict[str, Any]) -> Path:
    """``out_dir/bench-NAME.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def publish(args: argparse.Namespace, name: str, doc: dict[str, Any], text: str) -> None:
    """Write ``bench-NAME.json`` to ``--out``, print the document (``--json``) or ``text``,
    and say which files were written."""
    path = write_doc(args.out, name, doc)
    if args.json:
        print_json(doc)
    else:
        sys.stdout.write(text)
    plots = [str(doc[k]) for k in ("plot", "plot_rekey") if doc.get(k)]
    say(f"wrote {', '.join([str(path), *plots])}")
