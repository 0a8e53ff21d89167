"""``python -m ktlskit.offload CASE...``: run offload cases in this guest, print their facts.

The last line of output is ``{case: facts}`` as JSON; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from .cases import CASES, parse_spec, run_case


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ktlskit.offload",
        description="Run offload cases in this guest; print {case: facts} as one JSON line.")
    p.add_argument("cases", nargs="+", metavar="CASE[:VERSION][:CIPHER]",
                   help=f"one of {', '.join(CASES)}; TLS version 1.2 or 1.3 (default), "
                        "cipher aes-gcm-128 (default) or aes-gcm-256")
    p.add_argument("--bytes", type=int, default=4 << 20, help="bytes per bulk stream")
    args = p.parse_args(argv)
    for spec in args.cases:
        try:
            parse_spec(spec)
        except ValueError as exc:
            p.error(str(exc))
    out = {}
    for spec in args.cases:
        print(f"offload: {spec} ...", file=sys.stderr, flush=True)
        out[spec] = run_case(spec, args.bytes)
        print(f"offload: {spec} done in {out[spec]['case_seconds']}s", file=sys.stderr,
              flush=True)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
