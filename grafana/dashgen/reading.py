"""Reading the generated JSON back: its panels, their queries, its runway thresholds.

What the tests and the preview use (through ``grafana/dashboard.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from dashgen.widgets import GREEN, RED, YELLOW


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, including panels nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` / ``${name:fmt}`` by ``values[name]``, as Grafana would.

    Unknown variables raise KeyError, so a typo in a variable name is caught.
    """
    return _VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], expr)


def runway_thresholds(dashboard: Mapping[str, Any]) -> tuple[float, float]:
    """(red, yellow) runway thresholds in seconds, read back from the runway stat.

    The panel's steps are [base red, yellow from RED, green from just above YELLOW]; the
    green step is one float above YELLOW (Grafana steps are inclusive, the rules' green is
    strictly above), so it is stepped back down here.
    """
    (panel,) = (p for p in panels(dashboard) if p["title"] == "Credit health: runway")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    colours = [s["color"] for s in steps]
    if colours != [RED, YELLOW, GREEN]:
        raise ValueError(f"unexpected runway threshold colours {colours}")
    return float(steps[1]["value"]), math.nextafter(float(steps[2]["value"]), -math.inf)
