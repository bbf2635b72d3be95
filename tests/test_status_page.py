"""The status page at ``/``, served by the real exporter on a real database and
loaded in a real headless Chromium: rendered text, computed colours, phone
layout, no request but the page itself, and a screenshot of each scenario in
``artifacts/status-page/`` (not committed).

With GOVERNANCE_EXPORTER_DOCS_SCREENSHOT=<path> the yellow scenario's laptop
screenshot is also written there (``docs/make_screenshots.py`` does that for the
README).
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import REPO, Database, ExporterProcess, create_database, local_postgres, run_exporter
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from psycopg import sql

from exporter.demo import scenario
from exporter.policy import Health
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03
from exporter.status_page import (
    CONTENT_SECURITY_POLICY,
    HEALTH_COLOURS,
    PAGE_REFRESH_SECONDS,
    UNKNOWN_COLOURS,
)

CHROMIUM = Path(os.environ.get("GOVERNANCE_EXPORTER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "artifacts" / "status-page"
DOCS_SCREENSHOT = os.environ.get("GOVERNANCE_EXPORTER_DOCS_SCREENSHOT")
VIEWPORTS = {"laptop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
GRAFANA = "https://grafana.example/d/governance?orgId=1&from=now-24h"
H = timedelta(hours=1)


def health_colour(health: Health) -> str:
    """The background the page's CSS gives a health (``.h-<health>``)."""
    return HEALTH_COLOURS[health][0]


def rgb(hex_colour: str) -> str:
    """``#1a7f37`` → ``rgb(26, 127, 55)``, as getComputedStyle reports it."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: .ci/run installs Debian's chromium"
    with sync_playwright() as playwright:
        # Playwright adds --headless and a fresh --user-data-dir of its own.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


# What the page shows, read from the live DOM in one round trip.
READ_PAGE = """() => {
  const style = (el) => el ? getComputedStyle(el) : null;
  const text = (sel) => document.querySelector(sel)?.textContent ?? null;
  const area = (el) => { const r = el.getBoundingClientRect(); return r.width * r.height; };
  const box = (sel, type) => {
    const el = document.querySelector(sel);
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, area: r.width * r.height,
            fontSize: parseFloat(style(el.querySelector(type)).fontSize)};
  };
  return {
    health: text('#health'),
    creditBackground: style(document.querySelector('#credit #health'))?.backgroundColor,
    overallBackground: style(document.querySelector('#overall'))?.backgroundColor,
    verdict: text('#verdict-health'),
    verdictBox: box('#verdict', '.big'), creditBox: box('#credit', '.label'),
    // The element with the most area painted in a health colour, and what it says.
    biggestColoured: [...document.querySelectorAll('[class*="h-"]')]
      .map(el => ({area: area(el), text: el.innerText.replace(/\\s+/g, ' ').trim()}))
      .sort((a, b) => b.area - a.area)[0]?.text ?? null,
    creditLabel: document.querySelector('#credit .label')?.firstChild?.textContent?.trim(),
    runway: text('#runway'), balance: text('#balance'), burn: text('#burn'),
    spent: text('#spent'), error: text('#error'), footer: text('#collection'),
    problems: [...document.querySelectorAll('#problems > ul > li')].map(li => li.textContent),
    recovered: [...document.querySelectorAll('#recovered li')].map(li => li.textContent),
    charters: [...document.querySelectorAll('#charters tbody tr')].map(tr => ({
      charter: tr.dataset.charter,
      badge: style(tr.querySelector('.badge')).backgroundColor,
      cells: [...tr.querySelectorAll('td')].map(td => td.innerText.replace(/\\s+/g, ' ').trim()),
    })),
    recent: [...document.querySelectorAll('#recent tbody tr')].map(tr => ({
      cells: [...tr.querySelectorAll('td')].map(td => td.textContent),
      badge: style(tr.querySelector('.badge'))?.backgroundColor ?? null,
    })),
    links: [...document.querySelectorAll('#links a')].map(a => a.getAttribute('href')),
    refresh: document.querySelector('meta[http-equiv=refresh]')?.content,
    scripts: document.scripts.length,
    overflow: document.documentElement.scrollWidth > document.documentElement.clientWidth,
    stacked: style(document.querySelector('#charters thead'))?.display === 'none',
    // A value part broken across lines has more than one client rect.
    brokenValues: [...document.querySelectorAll('.card dd .nw')]
      .filter(s => s.getClientRects().length > 1).map(s => s.textContent),
    lines: Object.fromEntries([...document.querySelectorAll('.card dd')].map(dd => [dd.id,
      Math.round(dd.getBoundingClientRect().height / parseFloat(style(dd).lineHeight))])),
  };
}"""


@dataclass
class Visit:
    """One load of the page in one viewport."""

    page: Page
    shown: dict[str, Any]
    requests: list[str]
    console_errors: list[str] = field(default_factory=list)


def visit(browser: Browser, exporter: ExporterProcess, name: str, device: str) -> Visit:
    context = browser.new_context(viewport=VIEWPORTS[device])  # type: ignore[arg-type]
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    response = page.goto(exporter.url + "/")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{device}.png"), full_page=True)
    return Visit(page, page.evaluate(READ_PAGE), requests, errors)


def visit_both(browser: Browser, exporter: ExporterProcess, name: str) -> dict[str, Any]:
    """Laptop and phone: the same page, nothing but itself loaded, no overflow on a phone.
    Returns what the laptop view shows."""
    shown = {}
    for device in VIEWPORTS:
        seen = visit(browser, exporter, name, device)
        assert seen.requests == [exporter.url + "/"]  # no asset, no favicon, nothing external
        assert seen.console_errors == []  # the CSP blocked nothing the page needs
        assert seen.shown["scripts"] == 0
        assert seen.shown["refresh"] == str(PAGE_REFRESH_SECONDS)
        assert not seen.shown["overflow"], f"{name} scrolls sideways on a {device}"
        # No value breaks inside itself (a number, "credits", "$5.00"); on a laptop
        # balance and burn fit on one line each.
        assert seen.shown["brokenValues"] == [], f"{name} on a {device}"
        if device == "laptop" and "balance" in seen.shown["lines"]:
            assert seen.shown["lines"]["balance"] == 1, seen.shown["lines"]
            assert seen.shown["lines"]["burn"] == 1, seen.shown["lines"]
        if seen.shown["charters"]:
            assert seen.shown["stacked"] is (device == "phone")  # rows become cards on a phone
        one_verdict_first(seen.shown, f"{name} on a {device}")
        shown[device] = seen.shown
        seen.page.context.close()
    return shown["laptop"]


def one_verdict_first(shown: dict[str, Any], where: str) -> None:
    """The verdict is the first, largest element; the credit card, labelled "Credits",
    sits below it, smaller, in smaller type; the most colour on the page is the
    verdict's."""
    verdict, credit = shown["verdictBox"], shown["creditBox"]
    assert verdict["bottom"] <= credit["top"], where
    assert verdict["area"] > credit["area"], where
    assert verdict["fontSize"] > 1.5 * credit["fontSize"], where
    assert shown["creditLabel"] == "Credits", where
    assert shown["biggestColoured"].startswith(f"Overall {shown['verdict']}"), where


def seeded(make_database: Callable[[str], Database], schema: str, seed: Callable[..., Any]) -> str:
    database = make_database(schema)
    with database.connect() as conn:
        seed(conn, schema, datetime.now(UTC))
    return database.monitor_url


# --- scenarios ----------------------------------------------------------------------------


def test_green(browser: Browser, make_database: Callable[[str], Database]) -> None:
    url = seeded(make_database, SCHEMA_2026_03, scenario.seed_governance)
    with run_exporter(url, env={"GOVERNANCE_EXPORTER_GRAFANA_URL": GRAFANA}) as exporter:
        shown = visit_both(browser, exporter, "green")
    assert shown["health"] == "GREEN"
    assert shown["creditBackground"] == rgb(health_colour(Health.GREEN))
    assert shown["overallBackground"] == rgb(health_colour(Health.GREEN))
    # 4 charters x 24 runs x 1M credits in 24 h = 4M/h; 500M / 4M/h = 125 h
    assert shown["runway"] == "5.2 days"
    assert shown["balance"] == "500,000,000 credits · $50.00"
    assert shown["burn"] == "4,000,000 credits/h · $0.40/h"
    assert shown["spent"] == "96,000,000 credits · $9.60 · 96 charges"
    assert shown["problems"] == []
    assert [row["charter"] for row in shown["charters"]] == list(scenario.CHARTER_CRONS)
    for row in shown["charters"]:
        assert row["badge"] == rgb(health_colour(Health.GREEN))
        charter, enabled, last, upcoming, runs, failed = row["cells"]
        assert charter == f"{row['charter']} GREEN"
        assert enabled == "yes"
        assert re.fullmatch(r"(\d+ min|\d+ s) ago \d{4}-\d\d-\d\d \d\d:\d\d UTC", last)
        assert re.fullmatch(r"in (\d+ min|\d+ s|1 h) \d{4}-\d\d-\d\d \d\d:\d\d UTC", upcoming)
        assert runs == "success 24"
        assert failed == "0"
    assert len(shown["recent"]) == 10
    assert {row["cells"][3] for row in shown["recent"]} == {"success"}
    assert {row["cells"][1] for row in shown["recent"]} == {"system_scheduled"}
    assert shown["links"] == ["/metrics", GRAFANA]


def yellow_seed(conn: Any, version: str, now: datetime) -> None:
    """About 12.5 h of runway, SUSTAINABILITY paused, one ENGINEERING timeout."""
    _tenant, schedules = scenario.seed_governance(conn, version, now, balance_credits=50_000_000)
    conn.execute(
        "UPDATE schedules SET enabled = false WHERE id = %s", (schedules["sustainability"],)
    )
    slot = scenario.hourly_slots("engineering", now, 1)[0]
    conn.execute(
        sql.SQL(
            "UPDATE {} SET status = 'error', error_message = 'timeout'"
            " WHERE schedule_id = %s AND scheduled_for = %s"
        ).format(sql.Identifier(scenario.runs_table(version))),
        (schedules["engineering"], slot),
    )


def test_yellow(browser: Browser, make_database: Callable[[str], Database]) -> None:
    url = seeded(make_database, SCHEMA_2026_03, yellow_seed)
    with run_exporter(url) as exporter:
        shown = visit_both(browser, exporter, "yellow")
    if DOCS_SCREENSHOT:
        shutil.copyfile(ARTIFACTS / "yellow-laptop.png", DOCS_SCREENSHOT)
    assert shown["health"] == "YELLOW"
    assert shown["creditBackground"] == rgb(health_colour(Health.YELLOW))
    assert shown["runway"] == "12.5 hours"  # 50M credits at 4M/h
    assert shown["balance"] == "50,000,000 credits · $5.00"
    rows = {row["charter"]: row for row in shown["charters"]}
    assert rows["govern"]["badge"] == rgb(health_colour(Health.GREEN))
    assert rows["sustainability"]["badge"] == rgb(health_colour(Health.YELLOW))
    assert rows["sustainability"]["cells"][1:4:2] == ["no (paused)", "paused"]
    assert rows["engineering"]["badge"] == rgb(health_colour(Health.YELLOW))
    assert rows["engineering"]["cells"][5] == "timeout 1"
    failed = [row for row in shown["recent"] if row["cells"][3] == "error"]
    assert [row["cells"][0] for row in failed] == ["engineering"]
    assert failed[0]["cells"][4] == "timeout"
    assert failed[0]["badge"] == rgb(health_colour(Health.RED))
    assert any(
        re.search(r"engineering: 1 run failed in the last 24 h, last (\d+ min|\d+ s) ago", p)
        for p in shown["problems"]
    ), shown["problems"]
    assert shown["links"] == ["/metrics"]  # no Grafana link without its URL


def test_red_replayed_incident(browser: Browser, make_database: Callable[[str], Database]) -> None:
    url = seeded(make_database, SCHEMA_2026_02, scenario.seed_incident)
    with run_exporter(url) as exporter:
        shown = visit_both(browser, exporter, "red")
    assert shown["health"] == "RED"
    assert shown["creditBackground"] == rgb(health_colour(Health.RED))
    assert shown["overallBackground"] == rgb(health_colour(Health.RED))
    assert shown["runway"] == "0 — no credits left"
    assert shown["balance"] == "0 credits · $0.00"
    for row in shown["charters"]:
        assert row["badge"] == rgb(health_colour(Health.RED))
        assert row["cells"][5] == "insufficient_credits 6"
        assert re.fullmatch(r"(5|6) h \d+ min ago .*|6 h ago .*", row["cells"][2])
    assert len(shown["recent"]) == 10
    for row in shown["recent"]:
        # 2026-02: schedule_runs only, every run a scheduled one
        assert row["cells"][1:2] + row["cells"][3:] == [
            "system_scheduled",
            "error",
            "insufficient_credits",
        ]
        assert row["badge"] == rgb(health_colour(Health.RED))
    stalled = [p for p in shown["problems"] if "GovernanceCharterStalled" in p]
    assert len(stalled) == 4


def provider_outage_seed(conn: Any, version: str, now: datetime) -> None:
    """The autumn shape: the balance is fine, the last two runs of each charter and two
    PR reviews failed with provider_unavailable (the provider account is unfunded)."""
    tenant, schedules = scenario.seed_governance(conn, version, now)
    for minutes in (4, 1):
        scenario.add_unscheduled_run(
            conn,
            tenant,
            now - timedelta(minutes=minutes),
            "error",
            error_code="provider_unavailable",
        )
    # A chat run that failed 3 h ago and succeeded since: recovered, not counted.
    scenario.add_unscheduled_run(
        conn, tenant, now - 3 * H, "error", run_kind="user_immediate", error_code="internal"
    )
    scenario.add_unscheduled_run(conn, tenant, now - 2 * H, "success", run_kind="user_immediate")
    for charter, schedule_id in schedules.items():
        for slot in scenario.hourly_slots(charter, now, 2):
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET status = 'error', error_code = 'provider_unavailable',"
                    " error_message = 'provider unavailable'"
                    " WHERE schedule_id = %s AND scheduled_for = %s"
                ).format(sql.Identifier(scenario.runs_table(version))),
                (schedule_id, slot),
            )


def test_provider_outage_with_a_fine_balance_reads_red(
    browser: Browser, make_database: Callable[[str], Database]
) -> None:
    """Issue 23: the credit card is green, but the page's biggest colour says RED."""
    url = seeded(make_database, SCHEMA_2026_03, provider_outage_seed)
    with run_exporter(url) as exporter:
        shown = visit_both(browser, exporter, "provider-outage")
    assert shown["health"] == "GREEN"  # the balance itself is fine
    assert shown["creditBackground"] == rgb(health_colour(Health.GREEN))
    assert shown["verdict"] == "RED"
    assert shown["overallBackground"] == rgb(health_colour(Health.RED))
    assert shown["biggestColoured"].startswith("Overall RED")
    (provider,) = [p for p in shown["problems"] if "GovernanceProviderUnavailable" in p]
    assert re.search(
        r"10 runs failed with provider_unavailable in the last 24 h, last (\d+ min|\d+ s) ago",
        provider,
    ), provider
    (recovered,) = shown["recovered"]
    assert re.fullmatch(
        r"user_immediate runs: 1 run without a schedule failed in the last 24 h, last "
        r"(2 h 59 min|3 h) ago: internal 1; recovered: succeeded (1 h 59 min|2 h) ago "
        r"\(GovernanceRunsFailing\)",
        recovered,
    ), recovered
    assert not [p for p in shown["problems"] if "user_immediate" in p]
    # "Most recent runs" holds the reviews too (issue 23), with their kind, newest first.
    recent = [row["cells"] for row in shown["recent"]]
    reviews = [cells for cells in recent if cells[1] == "system_webhook"]
    assert [cells[:2] + cells[3:] for cells in reviews] == [
        ["—", "system_webhook", "error", "provider_unavailable"]
    ] * 2
    assert {cells[1] for cells in recent} == {"system_webhook", "system_scheduled"}
    assert [cells[2] for cells in recent] == sorted((cells[2] for cells in recent), reverse=True)


def test_database_down_then_back_without_a_reload(browser: Browser) -> None:
    """The page says what is wrong in plain words, then refreshes itself into data."""
    with local_postgres() as server:
        assert server is not None
        database = create_database(server.admin_url, SCHEMA_2026_03)
        with database.connect() as conn:
            scenario.seed_governance(conn, SCHEMA_2026_03, datetime.now(UTC))
        server.stop()
        env = {"GOVERNANCE_EXPORTER_STATEMENT_TIMEOUT_SECONDS": "1"}
        with run_exporter(database.monitor_url, env=env) as exporter:
            shown = visit_both(browser, exporter, "database-down")
            assert shown["health"] == "UNKNOWN"
            assert shown["creditBackground"] == rgb(UNKNOWN_COLOURS[0])
            assert re.fullmatch(
                r"Database unreachable since (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC \(\d+ s\): "
                r'connection to server at "127\.0\.0\.1", port \d+ failed: Connection refused; '
                r"trying again at the next collection",
                shown["error"],
            )
            assert shown["charters"] == []
            page = visit(browser, exporter, "database-down", "laptop").page
            server.start()
            for _ in range(2):  # the meta refresh reloads it; the first may still fail
                page.wait_for_event("load", timeout=(PAGE_REFRESH_SECONDS + 10) * 1000)
                if page.text_content("#health") != "UNKNOWN":
                    break
            assert page.text_content("#health") == "GREEN"
            page.screenshot(path=str(ARTIFACTS / "database-back-laptop.png"), full_page=True)
            page.context.close()


# --- without a browser ---------------------------------------------------------------------


def test_database_values_are_escaped(make_database: Callable[[str], Database]) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    database = make_database(SCHEMA_2026_03)
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=10)
        scenario.add_schedule(conn, tenant, "x", temporal_schedule_id=f"governance:{hostile}")
    env = {"GOVERNANCE_EXPORTER_GRAFANA_URL": 'https://g.example/"><script>x</script>'}
    with run_exporter(database.monitor_url, env=env) as exporter:
        status, body = exporter.get("/")
    assert status == 200
    assert "<script" not in body.lower()
    assert "<img" not in body.lower()
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        in (body)
    )
    assert 'href="https://g.example/&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in body


def test_the_real_incident_shows_missing_charters(make_database: Callable[[str], Database]) -> None:
    """2026-02-15: balance 0 and no schedule rows, so no runs either."""
    database = make_database(SCHEMA_2026_02)
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=0)
    with run_exporter(database.monitor_url) as exporter:
        status, body = exporter.get("/")
    assert status == 200
    assert body.count("not configured: no schedule row") == 4
    assert "No runs recorded in the database." in body
    assert body.count("GovernanceCharterMissing") == 4
    assert "<title>RED · governance · cogni_system</title>" in body


def test_headers_and_head(database: Database) -> None:
    with database.connect() as conn:
        scenario.seed_governance(conn, database.schema, datetime.now(UTC), hours=2)
    with run_exporter(database.monitor_url) as exporter:
        for method in ("GET", "HEAD"):
            request = urllib.request.Request(exporter.url + "/", method=method)
            with urllib.request.urlopen(request, timeout=15) as response:
                headers = response.headers
                body = response.read()
            assert headers["Content-Type"] == "text/html; charset=utf-8"
            assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert headers["Cache-Control"] == "no-store"
            assert (body == b"") is (method == "HEAD")
