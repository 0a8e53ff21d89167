"""``ktlskit bench offload --baseline-until NAME``: the offload fast path before and after.

Two kernels of the same source and profile: *before*, ``patches/series`` up to and including
the last patch of sub-series NAME (``ktlskit kernel build --until NAME``: its own tree and
``O=`` directory), and *after*, the whole series. Both are built (or found up to date) first;
then they boot alternately, one guest at a time (before, after, before, after, ...:
``--pairs`` of each), and every boot runs ``ktlskit.offloadbench`` without KeyUpdates
(offload and software, each TLS version) for ``--rounds`` interleaved rounds. The figures
(``ktlskit.baselinereport``) compare each pair of boots, so a drift of the shared host hits
both kernels of a pair alike.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from .. import baselinereport, benchreport, offloadbench
from ..benchstream import BenchError
from ..guest import GuestConfig
from ..kernel.build import BuildResult
from ..pipeline import KernelOptions, ensure_kernel
from ..progress import say
from .benchrun import Measured, bench_guest_config, clock_facts, measure_in_guest, publish

PAIRS = 6
ROUNDS_PER_BOOT = 3
DOC_NAME = "offload-baseline"


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "before/after a sub-series",
        "compare the kernel of the whole patches/series with one built only up to a "
        "sub-series, booted alternately; no KeyUpdates (--rekey-every, --deladd refused); "
        f"writes bench-{DOC_NAME}.json and .png")
    g.add_argument("--baseline-until", metavar="NAME",
                   help="the baseline kernel: patches/series up to and including the "
                        "sub-series NAME (a directory of patches/, e.g. tls-offload)")
    g.add_argument("--pairs", type=int,
                   help=f"boots of each kernel, alternating (default {PAIRS})")


def wanted(args: argparse.Namespace, found: Measured | None) -> bool:
    """Whether this is a before/after run: --baseline-until, or a --from-json of one."""
    return args.baseline_until is not None or (found is not None and is_comparison(found[0]))


def is_comparison(raw: dict[str, Any]) -> bool:
    return "boots" in raw


def refuse_alone(args: argparse.Namespace) -> None:
    """--pairs means nothing without --baseline-until."""
    if args.pairs is not None:
        raise BenchError("--pairs goes with --baseline-until NAME")


def boot_order(pairs: int) -> list[str]:
    """Which kernel each boot runs: before, after, before, after, ..."""
    return [kernel for _ in range(pairs) for kernel in baselinereport.KERNELS]


def check(args: argparse.Namespace) -> tuple[KernelOptions, KernelOptions, GuestConfig]:
    """Every option of a before/after run, checked in well under a second, before any build
    or boot: (before kernel, after kernel, guest)."""
    if args.rekey_every or args.deladd:
        raise BenchError("--baseline-until measures the path without KeyUpdates: drop "
                         "--rekey-every/--deladd (run them without --baseline-until)")
    for name, value in (("bytes", args.bytes), ("rounds", args.rounds),
                        ("pairs", args.pairs)):
        if value < 1:
            raise BenchError(f"--{name} must be a positive number, got {value}")
    after = KernelOptions(kernel_src=args.kernel_src, profile=args.profile)
    before = KernelOptions(kernel_src=args.kernel_src, profile=args.profile,
                           until=args.baseline_until)
    after.check()
    before.check()
    if before.patch_series() == after.patch_series():
        raise BenchError(f"--baseline-until {args.baseline_until}: that is the whole series, "
                         "so both kernels would be the same; name an earlier sub-series")
    return before, after, bench_guest_config(args)


def cmd_offload_baseline(args: argparse.Namespace, found: Measured | None) -> int:
    if found is None:
        args.pairs = PAIRS if args.pairs is None else args.pairs
        args.rounds = ROUNDS_PER_BOOT if args.rounds is None else args.rounds
        raw, host, accel = measure(args, *check(args))
    elif args.baseline_until is not None:
        raise BenchError("--from-json re-reads an earlier run with its own kernels: drop "
                         "--baseline-until")
    else:
        raw, host, accel = found
    summary = baselinereport.summarize(raw)
    png = baselinereport.plot(raw, summary, args.out / f"bench-{DOC_NAME}.png")
    doc = {"summary": summary.to_json(), "host": host, "accel": accel, "plot": str(png),
           "raw": raw}
    publish(args, DOC_NAME, doc, baselinereport.render(raw, summary, host, accel))
    return 0


def _kernel_facts(opts: KernelOptions, built: BuildResult) -> dict[str, Any]:
    ser = opts.patch_series()
    return {"until": ser.until, "patches": len(ser.patches),
            "last_patch": str(ser.patches[-1].relative_to(ser.root)) if ser.patches else "",
            "series_digest": built.series_digest, "bzimage": str(built.bzimage),
            "build_dir": str(built.build_dir)}


def measure(args: argparse.Namespace, before: KernelOptions, after: KernelOptions,
            cfg: GuestConfig) -> Measured:
    """Build both kernels, boot them alternately; the raw document of every boot."""
    t0 = time.monotonic()
    host = {"loadavg_before": benchreport.host_info()["loadavg"]}
    built = {"before": ensure_kernel(before)[1], "after": ensure_kernel(after)[1]}
    kernels = {"before": _kernel_facts(before, built["before"]),
               "after": _kernel_facts(after, built["after"])}
    build_s = time.monotonic() - t0
    versions = sorted(set(args.tls_version or offloadbench.VERSIONS))
    argv = offloadbench.guest_argv(args.bytes, args.rounds, args.cipher, versions)
    timeout = offloadbench.guest_timeout(args.bytes, args.rounds,
                                         len(offloadbench.modes(versions)))
    boots: list[dict[str, Any]] = []
    accel = "?"
    order = boot_order(args.pairs)
    for i, kernel in enumerate(order):
        say(f"boot {i + 1}/{len(order)}: the {kernel} kernel ({kernels[kernel]['patches']} "
            f"patches, up to {kernels[kernel]['last_patch']}){_eta(boots, len(order))}")
        start = time.monotonic()
        raw, boot_host, accel = measure_in_guest(built[kernel].bzimage, cfg,
                                                 offloadbench.measure, argv, timeout)
        boots.append({"kernel": kernel, "pair": i // 2, "host": boot_host, "raw": raw,
                      "seconds": round(time.monotonic() - start, 1)})
    host.update(benchreport.host_info())
    host["loadavg_after"] = host.pop("loadavg")
    host.update(clock_facts(cfg))
    doc = {"baseline_until": args.baseline_until, "kernels": kernels, "pairs": args.pairs,
           "rounds_per_boot": args.rounds, "bytes": args.bytes, "cipher": args.cipher,
           "versions": versions, "build_s": round(build_s, 1),
           "wall_s": round(time.monotonic() - t0, 1), "boots": boots}
    return doc, host, accel


def _eta(boots: list[dict[str, Any]], total: int) -> str:
    if not boots:
        return ""
    spent = sum(b["seconds"] for b in boots)
    return f" [{spent:.0f} s in boots so far, ~{spent / len(boots) * (total - len(boots)):.0f} " \
           "s left]"
