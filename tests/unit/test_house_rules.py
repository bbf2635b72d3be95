"""House rules that need no process: the command is found without imports, no asserts."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_command_is_found_without_importing_any() -> None:
    from exporter.cli import chosen_command  # noqa: PLC0415

    assert chosen_command(["--account", "serve", "check", "--output", "json"]) == "check"
    assert chosen_command(["--log-level=DEBUG", "demo", "--speed", "5"]) == "demo"
    assert chosen_command(["--version"]) is None
    assert chosen_command([]) is None


def test_no_module_of_the_product_holds_an_assert() -> None:
    """Invariants are checks that survive ``python -O``, not asserts."""
    for path in sorted((REPO / "exporter").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s+assert ", text, re.MULTILINE), path
