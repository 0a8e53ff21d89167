"""A guest's errors: it failed to boot or died, or its kernel printed a splat."""

from __future__ import annotations

from ..errors import KtlskitError
from ..hosts.host import HostSplatError
from ..hosts.splat import Splat
from ..hosts.watch import SplatWatch

__all__ = ["GuestError", "GuestSplatError", "SplatWatch"]


class GuestError(KtlskitError):
    """The guest failed to boot or died."""


class GuestSplatError(GuestError, HostSplatError):
    """The guest kernel printed a splat; ``.splats`` holds the reports."""

    def __init__(self, splats: list[Splat], context: str = "", where: str = "") -> None:
        HostSplatError.__init__(self, splats, context, where)
