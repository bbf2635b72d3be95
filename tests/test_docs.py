"""The reference in docs/ must keep up with the code, and the README stay a front door."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from exporter import collector, ledger, ledger_collector, memory_collector
from exporter.model import FAILURE_REASONS, RUN_STATUSES
from exporter.policy import LedgerThresholds
from exporter.settings import Settings, option_env, option_flag
from exporter.snapshot import (
    DistributionStreamRow,
    EpochStreamRow,
    ReceiptStreamRow,
    ScheduleRow,
)

ROOT = Path(__file__).resolve().parent.parent


DOCS = ROOT / "docs"
CONFIGURATION = (DOCS / "configuration.md").read_text()
METRICS = (DOCS / "metrics.md").read_text()
ALERTS = (DOCS / "alerts.md").read_text()


def test_every_option_is_in_the_configuration_table() -> None:
    for name in Settings.model_fields:
        row = f"| `{option_flag(name)}` | `{option_env(name)}` |"
        assert row in CONFIGURATION, f"docs/configuration.md's table lacks {name}"


def documented_metrics() -> dict[str, tuple[str, ...]]:
    """Every metric the docs' metrics reference lists, with the labels it lists.

    A row: | `name` | label, label | meaning |
    """
    rows = re.findall(r"^\| `(governance_[a-z_]+)` \|([^|]*)\|", METRICS, re.MULTILINE)
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), "a metric is documented twice"
    return {
        name: tuple(label.strip() for label in labels.split(",") if label.strip())
        for name, labels in rows
    }


def test_every_metric_is_in_the_metric_tables() -> None:
    documented = documented_metrics()
    tables = (*collector.METRICS, *memory_collector.METRICS, *ledger_collector.METRICS.values())
    declared = {spec.name: spec for spec in tables}
    assert len(declared) == len(tables)
    assert set(declared) <= set(documented), "docs/metrics.md lacks these metrics"
    assert set(documented) - set(declared) == set(), (
        "docs/metrics.md lists metrics that do not exist"
    )
    for name, labels in documented.items():
        assert labels == declared[name].labels, f"{name}: documented labels differ"
    # The reference does not quote HELP texts; every declared one must say something.
    for spec in declared.values():
        assert spec.help.strip(), f"{spec.name} has no HELP"


def test_a_full_ledger_view_exports_every_ledger_metric() -> None:
    """A view with a stream, receipts, distributions and a dispatch schedule yields a
    family for every row of the ledger's table: none is declared but never built."""
    now = datetime(2026, 12, 7, tzinfo=UTC)
    stream = EpochStreamRow("n", "s", 1, 1, 1, 3, now, now, 3, now, now, 2, now, now, now)
    dispatch = ScheduleRow("id", "governance:n:ledger_ingest", None, "0 6 * * *", "UTC", True, None)
    view = ledger.LedgerView(
        has_ledger=True,
        epochs_observable=True,
        receipts_observable=True,
        distributions_observable=True,
        streams=(ledger.epoch_stream(stream, (), now),),
        streams_truncated=False,
        receipts=(ledger.receipt_view(ReceiptStreamRow("n", [now] * 6), now),),
        receipts_truncated=False,
        last_review_at=None,
        reviews_observable=True,
        distributions=(
            ledger.distribution_view(DistributionStreamRow("n", "s", 1, 1, now, 1, now), now),
        ),
        dispatch=tuple(ledger.dispatch_views([dispatch], now)),
        dispatch_truncated=False,
        cursors={"s": now},
    )
    families = ledger_collector.ledger_families(view, LedgerThresholds(), "cogni_system")
    assert {family.name for family in families} == set(ledger_collector.METRICS)


def test_statuses_and_reasons_are_documented() -> None:
    for value in (*RUN_STATUSES, *FAILURE_REASONS):
        assert f"`{value}`" in METRICS


def test_bundled_schemas_equal_the_shared_reference() -> None:
    """The package ships copies of the source system's schemas (the demo loads them);
    they must not drift from ../shared/reference, which CI checks out beside us."""
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip(f"{shared} is not beside this checkout (CI has it)")
    bundled = Path(__file__).resolve().parent.parent / "exporter" / "reference"
    for version in ("2026-02", "2026-03", "2026-10", "2026-08-full"):
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
    rows = re.findall(r"^\| `(Governance\w+)` \| (\w+) \| (\w+) \|", ALERTS, re.MULTILINE)
    assert sorted(rows) == in_rules


README_MAX_LINES = 200
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)


def test_the_readme_fits_a_front_door() -> None:
    """Why, the two commands, your own node, where to read more; the reference is in docs/."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    readme = "\n".join(lines)
    commands = ("governance-exporter demo", ".venv/bin/pytest", "pip install -e '.[dev]'")
    for command in commands:
        assert command in readme, command
    assert readme.index(".venv/bin/pytest") < readme.index("## Against your own node")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = _slug(heading)
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _why_broken(document: Path, target: str) -> str | None:
    """None when a relative link leads to a file (and, into Markdown, to a heading)."""
    path, _, anchor = target.partition("#")
    resolved = (document.parent / path).resolve() if path else document
    if not resolved.exists():
        return "no such file"
    if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved.read_text()):
        return "no such heading"
    return None


def test_every_relative_link_leads_to_a_file() -> None:
    """README.md and docs/*.md link only to files (and headings) that exist."""
    broken = []
    checked = 0
    for document in _documents():
        for target in LINK.findall(FENCE.sub("", document.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
                continue
            checked += 1
            why = _why_broken(document, target)
            if why is not None:
                broken.append(f"{document.relative_to(ROOT)}: {target} ({why})")
    assert checked > 20, "no links found: the pattern is wrong"
    assert broken == []


def test_the_slugs_are_githubs() -> None:
    assert _slug("Without Grafana: the status page and `check`") == (
        "without-grafana-the-status-page-and-check"
    )
    assert _slug("From the gateway's memory files") == "from-the-gateways-memory-files"
    assert _anchors("# A\n## A\n```\n# B\n```\n") == {"a", "a-1"}
