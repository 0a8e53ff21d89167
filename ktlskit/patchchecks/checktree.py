"""The check copy of the kernel tree (``trees/IDENT-check``), reset to the series' base.

The user's tree is only read. Each run copies it (rsync, mtimes kept) over
the check copy, which the last run left with its series applied, and gives
every file either series touched whose content changed a fresh mtime (the
others keep theirs), so the incremental builds in the check build
directories recompile exactly what changed. The set of
touched files is recorded before the tree is modified, so an interrupted
run is cleaned up by the next one.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import paths
from ..kernel import treesync
from ..kernel.series import _freshen, _snapshot
from ..kernel.source import KernelSource

STATE_SUFFIX = ".check.json"


def tree_for(src: KernelSource) -> Path:
    return paths.cache_dir() / "trees" / f"{src.ident}-check"


def reset(src: KernelSource, touched: set[str]) -> Path:
    """The check tree at the series' base; ``touched``: files the series will change."""
    tree = tree_for(src)
    state = tree.with_name(tree.name + STATE_SUFFIX)
    tree.parent.mkdir(parents=True, exist_ok=True)
    before: set[str] = set(json.loads(state.read_text())["touched"]) if state.is_file() else set()
    state.write_text(json.dumps({"touched": sorted(before | touched)}, indent=1))
    snap = _snapshot(tree, before | touched)
    treesync.sync_tree(src.path, tree, exclude=set())
    _freshen(tree, before | touched, snap)
    state.write_text(json.dumps({"touched": sorted(touched)}, indent=1))
    return tree
