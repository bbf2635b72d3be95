"""The demo node's shape at a given speed: its work, each on a cron of real time, and its repo-spec.

The demo runs ``speed`` times faster than real time, and everything the exporter
reads is said in real time, so that nothing contradicts itself: a schedule that
runs hourly in the node's story is written with a cron that fires every
3600/``speed`` real seconds (at 60x: ``* * * * *``), the repo-spec declares the
same crons, and the exporter's window is one demo day (``window_seconds``; at
60x, 1440 s). A cron can only express periods that divide a minute, an hour or
a day, so a period is rounded down to the nearest one it can (a demo day at 60x,
24 real minutes, becomes 20): the driver fires each schedule by its cron, so the
runs, the rows and the exporter's "next run" always agree. Periods shorter than
a minute use cron's optional leading seconds field (``*/6 * * * * *``), which
the exporter's cron library reads.

Two shapes (``NODES``):

- ``current``: the node as it is today (SOURCE-SYSTEM.md, "A node since
  2026-08"), the source project's operator node: ``HEARTBEAT`` hourly, the
  ledger's collect daily at 06:00 (``graph_id = 'ledger:ingest'``: it moves the
  epochs, one demo day each, and ``ingestion_cursors``), GitHub events delivered by
  webhook every quarter of an hour (``ingestion_receipts``), the four February
  charters' rows pruned, PR reviews twice an hour as runs without a schedule. It
  has a repo-spec.
- ``2026-02``: the node of 2026-02-15: the four hourly charters, a quarter of an
  hour apart; no repo-spec.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronsim import CronSim

from exporter.demo import scenario
from exporter.model import next_run

NODE_CURRENT = "current"
NODE_FEBRUARY = "2026-02"
NODES = (NODE_CURRENT, NODE_FEBRUARY)

DEMO_DAY_SECONDS = 86400
DEMO_HOUR_SECONDS = 3600

CHARTER = "charter"  # a scheduled graph run, charged
LEDGER = "ledger"  # a ledger collection: no run row, no charge; it moves ingestion_cursors
REVIEW = "review"  # a PR review: a run without a schedule, charged through its run_id
REVIEW_NAME = "pr_review"
RECEIPT = "receipt"  # a GitHub event the webhook plane delivered: an ingestion receipt
RECEIPT_NAME = "github_webhook"

# The divisors of a minute, an hour (in minutes) and a day (in hours) a cron
# step can express evenly.
_STEPS_IN_MINUTE = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_STEPS_IN_HOUR = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_STEPS_IN_DAY = (1, 2, 3, 4, 6, 8, 12, 24)


def window_seconds(speed: float) -> int:
    """The exporter's window in the demo: one demo day, in real seconds."""
    return max(1, round(DEMO_DAY_SECONDS / speed))


def _largest_step(steps: tuple[int, ...], at_most: float) -> int:
    return max((s for s in steps if s <= at_most), default=steps[0])


def _stepped(offset: int, step: int, top: int) -> str:
    """A cron field firing every ``step`` units from ``offset`` (``top``: its last value)."""
    if step == 1:
        return "*"
    if step > top:
        return str(offset)
    return f"*/{step}" if offset == 0 else f"{offset}-{top}/{step}"


def demo_cron(period_seconds: float, offset_seconds: float = 0) -> str:
    """A UTC cron firing every ``period_seconds`` (rounded down to a period a cron can
    express evenly), ``offset_seconds`` into each period; five fields when whole
    minutes do, else with cron's leading seconds field."""
    offset = max(0, int(offset_seconds))
    if period_seconds < 60:
        step = _largest_step(_STEPS_IN_MINUTE, period_seconds)
        return f"{_stepped(offset % step, step, 59)} * * * * *"
    if period_seconds < 3600:
        step = _largest_step(_STEPS_IN_HOUR, period_seconds / 60)
        minute, second = divmod(offset % (step * 60), 60)
        fields = f"{_stepped(minute, step, 59)} * * * *"
    else:
        step = _largest_step(_STEPS_IN_DAY, period_seconds / 3600)
        hour, rest = divmod(offset % (step * 3600), 3600)
        minute, second = divmod(rest, 60)
        fields = f"{minute} {_stepped(hour, step, 23)} * * *"
    return fields if second == 0 else f"{second} {fields}"


def period_seconds(cron: str) -> float:
    """The seconds between two fires of ``cron`` (UTC)."""
    return next_run(cron, "UTC", datetime(2026, 1, 1, tzinfo=UTC)).interval_seconds


def fires(cron: str, after: datetime, until: datetime, limit: int = 10_000) -> Iterator[datetime]:
    """The fire times of ``cron`` (UTC) in (``after``, ``until``], at most ``limit``."""
    for count, fire in enumerate(CronSim(cron, after.astimezone(UTC))):
        if fire > until or count >= limit:
            return
        yield fire


@dataclass(frozen=True)
class Work:
    """Something the node does on a cron."""

    name: str  # the exporter's charter label, or REVIEW_NAME
    kind: str  # CHARTER, LEDGER, REVIEW or RECEIPT
    cron: str  # real time, UTC
    cost: int  # credits a successful run is charged (0 for the ledger)
    demo_every: str  # how often in the story, for people: "hourly"
    declared: str | None = None  # the repo-spec's charter name, when it declares it

    @property
    def period(self) -> timedelta:
        return timedelta(seconds=period_seconds(self.cron))

    @property
    def duration(self) -> timedelta:
        """How long a run takes: a tenth of its period, two real minutes at most."""
        return min(self.period / 10, timedelta(seconds=120))


def plan(
    node: str, speed: float, *, charter_cost: int = 1_000_000, review_cost: int = 300_000
) -> tuple[Work, ...]:
    """The node's work at ``speed``, in the order it is listed."""
    hour = DEMO_HOUR_SECONDS / speed
    if node == NODE_FEBRUARY:
        return tuple(
            Work(charter, CHARTER, demo_cron(hour, quarter * hour / 4), charter_cost, "hourly")
            for quarter, charter in enumerate(scenario.CHARTER_CRONS)
        )
    if node != NODE_CURRENT:
        raise ValueError(f"unknown demo node {node!r}")
    return (
        Work("heartbeat", CHARTER, demo_cron(hour), charter_cost, "hourly", "HEARTBEAT"),
        Work(
            "ledger_ingest",
            LEDGER,
            demo_cron(DEMO_DAY_SECONDS / speed, 6 * hour),
            0,
            "daily at 06:00",
            "LEDGER_INGEST",
        ),
        Work(REVIEW_NAME, REVIEW, demo_cron(hour / 2, hour / 6), review_cost, "twice an hour"),
        Work(RECEIPT_NAME, RECEIPT, demo_cron(hour / 4, hour / 12), 0, "every quarter hour"),
    )


def exporter_overrides(speed: float) -> dict[str, int]:
    """The exporter's options in demo time: its window, one demo day; the ledger's
    collect grace (2 h) and approvers' wait (7 days) in demo hours and days. The
    webhook plane's floor (72 h) would be 72 real minutes at 60x, longer than the
    story: it is one demo hour, so that the node's own cadence decides (4 x a quarter
    hour between receipts)."""
    return {
        "window_seconds": window_seconds(speed),
        "ledger_collect_grace_seconds": max(1, round(2 * DEMO_HOUR_SECONDS / speed)),
        "ledger_silence_min_seconds": max(1, round(DEMO_HOUR_SECONDS / speed)),
        "ledger_review_wait_seconds": max(1, round(7 * DEMO_DAY_SECONDS / speed)),
    }


def spend_per_window(works: tuple[Work, ...], window: float) -> float:
    """What the node spends in ``window`` seconds when every run succeeds."""
    return sum(w.cost * window / w.period.total_seconds() for w in works)


_REPO_SPEC_HEAD = f"""\
# The demo node's .cogni/repo-spec.yaml, as the source project's operator node
# declares it, with its crons in real time at the demo's speed ({{speed:g}}x: one
# demo hour per {{hour}}): `governance-exporter demo` writes this file for the
# exporter's --repo-spec; docker-compose.yml mounts the committed copy for the
# driver's --speed=60, written by `python -m exporter.demo.driver --speed=60
# --print-repo-spec > docker/demo-node/repo-spec.yaml`.
schema_version: "0.1.4"
node_id: "538b4da2-bd59-4c3a-928a-8a40b6627205"
scope_id: "{scenario.DEFAULT_SCOPE_ID}"
scope_key: "default"

activity_ledger:
  epoch_length_days: 1 # one demo day: the demo's epochs last one collect period
  activity_sources:
    github:
      attribution_pipeline: cogni-v0.0
      source_refs: ["Cogni-DAO/node-template"]

intent:
  name: cogni-demo-operator

governance:
  schedules:
"""


def _human_seconds(seconds: float) -> str:
    return f"{seconds / 60:g} real min" if seconds >= 60 else f"{seconds:g} real s"


def repo_spec_text(speed: float, works: tuple[Work, ...] | None = None) -> str:
    """The current node's repo-spec: its declared schedules with their demo crons."""
    works = works if works is not None else plan(NODE_CURRENT, speed)
    head = _REPO_SPEC_HEAD.format(speed=speed, hour=_human_seconds(DEMO_HOUR_SECONDS / speed))
    entries = []
    for work in works:
        if work.declared is None:
            continue
        every = _human_seconds(work.period.total_seconds())
        entries.append(
            f"    - charter: {work.declared}\n"
            f'      cron: "{work.cron}" # {work.demo_every} in the story: every {every}\n'
            "      timezone: UTC\n"
            f"      entrypoint: {work.declared}\n"
        )
    return head + "".join(entries)
