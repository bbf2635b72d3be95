"""The status page's Attribution ledger section (exporter.status_ledger), from pure views."""

from __future__ import annotations

import re
from dataclasses import replace

from test_ledger_model import (
    LIMITS,
    NODE,
    NOW,
    D,
    distributions,
    receipts,
    schedule,
    stream_row,
    view,
)

from exporter.ledger import (
    LedgerView,
    dispatch_views,
    distribution_view,
    epoch_stream,
    receipt_view,
)
from exporter.policy import Assessment, LedgerThresholds, ledger_problems, worst
from exporter.status_ledger import ledger_section

H = D / 24


def section(ledger: LedgerView | None, limits: LedgerThresholds = LIMITS) -> str:
    problems = ledger_problems(ledger, limits, NOW) if ledger else []
    assessment = Assessment(worst(p.health for p in problems), problems, limits)
    return ledger_section(ledger, assessment, NOW)


def row(html: str, table: str) -> str:
    (found,) = re.findall(rf'<table id="{table}".*?<tbody>(.*?)</tbody>', html)
    return str(found)


def test_no_ledger_and_no_dispatch_is_no_section() -> None:
    assert section(None) == ""
    assert section(view(has_ledger=False)) == ""


def test_the_page_judges_with_the_assessments_own_numbers() -> None:
    """A window that ended 25 h ago: on time with the default 2 h grace, stalled with none."""
    stream = epoch_stream(stream_row(open_end=NOW - 25 * H), [], NOW)
    ledger = view(streams=(stream,))
    default = section(ledger)
    assert 'data-health="green"' in row(default, "ledger-streams")
    assert "window ended 25 h ago; stalled after 26 h" in default
    tuned = section(ledger, replace(LIMITS, collect_grace_seconds=0))
    assert '<section id="ledger" data-health="red">' in tuned
    assert "STALLED" in row(tuned, "ledger-streams")
    assert "ended 25 h ago and is still open" in tuned
    assert "(stalled after 24 h)" in tuned


def test_silence_waiting_approvers_distributions_and_a_paused_dispatch() -> None:
    stream = epoch_stream(stream_row(reviews=(NOW - 9 * D,)), [], NOW)
    ledger = view(
        streams=(stream,),
        receipts=(receipt_view(receipts(H, 80 * H), NOW),),
        reviews_observable=True,
        last_review_at=NOW - 80 * H,
        distributions_observable=True,
        distributions=(distribution_view(distributions(3, NOW - 3 * D), NOW),),
        dispatch=tuple(
            dispatch_views([schedule(f"governance:{NODE}:ledger_ingest", enabled=False)], NOW)
        ),
    )
    html = section(ledger)
    assert '<section id="ledger" data-health="red">' in html
    streams = row(html, "ledger-streams")
    assert 'data-health="yellow"' in streams
    assert "WAITING" in streams
    assert "waited 9 d" in streams
    webhook = row(html, "ledger-receipts")
    assert 'data-health="red"' in webhook
    assert "SILENT" in webhook
    assert "3 d (usual longest gap 1 h)" in webhook
    assert "Last PR review (system_webhook run): 3 d 8 h ago" in html
    money = row(html, "ledger-distributions")
    assert "4 (oldest 5 d)" in money
    assert "1 (oldest finalized 3 d ago)" in money
    dispatch = row(html, "ledger-dispatch")
    assert '<span class="badge h-yellow">paused</span>' in dispatch
    assert 'data-health="yellow"' in dispatch


def test_distributions_not_observable_are_said_never_red() -> None:
    html = section(view(distributions_observable=False))
    assert '<section id="ledger" data-health="green">' in html
    assert "Not observable" in html
    assert "No epochs yet." in html


def test_every_value_from_the_database_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    stream = epoch_stream(replace(stream_row(), node_id=hostile, scope_id=hostile), [], NOW)
    html = section(view(streams=(stream,)))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
