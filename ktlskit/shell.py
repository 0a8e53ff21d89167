"""Running host commands: ``cmd()`` with a timeout and a typed error.

Modelled on the kernel selftests' ``lib/py`` helpers: one call runs one
command, captures its output, and fails loudly with what it printed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import KtlskitError


class CommandError(KtlskitError):
    """A host command failed or ran out of time."""

    def __init__(self, argv: Sequence[str], rc: int | None, output: str, why: str) -> None:
        self.argv = list(argv)
        self.rc = rc
        self.output = output
        tail = "\n".join(output.splitlines()[-20:])
        super().__init__(f"{why}: {shlex.join(self.argv)}\n{tail}")


@dataclass(frozen=True)
class Result:
    """What a finished command left behind."""

    argv: list[str]
    rc: int
    stdout: str
    stderr: str


def cmd(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input_text: str | None = None,
) -> Result:
    """Run ``argv`` to completion within ``timeout`` seconds."""
    args = [str(a) for a in argv]
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            input=input_text,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = _text(exc.stdout) + _text(exc.stderr)
        raise CommandError(args, None, out, f"timed out after {timeout:.0f}s") from exc
    except FileNotFoundError as exc:
        raise CommandError(args, None, "", f"{args[0]} is not installed") from exc
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stdout + proc.stderr,
                           f"exit status {proc.returncode}")
    return Result(args, proc.returncode, proc.stdout, proc.stderr)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
