"""The lowest dependency versions pyproject.toml allows are the ones CI tests, and they work.

.ci/run installs exactly the versions in .ci/min-versions.txt into a venv of
their own and runs tests/unit there; these tests tie that file to
pyproject.toml's lower bounds and check what broke before on an older
prometheus-client: every module imports, and ``exporter.exposition`` encodes
families through client_python's own encoders (text, OpenMetrics, gzip).
Pure: no PostgreSQL, no subprocess.
"""

from __future__ import annotations

import gzip
import importlib
import pkgutil
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

import exporter
from exporter.cache import SnapshotCache
from exporter.collection import CollectionResult
from exporter.dberrors import DatabaseUnavailable
from exporter.exposition import ExpositionCache
from exporter.snapshot import Snapshot

ROOT = Path(__file__).resolve().parents[2]
MIN_VERSIONS = ROOT / ".ci" / "min-versions.txt"
NOW = datetime(2026, 2, 15, 12, 7, tzinfo=UTC)
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def lower_bounds() -> dict[str, Version]:
    """pyproject.toml's runtime dependencies and the lowest version each allows."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds: dict[str, Version] = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        # An exact pin (==) is its own lowest version.
        lowest = [spec.version for spec in requirement.specifier if spec.operator in {">=", "=="}]
        assert len(lowest) == 1, f"{line}: one '>=' lower bound or '==' pin, the version CI tests"
        bounds[canonical(requirement.name)] = Version(lowest[0])
    return bounds


def pinned() -> dict[str, Version]:
    """The exact versions .ci/min-versions.txt pins."""
    pins: dict[str, Version] = {}
    for raw in MIN_VERSIONS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{line}: an exact pin"
        pins[canonical(requirement.name)] = Version(spec.version)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_pinned_versions_are_pyprojects_lower_bounds() -> None:
    assert pinned() == lower_bounds()


@pytest.mark.parametrize(
    "module",
    sorted(
        info.name
        for info in pkgutil.walk_packages(exporter.__path__, "exporter.")
        if not info.name.endswith(".__main__")  # runs the command line when imported
    ),
)
def test_every_module_imports(module: str) -> None:
    # With prometheus-client 0.20 and the old encoder, ``serve`` did not import.
    assert importlib.import_module(module).__name__ == module


class NoDatabase:
    """A source whose every read fails, as an unreachable database does."""

    def read(self, now: datetime) -> Snapshot:
        raise DatabaseUnavailable("connection refused")


class OneCollection:
    """The collections of a ``SnapshotCache`` whose latest one is still fresh."""

    def __init__(self) -> None:
        self.latest = SnapshotCache(NoDatabase(), clock=lambda: NOW).get()
        self.gets = 0

    def get(self) -> CollectionResult:
        self.gets += 1
        return self.latest


class Constructed:
    """A custom collector over constructed families: a gauge, a labelled counter, an info."""

    def __init__(self) -> None:
        self.builds = 0

    def families(self, result: CollectionResult) -> Iterator[Metric]:
        self.builds += 1
        up = GaugeMetricFamily("smoke_up", "Whether the last collection read the database.")
        up.add_metric([], 1.0 if result.ok else 0.0)
        yield up
        errors = CounterMetricFamily(
            "smoke_collection_errors", "Collections that failed, by reason.", labels=["reason"]
        )
        for reason, count in sorted(result.errors_by_reason.items()):
            errors.add_metric([reason], count)
        yield errors
        info = InfoMetricFamily("smoke_build", "The build.")
        info.add_metric([], {"version": '1.0 "quoted"\\'})
        yield info


def exposition() -> tuple[ExpositionCache, Constructed, OneCollection]:
    snapshots = OneCollection()
    collector = Constructed()
    return ExpositionCache(snapshots, collector.families), collector, snapshots  # type: ignore[arg-type]


def test_text_format_through_client_python() -> None:
    cache, _, _ = exposition()
    body = cache.body("", "")
    assert body.content_type.startswith("text/plain; version=0.0.4")
    assert not body.gzipped
    text = body.data.decode()
    assert "# TYPE smoke_up gauge\nsmoke_up 0.0\n" in text
    assert "# TYPE smoke_collection_errors_total counter\n" in text
    assert 'smoke_collection_errors_total{reason="database_unavailable"} 1.0\n' in text
    assert 'smoke_build_info{version="1.0 \\"quoted\\"\\\\"} 1.0\n' in text
    parsed = {family.name: family for family in text_families(text)}
    assert parsed["smoke_up"].samples[0].value == 0.0
    assert parsed["smoke_build_info"].samples[0].labels == {"version": '1.0 "quoted"\\'}


def test_openmetrics_through_client_python() -> None:
    cache, _, _ = exposition()
    body = cache.body(OPENMETRICS, "")
    assert body.content_type.startswith("application/openmetrics-text; version=1.0.0")
    text = body.data.decode()
    assert text.endswith("# EOF\n")
    parsed = {family.name: family for family in openmetrics_families(text)}
    assert parsed["smoke_collection_errors"].type == "counter"
    errors = {s.labels["reason"]: s.value for s in parsed["smoke_collection_errors"].samples}
    assert errors["database_unavailable"] == 1.0
    assert parsed["smoke_build"].type == "info"
    assert parsed["smoke_build"].samples[0].labels == {"version": '1.0 "quoted"\\'}


def test_one_collection_is_built_once_and_shared_by_every_format() -> None:
    cache, collector, snapshots = exposition()
    text = cache.body("", "")
    zipped = cache.body("", "gzip")
    openmetrics = cache.body(OPENMETRICS, "gzip")
    again = cache.body("", "gzip")
    assert snapshots.gets == 4
    assert collector.builds == 1
    assert zipped.gzipped
    assert gzip.decompress(zipped.data) == text.data
    assert again.data is zipped.data
    assert gzip.decompress(openmetrics.data).endswith(b"# EOF\n")
    assert cache.builds["families"] == 1
    assert sum(count for key, count in cache.builds.items() if key != "families") == 4
