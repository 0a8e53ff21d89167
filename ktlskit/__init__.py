"""ktlskit: a kit for developing and testing Linux kernel TLS (kTLS)."""

__version__ = "0.1.0"
