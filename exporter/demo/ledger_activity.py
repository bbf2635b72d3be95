"""The demo node's ledger as it happens: collects move its epochs on, webhooks deliver receipts.

The demo's epochs last one collect period (the ledger schedule's cron: a demo day,
rounded down to what a cron expresses), their windows aligned on that period. A
collect at ``at`` does what the source project's daily collect and its approvers
do, in that order: the epoch in review since the last collect is approved
(``finalized``), the open epoch whose window has ended goes to ``review``, and the
current window gets its ``open`` epoch. On time, an ended window is never open
longer than until the next collect, so ``GovernanceLedgerCollectStalled`` stays
quiet. Through an owner or superuser connection, like ``exporter.demo.ledger``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exporter.demo import ledger
from exporter.demo.scenario import DEFAULT_SCOPE_ID, Conn


def window_start(at: datetime, period: timedelta) -> datetime:
    """The start of the epoch window holding ``at``: a multiple of ``period`` since the
    Unix epoch (the demo's crons step through minutes, hours and days evenly, so
    these are the collect period's own boundaries)."""
    step = period.total_seconds()
    seconds = at.timestamp() // step * step
    return datetime.fromtimestamp(seconds, UTC)


def collect(conn: Conn, at: datetime, period: timedelta, *, node_id: str = ledger.NODE_ID) -> str:
    """One collect at ``at`` (see the module doc); returns what it did, for the log."""
    finalized = conn.execute(
        "UPDATE public.epochs SET status = 'finalized', closed_at = %s"
        " WHERE node_id = %s AND scope_id = %s AND status = 'review'",
        (at, node_id, DEFAULT_SCOPE_ID),
    ).rowcount
    reviewed = conn.execute(
        "UPDATE public.epochs SET status = 'review'"
        " WHERE node_id = %s AND scope_id = %s AND status = 'open' AND period_end <= %s",
        (node_id, DEFAULT_SCOPE_ID, at),
    ).rowcount
    start = window_start(at, period)
    opened = conn.execute(
        "SELECT 1 FROM public.epochs WHERE node_id = %s AND scope_id = %s"
        " AND period_start = %s AND period_end = %s",
        (node_id, DEFAULT_SCOPE_ID, start, start + period),
    ).fetchone()
    if opened is None:
        ledger.add_epoch(conn, "open", start, period_end=start + period, node_id=node_id)
    done = [f"{finalized} finalized"] if finalized else []
    done += [f"{reviewed} to review"] if reviewed else []
    done += [f"opened {start:%H:%M:%S}-{start + period:%H:%M:%S}"] if opened is None else []
    return ", ".join(done) or "nothing to move"


def newest_receipt(conn: Conn, *, node_id: str = ledger.NODE_ID) -> datetime | None:
    """When the webhook plane last delivered (a restarted driver resumes after it)."""
    row = conn.execute(
        "SELECT max(ingested_at) FROM public.ingestion_receipts WHERE node_id = %s", (node_id,)
    ).fetchone()
    return None if row is None else row[0]


def receive(conn: Conn, at: datetime) -> None:
    """One GitHub event the webhook plane delivered at ``at``."""
    ledger.add_receipts(conn, [at])
