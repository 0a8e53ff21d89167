"""Where ktlskit keeps things: the project checkout and the cache directory."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of everything ktlskit downloads or builds (``$KTLSKIT_CACHE``)."""
    env = os.environ.get("KTLSKIT_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "ktlskit"
    base.mkdir(parents=True, exist_ok=True)
    return base


def project_dir() -> Path:
    """The checkout holding ``kconfig/`` and ``patches/``.

    ``$KTLSKIT_PROJECT`` wins; then the current directory or one of its
    parents; then the checkout this package was imported from.
    """
    env = os.environ.get("KTLSKIT_PROJECT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for cand in (here, *here.parents):
        if (cand / "kconfig").is_dir() and (cand / "patches").is_dir():
            return cand
    return Path(__file__).resolve().parent.parent
