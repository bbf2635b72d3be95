"""Prometheus exporter for the governance health of a Cogni node."""

__version__ = "0.1.0"
