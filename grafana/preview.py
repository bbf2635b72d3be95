"""A rendered PREVIEW of the governance dashboard, made without Grafana.

It is not a Grafana screenshot: it lays the panels of ``dashboards/governance.json`` out
on Grafana's 24-column grid as plain HTML, runs every panel's query against a real
Prometheus, applies the panel's own units, thresholds, value mappings, overrides and
table transformations (merge, organize, grouping to matrix) in Python, and screenshots
the page with headless Chromium into ``grafana/preview.png``.

    python grafana/preview.py                      # the 2026-02-15 incident, live
    python grafana/preview.py --prometheus URL     # any Prometheus with the metrics

Without ``--prometheus`` it starts the same stack as tests/test_dashboard_live.py
(PostgreSQL from local binaries with the incident replayed, the exporter, Debian's
prometheus with the repo's rules), so the picture shows what the live test proves.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, ROOT / "tests", HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import dashboard as generator  # noqa: E402  (grafana/dashboard.py)

CELL, GAP, PADDING = 30, 8, 16  # Grafana's grid: 30 px rows, 8 px margins
WIDTH = 1440
COLOURS = {
    "green": "#73BF69",
    "yellow": "#FADE2A",
    "red": "#F2495C",
    "orange": "#FF9830",
    "blue": "#5794F2",
    "text": "#CCCCDC",
    "transparent": "transparent",
}
PALETTE = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9"]

Series = dict[str, Any]


# --- data ----------------------------------------------------------------------------


class Prometheus:
    def __init__(self, url: str, values: Mapping[str, str], range_seconds: int) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.values = values
        self.range_seconds = range_seconds

    def _api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}?{query}"
        with urllib.request.urlopen(url, timeout=15) as resp:  # noqa: S310 (http(s) checked)
            body = json.loads(resp.read())
        return body["data"]["result"]

    def run(self, target: Mapping[str, Any]) -> list[Series]:
        expr = generator.substitute(target["expr"], self.values)
        if target.get("instant"):
            result: list[Series] = self._api("query", query=expr)
            return result
        end = time.time()
        step = max(1, self.range_seconds // 120)
        start = str(end - self.range_seconds)
        return list(self._api("query_range", query=expr, start=start, end=str(end), step=str(step)))


@contextlib.contextmanager
def incident_prometheus() -> Iterator[str]:
    # Imported here: only this mode needs the test harness (psycopg, PostgreSQL binaries).
    from harness import postgres_server  # noqa: PLC0415
    from test_dashboard_live import incident_stack  # noqa: PLC0415

    with postgres_server() as admin_url, incident_stack(admin_url) as stack:
        yield stack.prometheus_url


# --- formatting -----------------------------------------------------------------------


def _js_key(value: float) -> str:
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return str(int(value)) if value == int(value) else repr(value)


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    """Grafana's dtdurations: the two largest units."""
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    parts: list[str] = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or (unit == "second" and not parts):
            parts.append(_plural(int(seconds // size), unit))
            seconds %= size
        if len(parts) == 2:
            break
    return sign + ", ".join(parts)


def _short(value: float, decimals: int | None) -> str:
    for size, suffix in ((1e12, " Tri"), (1e9, " Bil"), (1e6, " Mil"), (1e3, " K")):
        if abs(value) >= size:
            return f"{value / size:.{2 if decimals is None else decimals}f}{suffix}"
    if decimals is None:
        return f"{value:.0f}" if value == int(value) else f"{value:.2f}"
    return f"{value:.{decimals}f}"


def _ago(millis: float) -> str:
    seconds = time.time() - millis / 1000
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return f"{_plural(round(seconds / size), unit)} ago"
    return "a few seconds ago"


def format_value(value: float, unit: str, decimals: int | None = None) -> str:
    if math.isnan(value):
        return "NaN"
    if unit == "dtdurations":
        return _duration(value)
    if unit == "s":
        for size, name in ((86400, "day"), (3600, "hour"), (60, "min")):
            if abs(value) >= size:
                return f"{value / size:.1f} {name}"
        if 0 < abs(value) < 1:
            return f"{value * 1000:.1f} ms"
        return f"{value:.{0 if decimals is None else decimals}f} s"
    if unit == "currencyUSD":
        return f"${value:,.{2 if decimals is None else decimals}f}"
    if unit == "dateTimeFromNow":
        return _ago(value)
    if unit == "short":
        return _short(value, decimals)
    return f"{value:g}"


def threshold_colour(steps: list[dict[str, Any]], value: float) -> str:
    active = steps[0]
    for step in steps[1:]:
        if value >= step["value"]:
            active = step
        else:
            break
    return str(active["color"])


class FieldConfig:
    """The effective field config of one field: defaults plus matching overrides."""

    def __init__(self, panel: Mapping[str, Any], name: str, ref: str | None) -> None:
        config = dict(panel["fieldConfig"]["defaults"])
        for override in panel["fieldConfig"].get("overrides", []):
            matcher = override["matcher"]
            hit = (
                (matcher["id"] == "byFrameRefID" and matcher["options"] == ref)
                or (matcher["id"] == "byName" and matcher["options"] == name)
                or (matcher["id"] == "byRegexp" and re.fullmatch(matcher["options"], name))
            )
            if hit:
                for prop in override["properties"]:
                    config[prop["id"]] = prop["value"]
        self.config = config
        self.name = config.get("displayName", name)

    def display(self, value: float | None) -> tuple[str, str]:
        """(text, colour) as Grafana would show the value."""
        if value is None:
            for mapping in self.config.get("mappings", []):
                if mapping["type"] == "special":
                    return mapping["options"]["result"]["text"], COLOURS["text"]
            return "", COLOURS["text"]
        for mapping in self.config.get("mappings", []):
            if mapping["type"] == "value" and _js_key(value) in mapping["options"]:
                result = mapping["options"][_js_key(value)]
                return result["text"], COLOURS.get(result.get("color") or "text", "#ccc")
        colour = "text"
        if "thresholds" in self.config:
            colour = threshold_colour(self.config["thresholds"]["steps"], value)
        text = format_value(value, self.config.get("unit", "none"), self.config.get("decimals"))
        return text, COLOURS.get(colour, colour)

    @property
    def cell_mode(self) -> str:
        return str(self.config.get("custom.cellOptions", {}).get("type", "auto"))


def _legend(target: Mapping[str, Any], metric: Mapping[str, str]) -> str:
    legend = str(target.get("legendFormat") or "")
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), legend) or (
        ", ".join(f"{k}={v}" for k, v in metric.items() if k != "__name__") or "value"
    )


def _last(series: Series) -> float:
    value = series["value"] if "value" in series else series["values"][-1]
    return float(value[1])


# --- panels --------------------------------------------------------------------------


def render_stat(panel: Mapping[str, Any], results: dict[str, list[Series]]) -> str:
    colour_mode = panel["options"].get("colorMode", "value")
    show_name = panel["options"].get("textMode") == "value_and_name"
    cells = []
    for target in panel["targets"]:
        series_list: list[Series | None] = list(results[target["refId"]]) or [None]
        for series in series_list:
            metric = series["metric"] if series else {}
            field = FieldConfig(panel, _legend(target, metric), target["refId"])
            text, colour = field.display(_last(series) if series else None)
            if not series and "noValue" not in field.config and not text:
                text = "No data"
            style = (
                f"background:{colour};color:#111"
                if colour_mode == "background" and colour not in ("transparent", COLOURS["text"])
                else f"color:{colour if colour_mode != 'none' else COLOURS['text']}"
            )
            name = f'<div class="name">{html.escape(field.name)}</div>' if show_name else ""
            cells.append(
                f'<div class="stat" style="{style}">{name}<b>{html.escape(text)}</b></div>'
            )
    return f'<div class="stats">{"".join(cells)}</div>'


def render_bargauge(panel: Mapping[str, Any], results: dict[str, list[Series]]) -> str:
    """Horizontal bars, one per series, largest first, scaled to the largest value
    (Grafana's bar gauge with min 0 and no max)."""
    bars: list[tuple[str, float, str, str]] = []
    for target in panel["targets"]:
        for series in results[target["refId"]]:
            field = FieldConfig(panel, _legend(target, series["metric"]), target["refId"])
            value = _last(series)
            text, colour = field.display(value)
            bars.append((field.name, value, text, colour))
    if not bars:
        return '<div class="empty">No data</div>'
    bars.sort(key=lambda bar: -bar[1])
    top = max(bar[1] for bar in bars) or 1.0
    rows = "".join(
        f'<div class="bar"><span>{html.escape(name)}</span><div class="track">'
        f'<div style="width:{max(value / top, 0) * 100:.1f}%;background:{colour}"></div></div>'
        f"<b>{html.escape(text)}</b></div>"
        for name, value, text, colour in bars
    )
    return f'<div class="bars">{rows}</div>'


def _merge(frames: list[tuple[list[str], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Grafana's merge transformation: rows agreeing on the fields every frame has (and
    not conflicting on any other) become one row; frames without fields are skipped."""
    present = [fields for fields, _rows in frames if fields]
    keys = [f for f in present[0] if all(f in fields for fields in present[1:])] if present else []
    merged: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    order: list[tuple[tuple[Any, ...], int]] = []
    for _fields, rows in frames:
        for row in rows:
            key = tuple(row.get(k) for k in keys)
            existing = merged.setdefault(key, [])
            hits = [
                i
                for i, old in enumerate(existing)
                if all(old.get(k) is None or old[k] == v for k, v in row.items())
            ]
            for i in hits:
                existing[i] = {**existing[i], **row}
            if not hits:
                existing.append(dict(row))
                order.append((key, len(existing) - 1))
    return [merged[key][i] for key, i in order]


def _table_frame(
    panel: Mapping[str, Any], results: dict[str, list[Series]]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows as Grafana's table would get them after the panel's transformations.

    One frame per query (Time, its labels, ``Value`` or ``Value #ref``), as Grafana's
    Prometheus data source returns them in table format; the Time column is the same
    for every instant query, so it is left out of the rows.
    """
    targets = panel["targets"]
    value_name = "Value" if len(targets) == 1 else "Value #{}"
    frames: list[tuple[list[str], list[dict[str, Any]]]] = []
    columns: list[str] = ["Time"]
    for target in targets:
        column = value_name.format(target["refId"])
        fields: list[str] = []
        rows: list[dict[str, Any]] = []
        for series in results[target["refId"]]:
            labels = {k: v for k, v in sorted(series["metric"].items()) if k != "__name__"}
            fields += [k for k in labels if k not in fields]
            rows.append({**labels, column: _last(series)})
        if rows:
            fields.append(column)
        columns += [f for f in fields if f not in columns]
        if column not in columns:
            columns.append(column)
        frames.append((fields, rows))
    table = [row for _fields, rows in frames for row in rows]
    for transform in panel.get("transformations", []):
        options = transform["options"]
        if transform["id"] == "merge":
            table = _merge(frames)
        elif transform["id"] == "groupingToMatrix":
            row_field, col_field = options["rowField"], options["columnField"]
            matrix: dict[str, dict[str, Any]] = {}
            col_values: list[str] = []
            corner = f"{row_field}\\{col_field}"
            for row in table:
                col_value = row[col_field]
                if col_value not in col_values:
                    col_values.append(col_value)
                matrix.setdefault(row[row_field], {corner: row[row_field]})[col_value] = row[
                    options["valueField"]
                ]
            columns, table = [corner, *col_values], list(matrix.values())
        elif transform["id"] == "organize":
            columns = [c for c in columns if not options["excludeByName"].get(c)]
            order = options.get("indexByName", {})
            columns.sort(key=lambda c: order.get(c, len(order)))
            rename = options["renameByName"]
            table = [{rename.get(k, k): v for k, v in row.items()} for row in table]
            columns = [rename.get(c, c) for c in columns]
    columns = [c for c in columns if c != "Time"]
    first = columns[0] if columns else ""
    table.sort(key=lambda r: str(r.get(first, "")))
    # The panel's sortBy, last key first: Python's sort is stable, as Grafana's is.
    for key in reversed(panel.get("options", {}).get("sortBy", [])):
        table.sort(key=lambda r, k=key["displayName"]: _sort_key(r.get(k)), reverse=key["desc"])
    return columns, table


def _sort_key(value: Any) -> tuple[int, float | str]:
    """Numbers by value; an empty cell below every number, text above."""
    if isinstance(value, float | int):
        return (1, float(value))
    return (0, "") if value is None else (2, str(value))


def render_table(panel: Mapping[str, Any], results: dict[str, list[Series]]) -> str:
    columns, rows = _table_frame(panel, results)
    fields = {c: FieldConfig(panel, c, None) for c in columns}
    head = "".join(f"<th>{html.escape(fields[c].name)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            field = fields[column]
            if isinstance(value, float) or value is None:
                text, colour = field.display(value)
            else:
                text, colour = str(value), COLOURS["text"]
                for mapping in field.config.get("mappings", []):
                    result = mapping.get("options", {}).get(text)
                    if mapping["type"] == "value" and result:
                        text, colour = result["text"], COLOURS.get(result.get("color"), colour)
            if field.cell_mode == "color-background" and colour != COLOURS["text"]:
                style = f"background:{colour};color:#111"
            elif field.cell_mode in ("color-text", "color-background"):
                style = f"color:{colour}"
            else:
                style = ""
            cells.append(f'<td style="{style}">{html.escape(text)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        body = [f'<tr><td colspan="{len(columns) or 1}" class="empty">No data</td></tr>']
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _panel_pixels(pos: Mapping[str, int]) -> tuple[int, int]:
    """Inner width and height in px of a panel on the page's grid."""
    column = (WIDTH - 2 * PADDING - 23 * GAP) / 24
    width = pos["w"] * column + (pos["w"] - 1) * GAP
    height = pos["h"] * CELL + (pos["h"] - 1) * GAP
    return int(width) - 18, int(height)


def render_timeseries(
    panel: Mapping[str, Any], results: dict[str, list[Series]], pos: Mapping[str, int]
) -> str:
    width, full_height = _panel_pixels(pos)
    height = max(60, full_height - 30 - 22 * (1 + len(panel["targets"]) // 3) - 8)
    lines = [
        (_legend(t, s["metric"]), [(float(x), float(y)) for x, y in s["values"]])
        for t in panel["targets"]
        for s in results[t["refId"]]
    ]
    points = [p for _, pts in lines for p in pts if math.isfinite(p[1])]
    if not points:
        return '<div class="empty">No data</div>'
    defaults = panel["fieldConfig"]["defaults"]
    custom = defaults.get("custom", {})
    steps = [s for s in defaults.get("thresholds", {}).get("steps", [])[1:] if s["value"]]
    show_steps = custom.get("thresholdsStyle", {}).get("mode", "off") != "off"
    ys = [y for _, y in points] + ([float(s["value"]) for s in steps] if show_steps else [])
    lo: float = min([*ys, float(custom.get("axisSoftMin", min(ys)))])
    hi: float = max([*ys, float(custom.get("axisSoftMax", max(ys)))])
    hi = hi if hi > lo else lo + 1
    xs = [x for x, _ in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1

    def sx(x: float) -> float:
        return 50 + (x - x0) / (x1 - x0) * (width - 60)

    def sy(y: float) -> float:
        return 10 + (hi - y) / (hi - lo) * (height - 20)

    unit = defaults.get("unit", "none")
    svg = [
        f'<text x="45" y="{sy(v) + 4:.0f}" text-anchor="end">'
        f"{html.escape(format_value(v, unit))}</text>"
        f'<line x1="50" x2="{width - 10}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" class="grid"/>'
        for v in (lo, (lo + hi) / 2, hi)
    ]
    if show_steps:
        for step in steps:
            colour = COLOURS.get(step["color"], step["color"])
            svg.append(
                f'<line x1="50" x2="{width - 10}" y1="{sy(step["value"]):.1f}" '
                f'y2="{sy(step["value"]):.1f}" stroke="{colour}" stroke-dasharray="8 6"/>'
            )
    fixed = defaults.get("color", {}).get("fixedColor")
    legend = []
    for i, (name, pts) in enumerate(lines):
        colour = COLOURS.get(fixed, PALETTE[i % len(PALETTE)]) if fixed else PALETTE[i % 7]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts if math.isfinite(y))
        svg.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend.append(f'<span><i style="background:{colour}"></i>{html.escape(name)}</span>')
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f"{''.join(svg)}</svg>"
        f'<div class="legend">{"".join(legend)}</div>'
    )


# --- page ----------------------------------------------------------------------------

CSS = """
body{margin:0;background:#111217;color:#ccccdc;font:13px Inter,Helvetica,Arial,sans-serif}
header{padding:10px 16px;border-bottom:1px solid #2c2e33;display:flex;gap:16px;align-items:center}
header h1{font-size:17px;margin:0;font-weight:500}
.banner{background:#3d2e00;color:#fade2a;padding:4px 10px;border-radius:3px;font-size:12px}
.vars span{background:#22252b;padding:4px 8px;margin-right:6px;border-radius:2px}
.grid{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:30px;gap:8px;
  padding:8px 16px}
.panel{background:#181b1f;border:1px solid #2c2e33;border-radius:2px;overflow:hidden;
  display:flex;flex-direction:column}
.panel h2{font-size:13px;font-weight:500;margin:0;padding:6px 8px}
.body{flex:1;padding:0 8px 8px;overflow:hidden;display:flex;flex-direction:column}
.row{font-size:15px;font-weight:500;align-self:end;border-bottom:1px solid #2c2e33}
.stats{display:flex;gap:6px;flex:1}
.stat{flex:1;display:flex;flex-direction:column;justify-content:center;align-items:center;
  border-radius:2px;text-align:center}
.stat b{font-size:24px;font-weight:500}.stat .name{font-size:12px;opacity:.85}
.bars{display:flex;flex-direction:column;gap:6px;justify-content:center;flex:1}
.bar{display:grid;grid-template-columns:110px 1fr 90px;gap:8px;align-items:center}
.bar .track{background:#22252b;height:14px}.bar .track div{height:14px}
.bar b{text-align:right;font-weight:500}
table{border-collapse:collapse;width:100%;font-size:12px}
th{text-align:left;color:#6e9fff;font-weight:500;border-bottom:1px solid #2c2e33;padding:3px 6px}
td{padding:3px 6px;border-bottom:1px solid #22252b}
.empty{color:#8e8e8e;padding:10px;text-align:center}
svg{font-size:11px;flex:none}svg text{fill:#8e8e8e}line.grid{stroke:#2c2e33}
.legend span{margin-right:12px;font-size:11px}.legend i{display:inline-block;width:12px;
  height:3px;margin-right:4px;vertical-align:middle}
footer{padding:4px 16px 12px;color:#8e8e8e;font-size:11px}
"""


def render_page(dashboard: Mapping[str, Any], prometheus: Prometheus, source: str) -> str:
    blocks = []
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        area = f"grid-column:{pos['x'] + 1}/span {pos['w']};grid-row:{pos['y'] + 1}/span {pos['h']}"
        if panel["type"] == "row":
            blocks.append(f'<div class="row" style="{area}">{html.escape(panel["title"])}</div>')
            continue
        results = {t["refId"]: prometheus.run(t) for t in panel["targets"]}
        if panel["type"] == "stat":
            body = render_stat(panel, results)
        elif panel["type"] == "table":
            body = render_table(panel, results)
        elif panel["type"] == "bargauge":
            body = render_bargauge(panel, results)
        else:
            body = render_timeseries(panel, results, pos)
        blocks.append(
            f'<div class="panel" style="{area}"><h2>{html.escape(panel["title"])}</h2>'
            f'<div class="body">{body}</div></div>'
        )
    values = prometheus.values
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(dashboard["title"])} (preview)</title><style>{CSS}</style></head><body>
<header><h1>{html.escape(dashboard["title"])}</h1>
<span class="banner">Rendered preview (grafana/preview.py), not a Grafana screenshot</span>
<span class="vars"><span>Data source: Prometheus</span><span>Account: {values["account"]}</span>
<span>Charter: All</span></span></header>
<div class="grid">{"".join(blocks)}</div>
<footer>Data: {html.escape(source)} at {now}. Time series show the last
{prometheus.range_seconds} s of that Prometheus.</footer></body></html>"""


def screenshot(page: Path, png: Path, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: install it or pass --no-screenshot")
    with tempfile.TemporaryDirectory(prefix="govexp-chromium-") as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{height}",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", help="query this Prometheus instead of the incident")
    parser.add_argument("--account", default="cogni_system")
    parser.add_argument("--cluster", default=".*", help="regex, as Grafana's variable (All: .*)")
    parser.add_argument("--node", default=".*", help="regex, as Grafana's variable (All: .*)")
    parser.add_argument("--range-seconds", type=int, default=None)
    parser.add_argument("--html", type=Path, default=None, help="also keep the HTML here")
    parser.add_argument("--png", type=Path, default=HERE / "preview.png")
    parser.add_argument("--no-screenshot", action="store_true")
    args = parser.parse_args(argv)
    dashboard = json.loads(generator.OUTPUT.read_text(encoding="utf-8"))
    values = {
        "datasource": "",
        "cluster": args.cluster,
        "node": args.node,
        "account": args.account,
        "charter": ".*",
        "__rate_interval": "5m" if args.prometheus else "5s",
        "__interval": "1m" if args.prometheus else "1s",
    }
    with contextlib.ExitStack() as stack:
        if args.prometheus:
            url, source, default_range = args.prometheus, args.prometheus, 6 * 3600
        else:
            url = stack.enter_context(incident_prometheus())
            source, default_range = (
                "the 2026-02-15 incident replayed (tests/test_dashboard_live.py)",
                10,
            )
        range_seconds = args.range_seconds or default_range
        values["__range"] = f"{range_seconds}s"
        page = render_page(dashboard, Prometheus(url, values, range_seconds), source)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    height = 60 + rows * (CELL + GAP) + 40
    with tempfile.TemporaryDirectory(prefix="govexp-preview-") as tmp:
        html_path = args.html or Path(tmp) / "preview.html"
        html_path.write_text(page, encoding="utf-8")
        if not args.no_screenshot:
            screenshot(html_path.resolve(), args.png.resolve(), height)
            print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
