"""Options shared by the subcommands that need a kernel or a guest."""

from __future__ import annotations

import argparse
import json
import sys

from ..guest import GuestConfig
from ..pipeline import KernelOptions


def add_kernel_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kernel-src", metavar="PATH",
                   help="kernel tree or tarball to use (remembered for this project); "
                        "'debian' for the default Debian linux-source package")
    p.add_argument("--profile", default="default",
                   help="kernel config profile: default, or NAME for kconfig/NAME.config")


def add_guest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpus", type=int, default=2, help="guest CPUs (default 2)")
    p.add_argument("--memory", default="2G", help="guest memory (default 2G)")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help="auto probes KVM once and falls back to TCG")


def kernel_options(args: argparse.Namespace) -> KernelOptions:
    """The kernel options, checked (profile, --kernel-src) before any work."""
    opts = KernelOptions(kernel_src=args.kernel_src, profile=args.profile)
    opts.check()
    return opts


def guest_config(args: argparse.Namespace) -> GuestConfig:
    """The guest options, checked before any work."""
    cfg = GuestConfig(cpus=args.cpus, memory=args.memory, accel=args.accel)
    cfg.check()
    return cfg


def print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
