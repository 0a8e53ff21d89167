"""``ktlskit bench ...``: measured speed, never asserted in tests."""

from __future__ import annotations

import argparse
import json
import shlex

from .. import bench_pipeline, table
from ..guest import Guest
from ..pipeline import ensure_kernel
from .common import add_guest_options, add_kernel_options, guest_config, kernel_options, print_json


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="benchmarks")
    bsub = b.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    p = bsub.add_parser("pipeline", help="fetch, cold/no-op/one-file builds, boot-to-SSH, "
                                         "exec vs raw vng, edit -> answer")
    p.add_argument("--profile", default="default")
    p.add_argument("--no-ccache", action="store_true", help="truly cold build")
    p.add_argument("--no-fetch", action="store_true", help="skip the fresh fetch")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved exec / raw vng rounds for the boot ratio (default 3)")
    p.add_argument("--json", action="store_true")
    add_guest_options(p)
    p.set_defaults(func=cmd_pipeline)
    t = bsub.add_parser("traffic", help="software kTLS vs userspace TLS (stdlib ssl) in a guest")
    t.add_argument("--bytes", type=int, default=32 << 20, help="bytes per transfer")
    t.add_argument("--rekey-every", type=int, default=64, help="records between KeyUpdates")
    t.add_argument("--repeat", type=int, default=3, help="runs per mode; the best counts")
    t.add_argument("--json", action="store_true")
    add_kernel_options(t)
    add_guest_options(t)
    t.set_defaults(func=cmd_traffic)


def cmd_pipeline(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        raise SystemExit("ktlskit bench pipeline: --rounds must be 1 or more")
    kernel_options(argparse.Namespace(kernel_src=None, profile=args.profile))
    timings = bench_pipeline.run(args.profile, no_ccache=args.no_ccache,
                                 fetch=not args.no_fetch, guest=guest_config(args),
                                 rounds=args.rounds)
    if args.json:
        print_json([t.__dict__ for t in timings])
    else:
        print(table.render(["stage", "seconds", "note"],
                           [(t.stage, t.seconds, t.note) for t in timings]))
    return 0


def cmd_traffic(args: argparse.Namespace) -> int:
    """Boot the guest and run ``ktlskit.trafficbench`` in it (see that module)."""
    gcfg = guest_config(args)
    _src, kb = ensure_kernel(kernel_options(args))
    argv = ["--bytes", str(args.bytes), "--rekey-every", str(args.rekey_every),
            "--repeat", str(args.repeat)]
    with Guest.boot(kb.bzimage, gcfg) as g:
        res = g.run(f"{shlex.quote(g.python)} -m ktlskit.trafficbench {shlex.join(argv)}",
                    timeout=120 + args.repeat * 3 * max(60, args.bytes / 1e6 * 2))
    out = json.loads(res.stdout)
    if args.json:
        print_json({**out, "accel": g.accel})
        return 0
    rows = []
    for mode, r in out["best"].items():
        st = r["stall_ms"]
        rows.append((mode, r["cipher"], r["nbytes"], r["seconds"], r["mbytes_per_s"],
                     r["rekeys"], st.get("median", "-"), st.get("max", "-")))
    print(table.render(["mode", "cipher", "bytes", "seconds", "MB/s", "rekeys",
                        "stall median ms", "stall max ms"], rows))
    print(f"kTLS / ssl throughput: {out['ratio_ktls_vs_ssl']}x;  with a KeyUpdate every "
          f"{out['rekey_every']} records: {out['ratio_rekey_vs_ktls']}x of plain kTLS  "
          f"(kernel {out['kernel']}, {g.accel}, best of {out['repeat']})")
    return 0
