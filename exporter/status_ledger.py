"""The status page's "Attribution ledger" section: the ledger's tables as policy judges them.

Only on nodes with the ledger (2026-08 on) or the operator's dispatch schedules;
nothing at all on older nodes. Every colour is a verdict of ``exporter.policy``
(``collect_stalled``, ``receipts_silent``... with the ``--ledger-*`` numbers the
assessment was made with), so the section agrees with ``check`` and the alerts. The
markup uses the page's own classes (``badge h-<health>``, ``table.stack``, ``muted``),
so ``exporter.status_page``'s inline CSS lays it out, a card per row on a phone.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime

from exporter.ledger import DispatchView, DistributionView, EpochStreamView, LedgerView, ReceiptView
from exporter.policy import (
    Assessment,
    LedgerThresholds,
    collect_stall_limit_seconds,
    collect_stalled,
    receipt_silence_limit_seconds,
    receipt_usual_gap_seconds,
    receipts_silent,
    worst,
)
from exporter.words import format_duration, format_time, format_window

LEDGER_ALERTS = "GovernanceLedger"
STREAM_HEADERS = ("Stream", "Open window", "Collect", "Epochs", "Oldest in review")
RECEIPT_HEADERS = ("Node", "Last receipt", "Silent after")
DISTRIBUTION_HEADERS = ("Stream", "Manifests", "Pending liabilities", "Without manifest")
DISPATCH_HEADERS = ("Node", "Collect", "State", "Next dispatch")
DISPATCH_HEALTH = {"enabled": "green", "paused": "yellow", "pruned": "unknown"}
# On a phone the page stacks a row into label: value lines; the ledger's values are long
# sentences and uuids, which would squeeze their labels to a letter a line: keep the
# label a fixed width (inline, as all of the page's CSS; the CSP allows inline styles).
_STYLE = "<style>@media (max-width:40rem){#ledger table.stack td::before{flex:0 0 6.5rem}}</style>"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _badge(health: str, text: str | None = None) -> str:
    return f'<span class="badge h-{health}">{esc(text or health.upper())}</span>'


def _row(key: str, health: str | None, headers: Sequence[str], cells: Sequence[str]) -> str:
    """A table row; ``cells`` are already escaped HTML."""
    tds = "".join(
        f'<td data-label="{esc(label)}"><span>{cell}</span></td>'
        for label, cell in zip(headers, cells, strict=True)
    )
    data = f' data-health="{health}"' if health else ""
    return f'<tr data-key="{esc(key)}"{data}>{tds}</tr>'


def _table(key: str, title: str, headers: Sequence[str], rows: Iterable[str], empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<h3>{esc(title)}</h3><p id="{key}">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return (
        f'<h3>{esc(title)}</h3><table id="{key}" class="stack">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _ago(at: datetime, now: datetime) -> str:
    ago = format_duration((now - at).total_seconds())
    return f'{esc(ago)} ago<br><small class="muted">{esc(format_time(at))}</small>'


def _stream_name(node_id: str, scope_id: str) -> str:
    return f'<b>{esc(node_id)}</b><br><small class="muted">scope {esc(scope_id)}</small>'


# --- the collect, by epochs --------------------------------------------------------------


def _collect(stream: EpochStreamView, limits: LedgerThresholds) -> str:
    limit = esc(format_duration(collect_stall_limit_seconds(stream, limits)))
    window = stream.overdue_window
    if window is None:
        return f'{_badge("green", "on time")} <small class="muted">the window runs</small>'
    ago = format_duration(stream.overdue_seconds)
    if not collect_stalled(stream, limits):
        return f"window ended {esc(ago)} ago; stalled after {limit}"
    what = (
        f"no open epoch: the newest, {format_window(window)}, ended {ago} ago"
        if stream.no_open_epoch
        else f"{format_window(window)} ended {ago} ago and is still open"
    )
    return (
        f"{_badge('red', 'STALLED')} {esc(what)} "
        f'<small class="muted">(stalled after {limit})</small>'
    )


def _review(stream: EpochStreamView, limits: LedgerThresholds) -> tuple[str, bool]:
    """The oldest epoch in review and whether it waits too long."""
    oldest = stream.oldest_review
    if oldest is None:
        return "none in review", False
    wait = format_duration(stream.review_wait_seconds)
    limit = format_duration(limits.review_wait_seconds)
    late = stream.review_wait_seconds > limits.review_wait_seconds
    badge = _badge("yellow", "WAITING") + " " if late else ""
    return (
        f"{badge}{esc(format_window(oldest))} waited {esc(wait)} "
        f'<small class="muted">(a warning after {esc(limit)})</small>',
        late,
    )


def _stream_row(stream: EpochStreamView, limits: LedgerThresholds) -> str:
    stalled = collect_stalled(stream, limits) and stream.overdue_window is not None
    review, late = _review(stream, limits)
    health = "red" if stalled else "yellow" if late else "green"
    window = stream.open_window
    opened = (
        esc(f"{window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC")
        if window
        else "<b>none open</b>"
    )
    counts = " · ".join(f"{status} {n}" for status, n in stream.epochs_by_status.items())
    cells = [
        f"{_stream_name(stream.node_id, stream.scope_id)} {_badge(health)}",
        opened,
        _collect(stream, limits),
        esc(counts),
        review,
    ]
    return _row(f"{stream.node_id}/{stream.scope_id}", health, STREAM_HEADERS, cells)


# --- the webhook plane --------------------------------------------------------------------


def _receipt_row(receipts: ReceiptView, limits: LedgerThresholds, now: datetime) -> str:
    limit = receipt_silence_limit_seconds(receipts, limits)
    gap = receipt_usual_gap_seconds(receipts)
    silent = receipts_silent(receipts, limits)
    health = "red" if silent else "green" if limit is not None else "unknown"
    text = "SILENT" if silent else "receiving" if limit is not None else "not judged"
    last = _ago(receipts.newest_at, now) if receipts.newest_at else "none"
    if limit is None or gap is None:
        rule = f"no cadence yet ({receipts.sampled} receipt(s); judged from 5)"
    else:
        rule = f"{format_duration(limit)} (usual longest gap {format_duration(gap)})"
    cells = [f"<b>{esc(receipts.node_id)}</b> {_badge(health, text)}", last, esc(rule)]
    return _row(receipts.node_id, health, RECEIPT_HEADERS, cells)


def _last_review(ledger: LedgerView, now: datetime) -> str:
    if not ledger.reviews_observable:
        words = "not observable"
    elif ledger.last_review_at is None:
        words = "none in the last 30 d"
    else:
        at = ledger.last_review_at
        words = f"{format_duration((now - at).total_seconds())} ago ({format_time(at)})"
    return f'<p id="ledger-review">Last PR review (system_webhook run): {esc(words)}</p>'


# --- distributions and dispatch ------------------------------------------------------------


def _distribution_row(view: DistributionView) -> str:
    pending = f"{view.pending_liabilities}"
    if view.pending_liabilities:
        pending += f" (oldest {format_duration(view.oldest_pending_age_seconds)})"
    missing = f"{view.finalized_without_manifest}"
    if view.finalized_without_manifest:
        missing += (
            f" (oldest finalized {format_duration(view.oldest_unmanifested_age_seconds)} ago)"
        )
    cells = [
        _stream_name(view.node_id, view.scope_id),
        esc(view.manifests),
        esc(pending),
        esc(missing),
    ]
    return _row(f"{view.node_id}/{view.scope_id}", None, DISTRIBUTION_HEADERS, cells)


def _distributions(ledger: LedgerView) -> str:
    if not ledger.distributions_observable:
        return (
            '<h3>Distributions</h3><p id="ledger-distributions">Not observable: their tables '
            "force row-level security, only a BYPASSRLS role reads them (no problem).</p>"
        )
    rows = (_distribution_row(d) for d in ledger.distributions)
    return _table("ledger-distributions", "Distributions", DISTRIBUTION_HEADERS, rows, "None.")


def _dispatch_row(view: DispatchView, now: datetime) -> str:
    health = DISPATCH_HEALTH[view.state]
    upcoming = "—"
    if view.config_error:
        upcoming = f"unknown: {esc(view.config_error)}"
    elif view.next_run_at is not None:
        upcoming = f"in {esc(format_duration((view.next_run_at - now).total_seconds()))}"
    cells = [f"<b>{esc(view.node)}</b>", esc(view.charter), _badge(health, view.state), upcoming]
    return _row(f"{view.node}/{view.charter}", health, DISPATCH_HEADERS, cells)


def _dispatch(ledger: LedgerView, now: datetime) -> str:
    rows = [_dispatch_row(d, now) for d in ledger.dispatch]
    table = _table(
        "ledger-dispatch",
        "The operator's dispatch schedules",
        DISPATCH_HEADERS,
        rows,
        "None: this node dispatches no other node's collect.",
    )
    if ledger.dispatch_truncated:
        table += '<p class="muted">More dispatch schedules exist than the exporter reads.</p>'
    return table


# --- the section -----------------------------------------------------------------------------


def ledger_section(ledger: LedgerView | None, assessment: Assessment, now: datetime) -> str:
    """The section, or "" on a node without the ledger and without dispatch schedules."""
    if ledger is None or (not ledger.has_ledger and not ledger.dispatch):
        return ""
    limits = assessment.ledger_limits or LedgerThresholds()
    problems = [p for p in assessment.problems if p.alert.startswith(LEDGER_ALERTS)]
    health = worst(p.health for p in problems).value
    parts = [f"<h2>Attribution ledger {_badge(health)}</h2>"]
    if ledger.has_ledger:
        streams = (_stream_row(s, limits) for s in ledger.streams)
        receipts = (_receipt_row(r, limits, now) for r in ledger.receipts)
        parts += [
            _table(
                "ledger-streams",
                "The collect, per stream",
                STREAM_HEADERS,
                streams,
                "No epochs yet.",
            ),
            _table(
                "ledger-receipts",
                "The webhook plane, per node",
                RECEIPT_HEADERS,
                receipts,
                "No receipts yet.",
            ),
            _last_review(ledger, now),
            _distributions(ledger),
        ]
    parts.append(_dispatch(ledger, now))
    return f'<section id="ledger" data-health="{health}">{_STYLE}{"".join(parts)}</section>'
