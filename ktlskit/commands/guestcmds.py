"""``ktlskit boot`` (shell, or a warm guest with --detach), ``ktlskit exec -- CMD`` and
``ktlskit retest`` (the edit-test loop: rebuild, warm guest, chosen tests)."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import replace

from .. import paths
from ..guest import warm
from ..pipeline import ensure_kernel
from ..progress import say
from .common import add_guest_options, add_kernel_options, guest_config, kernel_options

#: What ``retest`` runs when no tests are named: the netdevsim offload smoke test.
RETEST_DEFAULT = ["vmtests", "-m", "smoke"]


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("boot", help="boot the kernel and open a shell; --detach: keep a warm "
                                    "guest up for exec, run, retest and pytest")
    add_kernel_options(b)
    add_guest_options(b)
    g = b.add_mutually_exclusive_group()
    g.add_argument("--detach", action="store_true",
                   help="start (or keep) a warm guest for the current build and return")
    g.add_argument("--stop", action="store_true", help="stop the warm guest of this kernel")
    b.add_argument("--idle-timeout", type=float, default=warm.IDLE_TIMEOUT, metavar="S",
                   help=f"a warm guest powers off after S seconds unused "
                        f"(default {warm.IDLE_TIMEOUT:.0f})")
    b.set_defaults(func=cmd_boot)
    e = sub.add_parser("exec", help="run one command in a guest (the warm one if it is "
                                    "current), print its output")
    add_kernel_options(e)
    add_guest_options(e)
    e.add_argument("--timeout", type=float, default=600, help="seconds (default 600)")
    e.add_argument("--no-warm", action="store_true", help="always boot a private guest")
    e.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    e.set_defaults(func=cmd_exec)
    r = sub.add_parser("retest", help="after an edit: rebuild (incremental), make sure a warm "
                                      "guest runs the new kernel, run the chosen tests")
    add_kernel_options(r)
    add_guest_options(r)
    r.add_argument("pytest_args", nargs=argparse.REMAINDER,
                   help=f"-- PYTEST ARGS (default: {' '.join(RETEST_DEFAULT)})")
    r.set_defaults(func=cmd_retest)


def cmd_boot(args: argparse.Namespace) -> int:
    gcfg = guest_config(args)
    if args.idle_timeout <= 0:
        raise SystemExit("ktlskit boot: --idle-timeout must be positive")
    _, kb = ensure_kernel(kernel_options(args))
    if args.stop:
        say("warm guest stopped" if warm.stop(kb.bzimage) else "no warm guest was running")
        return 0
    if args.detach:
        rec = warm.start(kb.bzimage, gcfg, args.idle_timeout)
        print(f"warm guest: {rec.boot_dir}")
        return 0
    with warm.guest_for(kb.bzimage, replace(gcfg, serve_calls=False)) as g:
        print(f"guest console: {g.console_path}", file=sys.stderr)
        return subprocess.call(g.ssh_argv())


def _after_dashes(words: list[str]) -> list[str]:
    return words[1:] if words and words[0] == "--" else words


def cmd_exec(args: argparse.Namespace) -> int:
    argv = _after_dashes(args.cmd)
    if not argv:
        raise SystemExit("ktlskit exec: give a command after --")
    command = argv[0] if len(argv) == 1 else shlex.join(argv)
    gcfg = replace(guest_config(args), serve_calls=False)  # a shell command, no calls
    _, kb = ensure_kernel(kernel_options(args))
    with warm.guest_for(kb.bzimage, gcfg, reuse=not args.no_warm) as g:
        res = g.run(command, timeout=args.timeout, check=False)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.rc


def cmd_retest(args: argparse.Namespace) -> int:
    """Rebuild if the tree changed, keep a warm guest on the new kernel, run pytest there."""
    tests = _after_dashes(args.pytest_args) or RETEST_DEFAULT
    gcfg = guest_config(args)
    kopts = kernel_options(args)
    _, kb = ensure_kernel(kopts)
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=",
            "--kernel-profile", kopts.profile, "--guest-cpus", str(gcfg.cpus),
            "--guest-memory", gcfg.memory, *tests]
    if kopts.kernel_src:
        argv[5:5] = ["--kernel-src", kopts.kernel_src]
    say(f"running: pytest {shlex.join(argv[3:])}")
    # pytest starts (imports, collection, the kernel check) while the warm guest boots: its
    # guest fixture waits on the warm-guest registry's lock, which start() holds until the
    # guest is up, then takes that guest.
    with subprocess.Popen(argv, cwd=paths.project_dir(), env=os.environ.copy()) as proc:
        try:
            if "--no-warm-guest" not in tests:  # else pytest boots its own, and only that
                warm.start(kb.bzimage, gcfg)
        except BaseException:
            proc.terminate()
            raise
        return proc.wait()
