"""A recording rule's series in a query: read recorded, or computed inline (``Fleet.recorded``).

Grafana-managed alerting (Cogni's operators' alerts, ``governance-exporter rules
--format grafana``) inlines the recording rules into each alert and records none, so
their data source has no ``governance:*`` series. A dashboard for them computes the
recording in its own query instead: the recording rule's expression from the rules'
one source (``exporter/rules/governance.rules.yml.in``), with the recordings it reads
inlined the way the Grafana form inlines them (``exporter.rules.grafana.inline``) and
the dashboard's selector where the rules select the exporter. The two never drift
apart: the level is the rule's own expression, its thresholds included.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

from dashgen.labels import Fleet
from exporter.rules import grafana, source


@functools.cache
def _recordings(selector: str) -> dict[str, grafana.Recording]:
    document: dict[str, Any] = yaml.safe_load(source.render(source.NODE, selector))
    return grafana.recordings(document)


def recording(fleet: Fleet, name: str, *matchers: str) -> str:
    """``name{matchers, fleet}`` where the data source records the rules; else the
    expression that records it, on the series ``matchers`` and the fleet select."""
    if fleet.recorded:
        return fleet.sel(name, *matchers)
    recorded = _recordings(", ".join((*matchers, fleet.matchers)))
    if name not in recorded:
        raise ValueError(f"{name}: no rule of {source.NODE} records it")
    inlined = " ".join(grafana.inline(recorded[name].expr, recorded).split())
    # One line, as every other query of the file, without the rule's indentation.
    return re.sub(r"\s+\)", ")", re.sub(r"\(\s+", "(", inlined))
