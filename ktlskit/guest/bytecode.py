"""Current bytecode for the ktlskit a guest runs.

A guest sees the host's root, the project included, over a read-only 9p mount: its Python
cannot write ``__pycache__``. A module whose bytecode is missing or stale is compiled again in
every Python process of the guest. Under TCG that added 1.5-1.8 s to the call server's
imports (7.0 s with bytecode, 8.6-8.9 s without). A fresh clone has none, and a shell with
``PYTHONDONTWRITEBYTECODE`` set never writes it, so the host compiles what is missing or stale
before it boots a guest (its call server imports at boot), before it restarts a guest's call
server (the server refused a call because the code changed), and before calls start Python
because a guest has no server: about 0.1 s when all is current. Attaching to a warm guest
needs nothing more: a change since its boot reaches the server's check on the first call.
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def compile_for_guest(package: Path = PACKAGE) -> bool:
    """Write the bytecode the guest's Python would otherwise compile; False when some could
    not be written (a read-only install: the guest then compiles those, as before)."""
    # py_compile writes whatever sys.dont_write_bytecode says; quiet=2: no listing, no errors.
    return bool(compileall.compile_dir(package, quiet=2, workers=1))
