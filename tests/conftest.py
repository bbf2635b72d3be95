"""Shared fixtures: a real PostgreSQL for the whole session, a fresh database per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
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
