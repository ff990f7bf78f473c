"""The database as configured: SQLite pragmas, migrations idempotent, UTC round trip."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from bot.db import Database, migrate
from models import Area


async def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_url: str) -> None:
    db = Database.connect(sqlite_url)
    try:
        async with db.begin() as session:
            assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await session.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await session.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000
    finally:
        await db.dispose()


async def test_migrate_twice_and_foreign_keys_hold(db: Database) -> None:
    await migrate(db)  # already at head: nothing to do, no error
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        async with db.begin() as session:
            session.add(Area(kind="village", code="X", name="X", parent_id=424242))


async def test_times_are_stored_utc_and_come_back_aware(db: Database) -> None:
    shanghai = timezone(timedelta(hours=8))
    local = datetime(2026, 11, 23, 9, 0, tzinfo=shanghai)
    async with db.begin() as session:
        session.add(Area(kind="district", code="T", name="T", created_at=local))
    async with db.begin() as session:
        stored = await session.scalar(select(Area.created_at).where(Area.code == "T"))
    assert stored == local and stored.tzinfo is not None
    assert stored.astimezone(UTC).hour == 1
    with pytest.raises(Exception, match="naive"):
        async with db.begin() as session:
            session.add(Area(kind="district", code="N", name="N", created_at=datetime(2026, 1, 1)))
