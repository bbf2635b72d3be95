"""Shared fixtures: a real PostgreSQL for the whole session, a fresh database per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from concurrent_runs import Background
from harness import Database, create_database, drop_database, postgres_server

from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def make_database(pg_admin_url: str) -> Iterator[Callable[[str], Database]]:
    """Factory: ``make_database("2026-02")`` → a fresh database with that schema."""
    created: list[Database] = []

    def make(schema: str = SCHEMA_2026_03) -> Database:
        database = create_database(pg_admin_url, schema)
        created.append(database)
        return database

    yield make
    for database in created:
        drop_database(database)


@pytest.fixture(params=[SCHEMA_2026_02, SCHEMA_2026_03])
def database(request: pytest.FixtureRequest, make_database: Callable[[str], Database]) -> Database:
    """A fresh database, once per schema version."""
    return make_database(request.param)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/*.prom from the current exporter instead of comparing",
    )


_BACKGROUND = pytest.StashKey[Background]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Starts the ``background_runs`` of the collected tests' modules
    (tests/concurrent_runs.py), so they run while the suite waits on servers."""
    background = Background()
    session.config.stash[_BACKGROUND] = background
    by_module: dict[ModuleType, list[object]] = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "background_runs"):
            by_module.setdefault(module, []).append(item)
    for module, items in by_module.items():
        background.start(module.__name__, module.background_runs, items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    background = session.config.stash.get(_BACKGROUND, None)
    if background is not None:
        background.close()


@pytest.fixture(scope="session")
def background(request: pytest.FixtureRequest) -> Background:
    """The runs started for this session's modules (tests/concurrent_runs.py)."""
    return request.config.stash[_BACKGROUND]
