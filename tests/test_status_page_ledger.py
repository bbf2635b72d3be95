"""The status page's "Attribution ledger" section, on ledger-era nodes in a real Chromium.

Each node is schema-2026-08-full.sql loaded as is, its rows written as the source
project writes them (exporter.demo.ledger, the shapes of tests/test_ledger.py), read
by the real exporter as the least-privilege role (no BYPASSRLS: distributions are
not observable); the page is loaded on a laptop and on a 390 px phone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import Database, run_exporter
from playwright.sync_api import Browser, sync_playwright
from test_ledger import NODES, collect_stopped, operator_node
from test_status_page import CHROMIUM, CHROMIUM_ARGS, VIEWPORTS, health_colour, rgb, visit

from exporter.demo import ledger, scenario
from exporter.policy import Health
from exporter.snapshot import SCHEMA_2026_03, SCHEMA_2026_08

ENV = {"GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": ""}
D = timedelta(days=1)

READ_LEDGER = """() => {
  const section = document.querySelector('#ledger');
  if (!section) return null;
  const background = (el) => el ? getComputedStyle(el).backgroundColor : null;
  const text = (sel) => section.querySelector(sel)?.innerText.replace(/\\s+/g, ' ').trim() ?? null;
  const rows = (sel) => [...section.querySelectorAll(sel + ' tbody tr')].map(tr => ({
    key: tr.dataset.key, health: tr.dataset.health ?? null,
    badge: background(tr.querySelector('.badge')),
    cells: [...tr.querySelectorAll('td')].map(td => td.innerText.replace(/\\s+/g, ' ').trim()),
  }));
  return {
    health: section.dataset.health,
    badge: background(section.querySelector('h2 .badge')),
    title: text('h2'),
    streams: rows('#ledger-streams'), receipts: rows('#ledger-receipts'),
    dispatch: rows('#ledger-dispatch'),
    review: text('#ledger-review'), distributions: text('#ledger-distributions'),
    noDispatch: section.querySelector('p#ledger-dispatch')?.innerText ?? null,
    stacked: getComputedStyle(section.querySelector('table thead')).display === 'none',
    // Nothing of the section beyond the viewport's right edge.
    overflow: [...section.querySelectorAll('*')].some(
      el => el.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5),
    scripts: document.scripts.length,
  };
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: .ci/run installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


def ledger_shown(
    browser: Browser, make_database: Callable[[str], Database], schema: str, seed: Any, name: str
) -> dict[str, Any] | None:
    """The section as a laptop shows it, after checking the phone's layout."""
    database = make_database(schema)
    with database.connect() as conn:
        seed(conn, datetime.now(UTC))
    shown: dict[str, Any] = {}
    with run_exporter(database.monitor_url, env=ENV) as exporter:
        for device in VIEWPORTS:
            seen = visit(browser, exporter, f"ledger-{name}", device)
            assert seen.requests == [exporter.url + "/"]
            assert seen.console_errors == []
            shown[device] = seen.page.evaluate(READ_LEDGER)
            seen.page.context.close()
    if shown["laptop"] is None:
        assert shown["phone"] is None
        return None
    phone = shown["phone"]
    assert phone["scripts"] == 0
    assert not phone["overflow"], f"{name}: the ledger section scrolls sideways at 390 px"
    assert phone["stacked"]  # cards on a phone
    assert not shown["laptop"]["stacked"]
    laptop: dict[str, Any] = shown["laptop"]
    return laptop


def test_a_healthy_operator_shows_the_ledger_green(
    browser: Browser, make_database: Callable[[str], Database]
) -> None:
    shown = ledger_shown(browser, make_database, SCHEMA_2026_08, operator_node, "green")
    assert shown is not None
    green = rgb(health_colour(Health.GREEN))
    assert (shown["health"], shown["badge"], shown["title"]) == (
        "green",
        green,
        "Attribution ledger GREEN",
    )
    (stream,) = shown["streams"]
    assert stream["key"] == f"{ledger.NODE_ID}/{scenario.DEFAULT_SCOPE_ID}"
    assert (stream["health"], stream["badge"]) == ("green", green)
    _node, window, collect, epochs, review = stream["cells"]
    start = ledger.week_start(datetime.now(UTC))
    assert window == f"{start:%Y-%m-%d} 00:00 to {start + ledger.WEEK:%Y-%m-%d} 00:00 UTC"
    assert collect == "on time the window runs"
    assert epochs == "open 1 · review 1 · finalized 3"
    assert review.startswith("epoch ")
    assert review.endswith("(a warning after 7 d)")
    assert "WAITING" not in review
    (receipts,) = shown["receipts"]
    assert receipts["cells"][0] == f"{ledger.NODE_ID} receiving"
    assert receipts["cells"][1].startswith(("5 min ago", "6 min ago"))
    assert receipts["cells"][2] == "3 d (usual longest gap 1 h)"
    assert shown["review"].startswith("Last PR review (system_webhook run): ")
    assert "min ago" in shown["review"]
    assert shown["distributions"].startswith("Not observable")
    assert sorted(row["cells"][0] for row in shown["dispatch"]) == sorted(NODES)
    for row in shown["dispatch"]:
        assert row["cells"][1:3] == ["ledger_ingest", "enabled"]
        assert row["badge"] == green
        assert row["cells"][3].startswith("in ")


def test_a_stalled_collect_shows_red_naming_the_window(
    browser: Browser, make_database: Callable[[str], Database]
) -> None:
    shown = ledger_shown(browser, make_database, SCHEMA_2026_08, collect_stopped, "stalled")
    assert shown is not None
    red = rgb(health_colour(Health.RED))
    assert (shown["health"], shown["badge"]) == ("red", red)
    (stream,) = shown["streams"]
    assert (stream["health"], stream["badge"]) == ("red", red)
    end = datetime.now(UTC) - 2 * D
    start = end - ledger.WEEK
    collect = stream["cells"][2]
    assert collect.startswith("STALLED epoch "), collect
    assert f"(window {start:%Y-%m-%d} - {end:%Y-%m-%d}) ended 2 d" in collect
    assert collect.endswith("ago and is still open (stalled after 26 h)")
    assert stream["cells"][3] == "open 1 · review 0 · finalized 1"
    assert stream["cells"][4] == "none in review"
    (receipts,) = shown["receipts"]
    assert receipts["cells"][0] == f"{ledger.NODE_ID} receiving"  # the webhooks still arrive
    assert shown["noDispatch"] == "None: this node dispatches no other node's collect."


def test_older_nodes_have_no_ledger_section(
    browser: Browser, make_database: Callable[[str], Database]
) -> None:
    def seed(conn: Any, now: datetime) -> None:
        scenario.seed_governance(conn, SCHEMA_2026_03, now)

    assert ledger_shown(browser, make_database, SCHEMA_2026_03, seed, "none") is None
