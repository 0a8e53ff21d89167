"""Guests: boot a built kernel under QEMU through virtme-ng and control it over SSH."""

from .guest import Guest, GuestConfig
from .local import LocalGuest, running_in_guest
from .ssh import GuestCommandError, GuestResult, GuestTimeoutError
from .watch import GuestError, GuestSplatError

__all__ = ["Guest", "GuestCommandError", "GuestConfig", "GuestError", "GuestResult",
           "GuestSplatError", "GuestTimeoutError", "LocalGuest", "running_in_guest"]
