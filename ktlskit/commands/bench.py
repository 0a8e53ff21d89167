"""``ktlskit bench ...``: measured speed, never asserted in tests."""

from __future__ import annotations

import argparse

from .. import bench_pipeline, table
from .common import add_guest_options, guest_config, print_json


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="benchmarks")
    bsub = b.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    p = bsub.add_parser("pipeline", help="fetch, cold/no-op/one-file builds, boot-to-SSH")
    p.add_argument("--profile", default="default")
    p.add_argument("--no-ccache", action="store_true", help="truly cold build")
    p.add_argument("--no-fetch", action="store_true", help="skip the fresh fetch")
    p.add_argument("--json", action="store_true")
    add_guest_options(p)
    p.set_defaults(func=cmd_pipeline)


def cmd_pipeline(args: argparse.Namespace) -> int:
    timings = bench_pipeline.run(args.profile, no_ccache=args.no_ccache,
                                 fetch=not args.no_fetch, guest=guest_config(args))
    if args.json:
        print_json([t.__dict__ for t in timings])
    else:
        print(table.render(["stage", "seconds", "note"],
                           [(t.stage, t.seconds, t.note) for t in timings]))
    return 0
