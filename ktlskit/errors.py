"""Base of every error ktlskit raises on purpose.

Each module defines its own subclasses next to the code that raises them, so
the exception type names the concern (kTLS socket, kernel build, guest, ...)
and the message names the cause.
"""


class KtlskitError(Exception):
    """Something ktlskit detected and can explain; never a bare OSError."""
