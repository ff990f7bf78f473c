"""Databases for the tests: SQLite always, PostgreSQL too when it is reachable.

Each run creates a PostgreSQL database of its own and drops it at the end; each test starts from
empty tables. SQLite tests copy a file that was migrated once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import hypothesis
import pytest
from sqlalchemy import text

import models
from bot.db import Database, migrate_url

# In CI every property test draws the same examples on every run (a failure there is reproduced
# by running it again); by hand they vary from run to run, to find more.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

PG_SERVER = os.environ.get("GREENGRID_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")

_pg_status: dict[str, str] = {}


def _pg_reachable() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(PG_SERVER, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return (
            f"PostgreSQL not reachable at {PG_SERVER.rsplit('@', 1)[-1]} ({exc.__class__.__name__})"
        )
    return None


def pytest_report_header(config: pytest.Config) -> str:
    reason = _pg_reachable()
    _pg_status["skip"] = reason or ""
    return (
        f"databases: sqlite, {'postgresql' if reason is None else 'postgresql SKIPPED: ' + reason}"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_status.get("skip"):
        terminalreporter.write_line(f"NOTE: PostgreSQL tests were skipped: {_pg_status['skip']}")
    else:
        terminalreporter.write_line("NOTE: the database tests ran on SQLite and on PostgreSQL")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate_url(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    if _pg_status.get("skip") is None:
        _pg_status["skip"] = _pg_reachable() or ""
    if _pg_status["skip"]:
        pytest.skip(_pg_status["skip"])
    name = f"greengrid_test_{uuid.uuid4().hex[:10]}"
    server = PG_SERVER.rsplit("/", 1)[0]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_SERVER, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = f"{server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    migrate_url(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _empty_tables(url: str) -> None:
    db = Database.connect(url)
    try:
        async with db.begin() as session:
            names = ", ".join(f'"{t.name}"' for t in models.Base.metadata.sorted_tables)
            await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await db.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "greengrid.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_empty_tables(url))
    return url


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only, for the end-to-end tests that do not depend on the backend."""
    path = tmp_path / "greengrid.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database.connect(db_url)
    yield database
    await database.dispose()
