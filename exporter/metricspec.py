"""One metric's declaration (name, HELP, labels, type), from which a fresh family is built.

Each collector declares its metrics once, in one table of ``MetricSpec``; the
families of a scrape are built from those rows and nowhere else, and the docs'
metrics reference is tested against the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
)

MetricType = Literal["gauge", "counter", "info"]


@dataclass(frozen=True)
class MetricSpec:
    """A metric as a scrape shows it.

    ``name`` is the sample's name: a counter's ends in ``_total``, an info's in
    ``_info``. ``labels`` are its label names in order; for an info metric they are
    the keys of its value.
    """

    name: str
    help: str
    labels: tuple[str, ...] = ()
    type: MetricType = "gauge"

    def gauge(self) -> GaugeMetricFamily:
        self._expect("gauge")
        return GaugeMetricFamily(self.name, self.help, labels=list(self.labels))

    def counter(self) -> CounterMetricFamily:
        self._expect("counter")
        # client_python appends the _total itself.
        return CounterMetricFamily(
            self.name.removesuffix("_total"), self.help, labels=list(self.labels)
        )

    def info(self) -> InfoMetricFamily:
        self._expect("info")
        # client_python appends the _info itself; the labels are the value's keys.
        return InfoMetricFamily(self.name.removesuffix("_info"), self.help)

    def _expect(self, kind: MetricType) -> None:
        if self.type != kind:
            raise TypeError(f"{self.name} is a {self.type}, not a {kind}")


def unix_time_or_zero(value: datetime | None) -> float:
    """A time as a sample's value: 0 for never (the metric's HELP says so)."""
    return value.timestamp() if value is not None else 0.0


def unix_time_or_none(value: datetime | None) -> float | None:
    """A time as a sample's value, or ``None`` when the series is to be absent."""
    return value.timestamp() if value is not None else None
