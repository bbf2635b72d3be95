"""The README's tables must keep up with the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from exporter import collector, memory_collector
from exporter.model import FAILURE_REASONS, RUN_STATUSES
from exporter.settings import Settings, option_env, option_flag

ROOT = Path(__file__).resolve().parent.parent


README = (ROOT / "README.md").read_text()


def test_every_option_is_in_the_configuration_table() -> None:
    for name in Settings.model_fields:
        row = f"| `{option_flag(name)}` | `{option_env(name)}` |"
        assert row in README, f"README's configuration table lacks {name}"


def documented_metrics() -> dict[str, tuple[str, ...]]:
    """Every metric the docs' metrics reference lists, with the labels it lists.

    A row: | `name` | label, label | meaning |
    """
    rows = re.findall(r"^\| `(governance_[a-z_]+)` \|([^|]*)\|", README, re.MULTILINE)
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), "a metric is documented twice"
    return {
        name: tuple(label.strip() for label in labels.split(",") if label.strip())
        for name, labels in rows
    }


def test_every_metric_is_in_the_metric_tables() -> None:
    documented = documented_metrics()
    declared = {spec.name: spec for spec in (*collector.METRICS, *memory_collector.METRICS)}
    assert len(declared) == len(collector.METRICS) + len(memory_collector.METRICS)
    assert set(declared) <= set(documented), "README lacks these metrics"
    assert set(documented) - set(declared) == set(), "README documents metrics that do not exist"
    for name, labels in documented.items():
        assert labels == declared[name].labels, f"{name}: documented labels differ"
    # The reference does not quote HELP texts; every declared one must say something.
    for spec in declared.values():
        assert spec.help.strip(), f"{spec.name} has no HELP"


def test_statuses_and_reasons_are_documented() -> None:
    for value in (*RUN_STATUSES, *FAILURE_REASONS):
        assert f"`{value}`" in README


def test_bundled_schemas_equal_the_shared_reference() -> None:
    """The package ships copies of the source system's schemas (the demo loads them);
    they must not drift from ../shared/reference, which CI checks out beside us."""
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip(f"{shared} is not beside this checkout (CI has it)")
    bundled = Path(__file__).resolve().parent.parent / "exporter" / "reference"
    for version in ("2026-02", "2026-03"):
        name = f"schema-{version}.sql"
        assert (bundled / name).read_text() == (shared / name).read_text(), name


def test_the_alert_table_matches_the_rules() -> None:
    files = sorted((ROOT / "prometheus" / "rules").glob("*.rules.yml"))
    in_rules = sorted(
        (rule["alert"], rule["labels"]["severity"], rule.get("for", "0m"))
        for path in files
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    )
    rows = re.findall(r"^\| `(Governance\w+)` \| (\w+) \| (\w+) \|", README, re.MULTILINE)
    assert sorted(rows) == in_rules
