"""``ktlskit bench ...``: measured speed, never asserted in tests."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import (
    bench_pipeline,
    benchplot,
    benchreport,
    offloadbench,
    offloadreport,
    table,
    trafficbench,
)
from ..benchstream import BenchError
from ..progress import say
from . import offloadbaseline
from .benchrun import earlier, publish, run_in_guest, write_doc
from .common import (
    add_guest_options,
    add_kernel_options,
    guest_config,
    kernel_options,
    print_json,
)

OFFLOAD_ROUNDS = 5


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="benchmarks")
    bsub = b.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    p = bsub.add_parser("pipeline", help="fetch, cold/no-op/one-file builds, boot-to-SSH, "
                                         "exec vs raw vng, edit -> answer")
    p.add_argument("--profile", default="default")
    p.add_argument("--no-ccache", action="store_true", help="truly cold build")
    p.add_argument("--no-fetch", action="store_true", help="skip the fresh fetch")
    p.add_argument("--no-cold", action="store_true",
                   help="keep the bench tree's last build (no cold build; the other stages "
                        "as usual)")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved exec / raw vng rounds for the boot ratio (default 5)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                   help="where bench-pipeline.json and bench-pipeline.png go (default results/)")
    add_guest_options(p)
    p.set_defaults(func=cmd_pipeline)

    t = bsub.add_parser("traffic", help="software kTLS vs userspace TLS (stdlib ssl) against "
                                        "the crypto limit, in a guest")
    t.add_argument("--bytes", type=int, default=32 << 20, help="bytes per transfer")
    t.add_argument("--rekey-every", type=int, default=64, help="records between KeyUpdates")
    t.add_argument("--rounds", "--repeat", dest="rounds", type=int, default=5,
                   help="interleaved rounds (default 5)")
    t.add_argument("--crypto-seconds", type=int, default=1,
                   help="seconds per crypto-limit measurement (default 1)")
    t.add_argument("--installs", type=int, default=64,
                   help="bare key installs timed per round (default 64)")
    _add_output_options(t, "traffic")
    add_kernel_options(t)
    add_guest_options(t)
    t.set_defaults(func=cmd_traffic)

    o = bsub.add_parser("offload", help="netdevsim kTLS device offload vs software kTLS, "
                                        "in a guest")
    o.add_argument("--bytes", type=int, default=16 << 20, help="bytes per transfer")
    o.add_argument("--rounds", type=int,
                   help=f"interleaved rounds (default {OFFLOAD_ROUNDS}; with --baseline-until, "
                        f"per boot, default {offloadbaseline.ROUNDS_PER_BOOT})")
    o.add_argument("--cipher", choices=("aes-gcm-128", "aes-gcm-256"), default="aes-gcm-128")
    o.add_argument("--tls-version", action="append", choices=("1.2", "1.3"),
                   help="repeatable (default: 1.2 and 1.3)")
    o.add_argument("--rekey-every", type=int, default=0,
                   help="also TLS 1.3 modes with a KeyUpdate every N records (default 0: "
                        "none): offload (the device takes the keys) and software; the "
                        "software windows go to bench-offload-rekey.png")
    o.add_argument("--deladd", action="store_true",
                   help="with --rekey-every, also offload -deladd (refuse_rekey: tls_dev_del "
                        "+ tls_dev_add); about 1 transfer in 24 of it loses its last record "
                        "at EOF (an open bug of patches/tls-rekey, see README)")
    offloadbaseline.add_options(o)
    _add_output_options(o, "offload")
    add_kernel_options(o)
    add_guest_options(o)
    o.set_defaults(func=cmd_offload)


def _add_output_options(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--json", action="store_true", help="the JSON on stdout instead of tables")
    p.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                   help=f"where bench-{name}.json and bench-{name}.png go (default results/)")
    p.add_argument("--from-json", type=Path, metavar="FILE",
                   help=f"no guest: summarise and plot the rounds of an earlier "
                        f"bench-{name}.json again")
    p.add_argument("--kernel-arg", action="append", default=[], metavar="ARG",
                   help="append ARG to the guest kernel command line (repeatable), e.g. "
                        "clearcpuid=aes,pclmulqdq,avx,avx2,vaes for generic C kernel crypto")
    p.add_argument("--icount", type=int, metavar="SHIFT",
                   help="TCG only: QEMU -icount shift=SHIFT,sleep=off, so the guest's clock "
                        "counts instructions (2^SHIFT ns each) and MB/s no longer depend on the "
                        "host's load (one vCPU thread: slower in wall time)")


def _check_positive(args: argparse.Namespace, *names: str) -> None:
    """Refuse bad numbers before building or booting anything."""
    for name in names:
        if getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be a positive number, "
                             f"got {getattr(args, name)}")


def cmd_pipeline(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        raise SystemExit("ktlskit bench pipeline: --rounds must be 1 or more")
    kernel_options(argparse.Namespace(kernel_src=None, profile=args.profile))
    res = bench_pipeline.run(args.profile, no_ccache=args.no_ccache,
                             fetch=not args.no_fetch, guest=guest_config(args),
                             rounds=args.rounds, cold=not args.no_cold)
    doc = res.to_json()
    png = benchplot.stage_bars(args.out / "bench-pipeline.png",
                               [(t.stage, t.seconds) for t in res.stages])
    doc["plot"] = str(png)
    log = args.out / "edit-to-answer.log"
    log.write_text("\n".join(res.retest_timeline) + "\n")
    doc["retest_log"] = str(log)
    path = write_doc(args.out, "pipeline", doc)
    if args.json:
        print_json(doc)
    else:
        print(table.render(["stage", "seconds", "note"],
                           [(t.stage, t.seconds, t.note) for t in res.stages]))
        b = res.boot
        print(f"boot ratio (ktlskit exec -- true / raw vng -- true, median over median of "
              f"{len(b.exec_s)} interleaved rounds): {b.ratio}x (target <= 1.2); per round "
              f"{', '.join(f'{x:.2f}' for x in b.per_round)}")
    say(f"wrote {path} and {png}")
    return 0


def cmd_traffic(args: argparse.Namespace) -> int:
    """Boot the guest and run ``ktlskit.trafficbench`` in it (see that module)."""
    _check_positive(args, "bytes", "rekey_every", "rounds", "crypto_seconds", "installs")
    argv = ["--bytes", str(args.bytes), "--rekey-every", str(args.rekey_every),
            "--rounds", str(args.rounds), "--crypto-seconds", str(args.crypto_seconds),
            "--installs", str(args.installs)]
    per_round = 3 * max(60, args.bytes / 1e6 * 2) + 8 * args.crypto_seconds + 60
    raw, host, accel = earlier(args) or run_in_guest(args, trafficbench.measure, argv,
                                                     300 + args.rounds * per_round)
    summary = benchreport.summarize(raw)
    png = benchreport.plot(raw, summary, args.out / "bench-traffic.png")
    doc = {"summary": summary.to_json(), "host": host, "accel": accel, "plot": str(png),
           "raw": raw}
    publish(args, "traffic", doc, benchreport.render(raw, summary, host, accel))
    return 0


def cmd_offload(args: argparse.Namespace) -> int:
    """Boot the guest and run ``ktlskit.offloadbench`` in it (see that module); with
    ``--baseline-until``, the two kernels of ``offloadbaseline``."""
    found = earlier(args)
    if offloadbaseline.wanted(args, found):
        return offloadbaseline.cmd_offload_baseline(args, found)
    offloadbaseline.refuse_alone(args)
    if args.rounds is None:
        args.rounds = OFFLOAD_ROUNDS
    _check_positive(args, "bytes", "rounds")
    if args.rekey_every < 0:
        raise BenchError(f"--rekey-every must not be negative, got {args.rekey_every}")
    versions = sorted(set(args.tls_version or offloadbench.VERSIONS))
    argv = offloadbench.guest_argv(args.bytes, args.rounds, args.cipher, versions,
                                   args.rekey_every, args.deladd)
    nmodes = len(offloadbench.modes(versions, args.rekey_every, args.deladd))
    raw, host, accel = found or run_in_guest(
        args, offloadbench.measure, argv, offloadbench.guest_timeout(args.bytes, args.rounds,
                                                                     nmodes))
    summary = offloadreport.summarize(raw)
    png = offloadreport.plot(raw, summary, args.out / "bench-offload.png")
    rekey_png = offloadreport.plot_rekey(raw, summary, args.out / "bench-offload-rekey.png")
    doc = {"summary": summary.to_json(), "host": host, "accel": accel, "plot": str(png),
           "plot_rekey": str(rekey_png) if rekey_png else None, "raw": raw}
    publish(args, "offload", doc, offloadreport.render(raw, summary, host, accel))
    return 0
