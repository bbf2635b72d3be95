"""The dashboard's shared vocabulary: colours, threshold steps and the small builders.

Every row module builds its panels from these (``new_stat``, ``new_table``,
``new_timeseries``, ``query``, ``steps``, ``prop``...), so that every panel reads its
data source through the ``datasource`` variable and has the same look. Nothing here
knows a metric: selectors are ``dashgen.labels``'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import TypeVar

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from exporter.policy import RED_RUNWAY_SECONDS, YELLOW_RUNWAY_SECONDS

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

GRID_COLUMNS = 24  # Grafana's grid is 24 columns wide

# Grafana thresholds are inclusive lower bounds (a value >= step gets the step's colour).
# The rules say green is runway > 24 h, so the green step sits one float above 24 h:
# exactly 86400 s is yellow, as in the alert rules. 6 h itself is yellow in both.
GREEN_STEP = math.nextafter(float(YELLOW_RUNWAY_SECONDS), math.inf)

RED, YELLOW, GREEN, ORANGE, BLUE = "red", "yellow", "green", "orange", "blue"
NEUTRAL = "text"
TRANSPARENT = "transparent"

Panel = stat.Panel | table.Panel | timeseries.Panel | bargauge.Panel
# Any one kind of panel, kept as that kind through a helper.
P = TypeVar("P", stat.Panel, table.Panel, timeseries.Panel, bargauge.Panel)
Props = list[dm.DynamicConfigValue]  # the properties of one override
# A table's queries joined into one line per label set (their values: Value #A, #B...).
MERGE = dm.DataTransformerConfig(id_val="merge", options={})


# --- small builders ---------------------------------------------------------------


def grid(*, x: int, y: int, w: int, h: int) -> dm.GridPos:
    """A panel's place on Grafana's grid: column ``x``, row ``y``, ``w`` wide, ``h`` high."""
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
        raise ValueError(f"panel off the {GRID_COLUMNS}-column grid: x={x} y={y} w={w} h={h}")
    return dm.GridPos(h=h, w=w, x=x, y=y)


def query(
    expr: str, ref: str, legend: str = "", *, instant: bool = True, table_format: bool = False
) -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    q = q.instant() if instant else q.range()
    if legend:
        q = q.legend_format(legend)
    if table_format:
        q = q.format(PromQueryFormat.TABLE)
    return q


def steps(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def steps_json(*steps: tuple[float | None, str]) -> dict[str, object]:
    """Threshold steps as plain JSON, for override properties (untyped in the schema)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def runway_steps() -> db.ThresholdsConfig:
    """Red below 6 h (and at a zero balance, where runway is 0), yellow to 24 h, green above."""
    return steps((None, RED), (float(RED_RUNWAY_SECONDS), YELLOW), (GREEN_STEP, GREEN))


def value_map(mapping: Mapping[str, tuple[str, str | None]]) -> dm.ValueMap:
    return dm.ValueMap(
        options={
            key: dm.ValueMappingResult(text=text, color=color, index=i)
            for i, (key, (text, color)) in enumerate(mapping.items())
        }
    )


def map_json(mapping: Mapping[str, tuple[str, str | None]]) -> dict[str, object]:
    """A value mapping as plain JSON (override properties are untyped in the schema)."""
    data: dict[str, object] = json.loads(json.dumps(value_map(mapping), cls=JSONEncoder))
    return data


def no_data(text: str, color: str | None = None) -> dm.SpecialValueMap:
    return dm.SpecialValueMap(
        options=dm.DashboardSpecialValueMapOptions(
            match=dm.SpecialValueMatch.NULL_AND_NAN,
            result=dm.ValueMappingResult(text=text, color=color),
        )
    )


def no_data_json(text: str, color: str | None = None) -> dict[str, object]:
    data: dict[str, object] = json.loads(json.dumps(no_data(text, color), cls=JSONEncoder))
    return data


def label_mapping(
    states: tuple[str, ...], colours: Mapping[str, str]
) -> dict[str, tuple[str, str | None]]:
    """Label value -> (itself, colour): colours a table column that shows a label."""
    return {str(state): (str(state), colours[str(state)]) for state in states}


def prop(prop_id: str, value: object) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=prop_id, value=value)


def background() -> dm.DynamicConfigValue:
    return prop("custom.cellOptions", {"type": "color-background", "mode": "basic"})


def colour_text() -> dm.DynamicConfigValue:
    return prop("custom.cellOptions", {"type": "color-text"})


def reduce_last() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")


def new_stat(title: str, description: str, unit: str, pos: dm.GridPos) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .grid_pos(pos)
        .reduce_options(reduce_last())
        .graph_mode(cm.BigValueGraphMode.NONE)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .justify_mode(cm.BigValueJustifyMode.CENTER)
        .text_mode(cm.BigValueTextMode.AUTO)
        .orientation(cm.VizOrientation.AUTO)
    )


def new_table(title: str, description: str, unit: str, pos: dm.GridPos) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .grid_pos(pos)
        .cell_height(cm.TableCellHeight.SM)
        .show_header(True)
    )


def new_timeseries(title: str, description: str, unit: str, pos: dm.GridPos) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .grid_pos(pos)
        .line_width(2)
        .fill_opacity(10)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
        )
        .tooltip(
            cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
        )
    )


def organize(
    exclude: list[str], rename: Mapping[str, str], order: list[str] | None = None
) -> dm.DataTransformerConfig:
    options: dict[str, object] = {
        "excludeByName": dict.fromkeys(exclude, True),
        "renameByName": dict(rename),
    }
    if order:
        options["indexByName"] = {name: i for i, name in enumerate(order)}
    return dm.DataTransformerConfig(id_val="organize", options=options)


def column(label: str) -> str:
    """A label as a table column's title: ``node_id`` -> ``Node id``."""
    return label.replace("_", " ").capitalize()


def status_matrix(
    title: str, description: str, expr: str, *, rows: str, rows_name: str, pos: dm.GridPos
) -> table.Panel:
    """A windowed count as a matrix of ``rows`` by status; error, cancelled and
    unknown in red."""
    return (
        new_table(title, description, "short", pos)
        .with_target(query(expr, "A", table_format=True))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"columnField": "status", "rowField": rows, "valueField": "Value"},
            )
        )
        .override_by_name(f"{rows}\\status", [prop("displayName", rows_name)])
        .override_by_regexp(
            "error|cancelled|unknown",
            [prop("thresholds", steps_json((None, NEUTRAL), (1, RED))), colour_text()],
        )
    )


# --- many at once: a panel's queries or overrides given as data, not one long chain --


def with_queries(panel: P, queries: Iterable[prom.Dataquery]) -> P:
    """``panel`` with ``queries`` as its targets, in order."""
    for target in queries:
        panel = panel.with_target(target)
    return panel


def table_queries(exprs: Mapping[str, str]) -> list[prom.Dataquery]:
    """One instant, table-format query per ref id; a merged table shows the value of
    ref ``A`` as column ``Value #A``."""
    return [query(expr, ref, table_format=True) for ref, expr in exprs.items()]


def override_names(panel: P, overrides: Mapping[str, Props]) -> P:
    """``panel`` with each field named in ``overrides`` given its properties, in order."""
    for name, properties in overrides.items():
        panel = panel.override_by_name(name, properties)
    return panel


def override_queries(panel: P, overrides: Mapping[str, Props]) -> P:
    """``panel`` with the fields of each query (by ref id) given their properties."""
    for ref, properties in overrides.items():
        panel = panel.override_by_query(ref, properties)
    return panel
