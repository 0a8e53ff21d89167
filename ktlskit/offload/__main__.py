"""``python -m ktlskit.offload CASE...``: run offload cases on this machine, print their facts.

The output is ``{case: facts}`` as JSON; progress goes to stderr. Programs use
``call(host, ktlskit.offload.run.run_cases, specs, nbytes)`` instead.
"""

from __future__ import annotations

import argparse
import json
import sys

from .run import CASES, CaseSpecError, parse_spec, run_cases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ktlskit.offload",
        description="Run offload cases on this machine; print {case: facts} as JSON.")
    p.add_argument("cases", nargs="+", metavar="CASE[:VERSION][:CIPHER]",
                   help=f"one of {', '.join(CASES)}; TLS version 1.2 or 1.3 (default), "
                        "cipher aes-gcm-128 (default) or aes-gcm-256")
    p.add_argument("--bytes", type=int, default=4 << 20, help="bytes per bulk stream")
    args = p.parse_args(argv)
    for spec in args.cases:
        try:
            parse_spec(spec)
        except CaseSpecError as exc:
            p.error(str(exc))
    json.dump(run_cases(args.cases, args.bytes), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
