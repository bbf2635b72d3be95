"""The dashboard: its rows in order (``ROWS``), stacked on the grid and numbered.

``ROWS`` is the one list of rows; each row function lays its panels out from the
grid row ``y`` it is given, and ``build()`` starts the next row below the lowest panel.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from dashgen.labels import Fleet
from dashgen.rows.charters import charter_row
from dashgen.rows.credit import credit_row
from dashgen.rows.exporter_health import exporter_row
from dashgen.rows.failures import failure_row
from dashgen.rows.fleet import fleet_row
from dashgen.rows.ledger import ledger_row
from dashgen.rows.memory import memory_row
from dashgen.rows.spend import spend_row
from dashgen.rows.trends import trend_row
from dashgen.rows.unscheduled import unscheduled_row
from dashgen.variables import variables
from dashgen.variants import DASHBOARD_TITLE, DEFAULT, Variant
from dashgen.widgets import DS, GRID_COLUMNS, Panel, grid


class Row(Protocol):
    """A row of the dashboard: its panels, laid out from grid row ``y`` down."""

    def __call__(self, *, y: int, fleet: Fleet) -> list[Panel]: ...


ROWS: tuple[tuple[str, Row], ...] = (
    ("Fleet", fleet_row),
    ("Credit health", credit_row),
    ("Which work eats the credits, and what is refused", spend_row),
    ("Charters", charter_row),
    ("Failed runs and alerts", failure_row),
    ("Work without a schedule", unscheduled_row),
    ("Attribution ledger", ledger_row),
    ("Gateway memory: heartbeats and budget gate", memory_row),
    ("Trends", trend_row),
    ("Exporter health", exporter_row),
)


def _bottom(panels: list[Panel]) -> int:
    """The first grid row below ``panels``."""
    bottoms = []
    for panel in panels:
        pos = panel.build().grid_pos
        if pos is None:
            raise ValueError("every panel is placed by grid()")
        bottoms.append(pos.y + pos.h)
    return max(bottoms)


def build(variant: Variant | None = None) -> dict[str, Any]:
    """The dashboard as a JSON-ready dict (the bundled stack's unless told otherwise)."""
    variant = variant or DEFAULT
    fleet = variant.fleet
    dash = (
        db.Dashboard(DASHBOARD_TITLE)
        .uid(variant.uid)
        .description(
            "Is governance healthy? Credit runway, which work spends the credits and "
            "which is refused, charter schedules, failed runs, the work without a schedule "
            "(PR reviews), the attribution ledger (epochs, webhook receipts, distributions, "
            "dispatch), the gateway's heartbeats and budget gate, and the exporter "
            "itself, from governance-exporter metrics."
        )
        .tags(["governance", "cogni"])
        .readonly()
        .timezone("utc")
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .timepicker(db.TimePicker().refresh_intervals(["30s", "1m", "5m", "15m", "1h"]))
        .annotation(
            db.AnnotationQuery()
            .name("Governance alerts firing")
            .datasource(DS)
            .expr(fleet.alerts('alertstate="firing"'))
            .enable(True)
            .hide(False)
            .icon_color("red")
        )
    )
    for variable in variables(fleet, variant.datasource_uid):
        dash = dash.with_variable(variable)
    panel_id, y = 0, 0
    for title, make in ROWS:
        panel_id += 1
        dash = dash.with_row(
            db.Row(title).id(panel_id).grid_pos(grid(x=0, y=y, w=GRID_COLUMNS, h=1))
        )
        row_panels = make(y=y + 1, fleet=fleet)
        for panel in row_panels:
            panel_id += 1
            dash = dash.with_panel(panel.id(panel_id))
        y = _bottom(row_panels)
    data: dict[str, Any] = json.loads(json.dumps(dash.build(), cls=JSONEncoder))
    return data


def render(variant: Variant | None = None) -> str:
    return json.dumps(build(variant), indent=2, ensure_ascii=False) + "\n"
