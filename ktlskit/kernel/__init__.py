"""Kernel source, configuration, patch series and build."""
