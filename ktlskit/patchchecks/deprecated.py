"""Deprecated APIs and module parameters (NIPA's deprecated_api and module_param).

New ``module_param`` is refused on netdev; ``dev_hold``/``dev_put``/
``get_net``/``put_net``/``init_dummy_netdev`` have tracked or allocated
replacements (``netdev_hold``, ``get_net_track``, ``alloc_netdev_dummy``).
A patch that adds more uses than it removes fails, and so does one that adds
any ``module_param`` line (NIPA warns even when the count only moved).
"""

from __future__ import annotations

import re

from .model import Check, Outcome, PatchContext, failed, passed

APIS = {
    "module_param": re.compile(r"module_param", re.I),
    "dev_hold": re.compile(r"\Wdev_hold\(", re.I),
    "dev_put": re.compile(r"\Wdev_put\(", re.I),
    "get_net": re.compile(r"\Wget_net\(", re.I),
    "put_net": re.compile(r"\Wput_net\(", re.I),
    "init_dummy_netdev": re.compile(r"\Winit_dummy_netdev\(", re.I),
}


class DeprecatedApi(Check):
    name = "deprecated_api"

    def run(self, ctx: PatchContext) -> Outcome:
        findings = []
        counts = []
        for api, rx in APIS.items():
            new = [f"{f.path}: +{line.strip()}" for f in ctx.patch.files
                   for line in f.added if rx.search(line)]
            old = sum(1 for f in ctx.patch.files for line in f.removed if rx.search(line))
            if new or old:
                counts.append(f"{api} was {old} now {len(new)}")
            if len(new) > old or (api == "module_param" and new):
                findings += [f"{api}: {n}" for n in new]
        if findings:
            return failed("; ".join(counts), findings)
        return passed("; ".join(counts) if counts else "none used")
