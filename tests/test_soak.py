"""The soak of bench/soak.py, short enough for CI: the real exporter scraped on
loopback as fast as it answers for ~20 s, its database sessions killed every few
seconds, and no growth in RSS, threads, file descriptors or connections."""

from __future__ import annotations

import sys
from collections.abc import Callable

from harness import REPO, Database, run_exporter

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.soak import SoakResult, seed, soak
from exporter.snapshot import SCHEMA_2026_03

DURATION_S = 20.0
WARMUP_S = 4.0
POOL_MAX_SIZE = 2
# A leak of 1 KiB per request would add ~10 MiB over the ~10,000 requests here.
RSS_SLACK_KIB = 4 * 1024


def test_short_soak_shows_no_growth(make_database: Callable[[str], Database]) -> None:
    database = make_database(SCHEMA_2026_03)
    seed(database)
    env = {"GOVERNANCE_EXPORTER_POOL_MAX_SIZE": str(POOL_MAX_SIZE)}
    with run_exporter(database.monitor_url, env=env) as exporter:
        result = soak(
            exporter,
            database,
            duration=DURATION_S,
            interval=0.0,
            sample_every=1.0,
            kill_every=6.0,
        )
    check(result)


def check(result: SoakResult) -> None:
    steady = [s for s in result.samples if s.elapsed_s >= WARMUP_S]
    assert len(steady) >= 5, result.samples
    first = steady[0]
    assert result.requests >= 500  # it really was a loop of scrapes
    assert result.kills >= 2
    assert result.failures == 0
    assert result.not_up <= result.kills  # a killed session costs at most one scrape
    assert max(s.threads for s in steady) <= first.threads + 2
    assert max(s.fds for s in steady) <= first.fds + 4
    assert max(s.db_sessions for s in result.samples) <= POOL_MAX_SIZE
    assert steady[-1].rss_kib - first.rss_kib < RSS_SLACK_KIB, [s.rss_kib for s in steady]
