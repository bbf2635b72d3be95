"""The status page at ``/``: governance health at a glance, without Grafana.

Server-rendered HTML with inline CSS only: no script and no external asset, so it
works offline and under the strict Content-Security-Policy it is sent with. It
reloads itself every ``PAGE_REFRESH_SECONDS`` (meta refresh). Every value that
comes from the database or the configuration goes through ``html.escape``.

Colours follow the verdict of ``exporter.policy`` (the same one ``governance-exporter
check`` prints and the alert rules encode), so the page, the check and the alerts
agree.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from http import HTTPStatus

from exporter import __version__
from exporter.cache import SnapshotCache
from exporter.collection import Clock, CollectionResult, utc_now
from exporter.declaration import NodeDeclaration
from exporter.memory import BudgetHeader, FileStatus, Heartbeat, MemorySnapshot
from exporter.model import CharterView, CreditView, GovernanceView, RecentRun
from exporter.policy import (
    Assessment,
    Health,
    Problem,
    budget_gate_open,
    charter_health,
    credit_level,
)
from exporter.server import Request, Response, Route
from exporter.settings import Settings
from exporter.status_ledger import ledger_section
from exporter.verdict import Verdict, evaluate, gateway_memory
from exporter.words import (
    burn_per_hour,
    error_sentence,
    format_credits,
    format_duration,
    format_failures,
    format_runs,
    format_runway,
    format_time,
    format_usd,
)

PAGE_REFRESH_SECONDS = 10
# A collection this recent is shown as is: many open pages cost one collection.
REUSE_SECONDS = 5.0

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

# (background, text) per health; the thresholds test and the browser test read these.
HEALTH_COLOURS: Mapping[Health, tuple[str, str]] = {
    Health.GREEN: ("#1a7f37", "#ffffff"),
    Health.YELLOW: ("#eac54f", "#1f2328"),
    Health.RED: ("#cf222e", "#ffffff"),
}
UNKNOWN = "unknown"
UNKNOWN_COLOURS = ("#59636e", "#ffffff")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


# --- the route -------------------------------------------------------------------------


def current_result(snapshots: SnapshotCache, now: datetime) -> CollectionResult:
    """The latest collection if it is only seconds old, else a new one."""
    latest = snapshots.latest
    if latest is not None and 0 <= (now - latest.started_at).total_seconds() < REUSE_SECONDS:
        return latest
    return snapshots.get()


def status_route(
    settings: Settings,
    snapshots: SnapshotCache,
    declaration: NodeDeclaration,
    clock: Clock = utc_now,
) -> Route:
    def serve(_request: Request) -> Response:
        now = clock()
        result = current_result(snapshots, now)
        memory = gateway_memory(settings, declaration)
        page = render_page(
            result,
            evaluate(result, declaration, memory),
            account=settings.account,
            grafana_url=settings.grafana_url,
            now=clock(),
            memory=memory,
        )
        return Response(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", PAGE_HEADERS)

    return serve


# --- the page --------------------------------------------------------------------------


def render_page(
    result: CollectionResult,
    verdict: Verdict | None,
    *,
    account: str,
    grafana_url: str | None,
    now: datetime,
    memory: MemorySnapshot | None = None,
) -> str:
    """The whole page for one collection result and its verdict (and the gateway's
    memory files, read independently of the database, when a memory directory is
    configured)."""
    if verdict is None:
        body = _unreadable_body(account, result, now)
        title = f"UNKNOWN · governance · {account}"
    else:
        view, assessment = verdict.view, verdict.assessment
        body = _governance_body(view, assessment, now)
        title = f"{assessment.health.value.upper()} · governance · {view.account}"
    if memory is not None:
        body += "\n" + _gateway_memory(memory, now)
    return _document(title, _links(grafana_url) + body + _footer(result, now))


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{PAGE_REFRESH_SECONDS}">'
        '<meta name="referrer" content="no-referrer">'
        f'<link rel="icon" href="data:,"><title>{esc(title)}</title>'
        f"<style>{_css()}</style></head>\n<body><main>\n{body}\n</main></body></html>\n"
    )


def _links(grafana_url: str | None) -> str:
    links = ['<a href="/metrics">Prometheus metrics</a>']
    if grafana_url and grafana_url.lower().startswith(("http://", "https://")):
        links.append(f'<a href="{esc(grafana_url)}" rel="noreferrer">Grafana dashboard</a>')
    return f'<nav id="links">{" · ".join(links)}</nav>\n'


def _governance_body(view: GovernanceView, assessment: Assessment, now: datetime) -> str:
    return "\n".join(
        [
            _header(view.account),
            _verdict(assessment.health.value, _overall_words(assessment), _problems(assessment)),
            _credit_card(view.credit),
            _charters_table(view, assessment, now),
            _unscheduled(view),
            ledger_section(view.ledger, assessment, now),
            _recent_runs(view.recent_runs),
        ]
    )


def _overall_words(assessment: Assessment) -> str:
    count = len(assessment.problems)
    if count == 0:
        return "no problems"
    return f"{count} problem{'s' if count > 1 else ''}"


def _header(account: str) -> str:
    return f'<header><h1>Governance <span class="muted">· {esc(account)}</span></h1></header>'


def _verdict(health: str, words: str, details: str) -> str:
    """The page's first and largest element: the one verdict, filled with its colour,
    and beneath it (framed in the same colour) the problems that make it."""
    return (
        f'<section id="verdict" class="verdict b-{health}" data-health="{health}">'
        f'<div id="overall" class="h-{health}" data-health="{health}">'
        '<p class="label">Overall</p>'
        f'<p class="big"><span id="verdict-health">{esc(health.upper())}</span>'
        f' <span class="count">— {esc(words)}</span></p></div>'
        f"{details}</section>"
    )


def _fact(key: str, label: str, value: str) -> str:
    """A labelled value; its " · " parts never break inside (``.nw``), only between."""
    parts = " · ".join(f'<span class="nw">{esc(part)}</span>' for part in value.split(" · "))
    return f'<div><dt>{esc(label)}</dt><dd id="{key}">{parts}</dd></div>'


def _credit_card(credit: CreditView) -> str:
    health = credit_level(credit).value
    burn = burn_per_hour(credit)
    spent = (
        f"{format_credits(credit.spent_credits)} · {format_usd(credit.spent_credits)}"
        f" · {credit.charges} charge{'s' if credit.charges != 1 else ''}"
    )
    facts = [
        _fact("runway", "Runway", format_runway(credit)),
        _fact(
            "balance",
            "Balance",
            f"{format_credits(credit.balance_credits)} · {format_usd(credit.balance_credits)}",
        ),
        _fact("burn", "Burn", f"{format_credits(burn)}/h · {format_usd(burn)}/h"),
        _fact("spent", f"Spent in the last {format_duration(credit.window_seconds)}", spent),
    ]
    if credit.min_run_cost_credits > 0:
        facts.append(
            _fact(
                "min-run-cost",
                "Runs refused below",
                f"{format_credits(credit.min_run_cost_credits)} · "
                f"{format_usd(credit.min_run_cost_credits)}",
            )
        )
    spenders = [(k, v) for k, v in credit.spent_by_kind.items() if v > 0]
    if spenders:
        facts.append(
            _fact(
                "spent-by-kind",
                "Spent by",
                " · ".join(f"{kind} {format_usd(v)}" for kind, v in sorted(spenders)),
            )
        )
    return _credits(health, f"<dl>{''.join(facts)}</dl>")


def _credits(health: str, inner: str) -> str:
    """The credit card: its own colour on a stripe and a badge, below the verdict and
    smaller, so that it is never read as the verdict."""
    return (
        f'<section id="credit" class="card b-{health}" data-health="{health}">'
        f'<h2 class="label">Credits <span id="health" class="badge h-{health}">'
        f"{health.upper()}</span></h2>{inner}</section>"
    )


def _problem_items(problems: Sequence[Problem], badge: bool) -> str:
    return "".join(
        f'<li data-health="{p.health.value}">'
        + (f"{_badge(p.health.value)} " if badge else "")
        + f"<b>{esc(p.subject)}</b>: {esc(p.message)} "
        f'<small class="muted">({esc(p.alert)})</small></li>'
        for p in problems
    )


def _problems(assessment: Assessment) -> str:
    current = assessment.problems
    items = f"<ul>{_problem_items(current, badge=True)}</ul>" if current else "<p>None.</p>"
    recovered = ""
    if assessment.recovered:
        recovered = (
            '<div id="recovered"><h3>Recovered (succeeded since; not counted)</h3>'
            f"<ul>{_problem_items(assessment.recovered, badge=False)}</ul></div>"
        )
    return f'<div id="problems"><h2>Problems</h2>{items}{recovered}</div>'


def _badge(health: str, text: str | None = None) -> str:
    return f'<span class="badge h-{health}">{esc(text or health.upper())}</span>'


def _table(
    key: str,
    title: str,
    headers: Sequence[str],
    rows: Iterable[str],
    empty: str,
    *,
    phone: str = "stack",
) -> str:
    """A section with a table; on a phone each row becomes a card (``stack``) or a
    two-by-two grid (``runs``)."""
    body = "".join(rows)
    if not body:
        return f'<section id="{key}"><h2>{esc(title)}</h2><p>{esc(empty)}</p></section>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return (
        f'<section id="{key}"><h2>{esc(title)}</h2><table class="{phone}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def _cell(label: str, content: str) -> str:
    """A table cell; ``content`` is already escaped HTML."""
    return f'<td data-label="{esc(label)}"><span>{content}</span></td>'


def _when(at: datetime, now: datetime, *, future: bool) -> str:
    seconds = (at - now).total_seconds() if future else (now - at).total_seconds()
    relative = f"in {format_duration(seconds)}" if future else f"{format_duration(seconds)} ago"
    return f'{esc(relative)}<br><small class="muted">{esc(format_time(at))}</small>'


# --- the gateway's memory files ---------------------------------------------------

FILE_STATUS_HEALTH = {
    FileStatus.OK: "green",
    FileStatus.INCOMPLETE: "yellow",
    FileStatus.MISSING: "red",
    FileStatus.MALFORMED: "red",
    FileStatus.UNREADABLE: "red",
}
HEARTBEAT_HEADERS = ("Charter", "Last run", "Decision", "No-op reason", "File")


def _file_badge(status: FileStatus) -> str:
    return _badge(FILE_STATUS_HEALTH[status], status.value)


def _budget_gate(budget: BudgetHeader, now: datetime) -> str:
    if budget_gate_open(budget, now):
        gate = _badge("green", "OPEN")
    elif budget.allow_runs is False:
        gate = _badge("red", "CLOSED")
    else:
        gate = _badge("red", "UNAVAILABLE")
    updated = _when(budget.updated_at, now, future=False) if budget.updated_at else "—"
    row = "".join(
        [
            _cell("Gate", gate),
            _cell("Budget", esc(budget.budget_status or "—")),
            _cell("Burn trend", esc(budget.burn_rate_trend or "—")),
            _cell("Updated", updated),
            _cell("File", _file_badge(budget.file.status)),
        ]
    )
    return _table(
        "budget-gate",
        "Budget gate (memory/_budget_header.md)",
        ("Gate", "Budget", "Burn trend", "Updated", "File"),
        [f"<tr>{row}</tr>"],
        "",
    )


def _heartbeat_row(beat: Heartbeat, now: datetime) -> str:
    cells = [
        _cell("Charter", esc(beat.charter)),
        _cell("Last run", _when(beat.run_at, now, future=False) if beat.run_at else "—"),
        _cell("Decision", esc(beat.decision or "—")),
        _cell("No-op reason", esc(beat.no_op_reason or "—")),
        _cell("File", _file_badge(beat.file.status)),
    ]
    return f"<tr>{''.join(cells)}</tr>"


def _gateway_memory(memory: MemorySnapshot, now: datetime) -> str:
    """The budget gate (open only when fresh and allowing runs, as the gateway's own
    readers decide) and each charter's latest heartbeat, with its file's status."""
    heartbeats = _table(
        "heartbeats",
        "Charter heartbeats (memory/{CHARTER}/heartbeat.md)",
        HEARTBEAT_HEADERS,
        [_heartbeat_row(beat, now) for beat in memory.heartbeats],
        "No charters expected.",
    )
    return _budget_gate(memory.budget, now) + "\n" + heartbeats


CHARTER_HEADERS = ("Charter", "Enabled", "Last success", "Next run", "Runs", "Failed runs")


def _charters_table(view: GovernanceView, assessment: Assessment, now: datetime) -> str:
    window = format_duration(view.credit.window_seconds)
    headers = [*CHARTER_HEADERS[:4], f"Runs in {window}", f"Failed in {window}"]
    rows = [_charter_row(c, charter_health(assessment, c), headers, now) for c in view.charters]
    table = _table("charters", "Charters", headers, rows, "No charters expected or found.")
    if view.schedules_truncated:
        table += '<p class="muted">More schedules exist than the exporter reads.</p>'
    return table


def _charter_row(charter: CharterView, health: Health, labels: Sequence[str], now: datetime) -> str:
    name = esc(charter.charter)
    first = f"<b>{name}</b> {_badge(health.value)}"
    if not charter.configured:
        cells = [first, "not configured: no schedule row", "—", "—", "—", "—"]
    else:
        cells = [
            first,
            _enabled(charter),
            _last_success(charter, now),
            _next_run(charter, now),
            esc(format_runs(charter)),
            esc(format_failures(charter) or "0"),
        ]
    tds = "".join(_cell(label, cell) for label, cell in zip(labels, cells, strict=True))
    return f'<tr data-charter="{name}" data-health="{health.value}">{tds}</tr>'


def _enabled(charter: CharterView) -> str:
    if charter.retired:
        return '<span class="muted">retired (pruned from the repo-spec)</span>'
    if charter.drift:
        return f"yes, <b>drifted</b>: {esc(charter.drift)}" if charter.enabled else "<b>no</b>"
    return "yes" if charter.enabled else "<b>no (paused)</b>"


def _last_success(charter: CharterView, now: datetime) -> str:
    if charter.epochs:
        return "judged by the ledger's epochs"
    if not charter.observable:
        return "not observable (ingestion_cursors cannot be read)"
    if charter.last_success_at is None:
        return "never"
    return _when(charter.last_success_at, now, future=False)


UNSCHEDULED_HEADERS = ("Run kind", "Last success", "Runs", "Failed")


def _unscheduled(view: GovernanceView) -> str:
    """Runs without a schedule (PR reviews, webhooks): most of the spend today."""
    if view.unscheduled_visible is None:
        return ""
    window = format_duration(view.credit.window_seconds)
    now = view.taken_at
    rows = []
    for work in view.unscheduled:
        runs = ", ".join(f"{s} {n}" for s, n in work.runs_by_status.items() if n > 0) or "none"
        failed = ", ".join(f"{r} {n}" for r, n in work.failures_by_reason.items() if n > 0)
        last = _when(work.last_success_at, now, future=False) if work.last_success_at else "never"
        cells = [esc(work.run_kind), last, esc(runs), esc(failed or "0")]
        labels = UNSCHEDULED_HEADERS
        tds = "".join(_cell(label, cell) for label, cell in zip(labels, cells, strict=True))
        rows.append(f'<tr data-kind="{esc(work.run_kind)}">{tds}</tr>')
    empty = f"None in the last {window}."
    if view.unscheduled_visible is False:
        empty = "Hidden by row-level security (graph_runs' policy predates migration 0024)."
    return _table(
        "unscheduled",
        f"Runs without a schedule (last {window})",
        UNSCHEDULED_HEADERS,
        rows,
        empty,
    )


def _next_run(charter: CharterView, now: datetime) -> str:
    if charter.config_error:
        return f"unknown: {esc(charter.config_error)}"
    if charter.next_run_at is None:
        return "paused"
    return _when(charter.next_run_at, now, future=True)


RECENT_HEADERS = ("Charter", "Kind", "When", "Status", "Reason")


def _recent_runs(runs: Sequence[RecentRun]) -> str:
    rows = (
        "<tr>"
        + _cell("Charter", esc(run.charter or "—"))
        + _cell("Kind", esc(run.kind))
        + _cell("When", esc(format_time(run.scheduled_for)))
        + _cell("Status", _badge(Health.RED.value, run.status) if run.reason else esc(run.status))
        + _cell("Reason", esc(run.reason or "—"))
        + "</tr>"
        for run in runs
    )
    return _table(
        "recent",
        f"Most recent runs (last {len(runs)})" if runs else "Most recent runs",
        RECENT_HEADERS,
        rows,
        "No runs recorded in the database.",
        phone="runs",
    )


# --- when the database cannot be read ----------------------------------------------------


def _reason(result: CollectionResult) -> str:
    return result.error.reason if result.error is not None else UNKNOWN


def error_text(result: CollectionResult, now: datetime) -> str:
    """E.g. "Database unreachable since 12:03 UTC (5 min)"."""
    return error_sentence(_reason(result), result.failing_since, now)


def _unreadable_body(account: str, result: CollectionResult, now: datetime) -> str:
    detail = str(result.error) if result.error is not None else ""
    if result.last_success_at is not None:
        last = f"Last successful read: {_when(result.last_success_at, now, future=False)}."
    else:
        last = "No successful read since the exporter started."
    return "\n".join(
        [
            _header(account),
            _verdict(
                UNKNOWN,
                "the database cannot be read",
                f'<div id="problems"><p id="error">{esc(error_text(result, now))}: '
                f"{esc(detail)}</p><p>{last}</p></div>",
            ),
            _credits(UNKNOWN, "<p>Not known while the database cannot be read.</p>"),
        ]
    )


def _footer(result: CollectionResult, now: datetime) -> str:
    schema = result.snapshot.schema.version if result.snapshot is not None else "unknown"
    return (
        '<footer id="collection" class="muted">'
        f"Last collection {esc(format_time(result.started_at))} "
        f"({esc(format_duration((now - result.started_at).total_seconds()))} ago), "
        f"took {result.duration_seconds:.2f} s · schema {esc(schema)} · "
        f"refreshes every {PAGE_REFRESH_SECONDS} s · governance-exporter {esc(__version__)}"
        "</footer>"
    )


def _css() -> str:
    every = [*((h.value, c) for h, c in HEALTH_COLOURS.items()), (UNKNOWN, UNKNOWN_COLOURS)]
    colours = [
        *(f".h-{name}{{background:{bg};color:{fg}}}" for name, (bg, fg) in every),
        *(f".b-{name}{{border-color:{bg}}}" for name, (bg, _fg) in every),
    ]
    return _BASE_CSS + "".join(colours)


_BASE_CSS = """
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#fff;--line:#d1d9e0}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;
--line:#3d444d}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:72rem;margin:0 auto;padding:1rem}
a{color:inherit}
nav{float:right;margin-top:.4rem}
h1{font-size:1.4rem;margin:.2rem 0 .5rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.muted,small{color:var(--muted)}
.verdict{border:4px solid;border-radius:14px;margin:1rem 0;overflow:hidden}
#overall{padding:1.25rem 1.5rem}
#overall .label{margin:0;font-weight:600;opacity:.9}
.big{font-size:clamp(2.2rem,9vw,3.6rem);font-weight:800;line-height:1.1;margin:.1rem 0}
.big .count{font-size:.5em;font-weight:700}
#problems{padding:0 1.5rem 1rem}
#problems h3{font-size:1rem;margin:1rem 0 .25rem;color:var(--muted)}
.card{border:1px solid var(--line);border-left:.6rem solid;border-radius:10px;
padding:.75rem 1.25rem;margin:1rem 0}
.card .label{margin:0;font-size:1rem}
.card dl{display:grid;grid-template-columns:repeat(auto-fit,minmax(19rem,1fr));gap:.5rem 1.5rem;
margin:.75rem 0 0}
.card dt{font-size:.85rem;color:var(--muted)}
.card dd{margin:0;font-size:1.05rem;font-weight:650;overflow-wrap:break-word}
.nw{white-space:nowrap}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:999px;font-size:.8rem;
font-weight:700;white-space:nowrap}
ul{padding-left:1.2rem}
li{margin:.3rem 0;overflow-wrap:anywhere}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid var(--line);
vertical-align:top;overflow-wrap:anywhere}
th{font-size:.85rem;color:var(--muted);font-weight:600}
footer{margin:2rem 0 1rem;font-size:.85rem}
@media (max-width:40rem){
nav{float:none}
#overall{padding:1.5rem 1.25rem}
.big .count{display:block}
#problems{padding:0 1.25rem 1rem}
.card{padding:.5rem .9rem}
.card dl{gap:.2rem;margin:.4rem 0 0}
.card dl div{display:flex;justify-content:space-between;align-items:baseline;gap:.75rem}
.card dt{flex:none;max-width:40%}
.card dd{font-size:.95rem;text-align:right}
table.stack thead{display:none}
table.stack tr{display:block;border:1px solid var(--line);border-radius:8px;margin:0 0 .75rem;
padding:.25rem .6rem}
table.stack td{display:flex;justify-content:space-between;gap:1rem;border:0;padding:.3rem 0;
text-align:right}
table.stack td::before{content:attr(data-label);font-weight:600;color:var(--muted);
text-align:left}
table.runs thead{display:none}
table.runs tr{display:grid;grid-template-columns:1fr auto;border-bottom:1px solid var(--line);
padding:.3rem 0}
table.runs td{border:0;padding:.1rem .2rem;overflow-wrap:normal}
table.runs td:nth-child(even){text-align:right}
}
"""
