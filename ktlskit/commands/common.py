"""Options shared by the subcommands that need a kernel or a guest."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..guest import GuestConfig, boot_timeout
from ..hosts.netenv import NetEnv
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
    """The kernel options, checked (profile, --kernel-src, --until) before any work."""
    opts = KernelOptions(kernel_src=args.kernel_src, profile=args.profile,
                         until=getattr(args, "until", None))
    opts.check()
    return opts


def guest_config(args: argparse.Namespace) -> GuestConfig:
    """The guest options, checked before any work."""
    cfg = GuestConfig(cpus=args.cpus, memory=args.memory, accel=args.accel,
                      boot_timeout=boot_timeout(getattr(args, "profile", "default")))
    cfg.check()
    return cfg


def print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def add_machine_options(p: argparse.ArgumentParser) -> None:
    """Real machines instead of a guest: NIPA's env file and/or the same keys as options."""
    m = p.add_argument_group(
        "real machines", "run on a DUT and a remote instead of a guest: an env file in the "
        "format of the kernel's drivers/net/net.config, and/or these options (which override "
        "it)")
    m.add_argument("--env", metavar="FILE", type=Path, help="NIPA's env file")
    m.add_argument("--dut", metavar="TARGET", help="the DUT over SSH ([user@]host[:port] or an "
                   "SSH config alias; default: this machine is the DUT) [KTLSKIT_DUT]")
    m.add_argument("--peer", metavar="TARGET", dest="remote",
                   help="the remote over SSH [KTLSKIT_REMOTE, else REMOTE_ARGS]")
    m.add_argument("--ssh-config", metavar="FILE", help="SSH config for those names "
                   "(default ~/.ssh/config) [KTLSKIT_SSH_CONFIG]")
    m.add_argument("--netif", metavar="IF", help="the DUT's interface on the link [NETIF]")
    m.add_argument("--peer-netif", metavar="IF", dest="remote_netif",
                   help="the remote's interface [KTLSKIT_REMOTE_NETIF]")
    for key in ("local-v4", "remote-v4", "local-v6", "remote-v6"):
        m.add_argument(f"--{key}", metavar="ADDR", help=f"[{key.upper().replace('-', '_')}]")


_ENV_OPTIONS = ("dut", "remote", "ssh_config", "netif", "remote_netif", "local_v4",
                "remote_v4", "local_v6", "remote_v6")


def net_env(args: argparse.Namespace) -> NetEnv | None:
    """The machines the options name (checked), or None: use a guest."""
    given = {k: getattr(args, k) for k in _ENV_OPTIONS}
    if args.env is None and all(v is None for v in given.values()):
        return None
    env = NetEnv.load(args.env) if args.env is not None else NetEnv()
    if args.remote is not None and args.env is None:
        given["remote_args"] = args.remote
    env = env.with_options(**given)
    env.check()
    return env
