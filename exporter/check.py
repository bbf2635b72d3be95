"""``governance-exporter check``: not built yet."""

from __future__ import annotations

import argparse
from typing import Any

from exporter.startup import UsageError

HELP = "(not built yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options yet."""


def run(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    raise UsageError("'check' is not built yet")
