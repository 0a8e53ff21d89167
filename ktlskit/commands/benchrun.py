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


def bench_guest_config(args: argparse.Namespace) -> GuestConfig:
    """The guest options with ``--kernel-arg``s appended to the command line, checked."""
    return dataclasses.replace(guest_config(args), append=tuple(args.kernel_arg))


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
    host["kernel_args"] = list(cfg.append)
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
