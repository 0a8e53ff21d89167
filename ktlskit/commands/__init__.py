"""One module per group of ``ktlskit`` subcommands; each has ``register(subparsers)``."""
