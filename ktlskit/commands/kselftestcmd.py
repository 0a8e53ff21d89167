"""``ktlskit kselftest TARGET[/TEST]``: build an upstream selftest, run it in a guest."""

from __future__ import annotations

import argparse

from .. import kselftest_env, table
from ..guest import Guest
from ..kselftest import KselftestError, KselftestRun, build_selftest, run_built
from ..pipeline import ensure_kernel
from .common import (
    add_guest_options,
    add_kernel_options,
    add_machine_options,
    guest_config,
    kernel_options,
    net_env,
    print_json,
)
from .runcmd import interrupt_on_sigterm


def register(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("kselftest", help="build and run an upstream kselftest in a guest")
    k.add_argument("name", help="TARGET/TEST (e.g. net/tls) or a whole TARGET (e.g. net)")
    add_kernel_options(k)
    add_guest_options(k)
    k.add_argument("--timeout", type=float, default=3600)
    k.add_argument("--json", action="store_true", help="totals and every case as JSON")
    k.add_argument("--ktap", action="store_true", help="print the test's own KTAP output")
    k.add_argument("--shards", type=int, default=1, metavar="N",
                   help="run a single harness program (e.g. net/tls) as N concurrent shards in "
                        "the guest, its cases dealt in turn (for a guest with CPUs to spare: "
                        "under TCG on 2 host cores it gained nothing)")
    k.add_argument("--no-retry", action="store_true",
                   help="do not run cases the harness killed for time again alone")
    add_machine_options(k)
    k.add_argument("--case", action="append", default=[], metavar="NAME",
                   help="with --env: run only this case of a Python test (repeatable; the "
                        "test's own -t NAME)")
    k.set_defaults(func=cmd_kselftest)


def cmd_kselftest(args: argparse.Namespace) -> int:
    env = net_env(args)
    if args.shards < 1:
        raise KselftestError(f"--shards {args.shards}: give 1 or more")
    if args.case and env is None:
        raise KselftestError("--case picks cases on machines an env file names: add --env")
    gcfg = guest_config(args)
    _, kb = ensure_kernel(kernel_options(args))
    if env is not None:  # on the DUT and remote the env names, with its net.config
        with interrupt_on_sigterm():
            run = kselftest_env.run_on_machines(kb, args.name, env, timeout=args.timeout,
                                                cases=args.case)
        return _report(args, run)
    workdir, argv = build_selftest(kb, args.name)  # before the boot: a bad name costs none
    with Guest.boot(kb.bzimage, gcfg) as g:
        run = run_built(g, kb, args.name, workdir, argv, timeout=args.timeout,
                        retry=not args.no_retry, shards=args.shards)
    return _report(args, run)


def _report(args: argparse.Namespace, run: KselftestRun) -> int:
    counts = run.report.counts()
    if args.json:
        print_json({"name": run.name, "ok": run.ok, "rc": run.rc, "seconds": run.seconds,
                    "counts": dict(counts), "failed": run.failed(),
                    "timed_out_then_retried": run.retried})
    elif args.ktap:
        print(run.output, end="")
    else:
        print(table.render(["kselftest", "pass", "fail", "skip", "xfail", "seconds", "verdict"],
                           [(run.name, counts["pass"], counts["fail"], counts["skip"],
                             counts["xfail"], run.seconds, "PASS" if run.ok else "FAIL")]))
        for case, verdict in run.retried.items():
            print(f"timed out, run again alone: {case}: {verdict}")
        for case in run.failed():
            print(f"FAILED: {case}")
    return 0 if run.ok else 1
