"""The inbox on a real database (SQLite and PostgreSQL): a redelivery is one row, each lane is
taken in order and waits for its earlier updates, failures are retried then parked, parked ones
come back on replay, and on PostgreSQL two claimers never take the same row or lane."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

import models
from bot.db import Database
from bot.services import inbox, intake

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GROUP, OTHER = -100500, -100600


def _update(update_id: int, chat_id: int, text: str = "hi") -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": chat_id, "type": "supergroup"},
            "text": text,
        },
    }


async def _store(db: Database, *updates: dict[str, Any], via: str = "polling") -> list[int]:
    async with db.begin() as session:
        return await inbox.store(session, list(updates), via=via, now=NOW)


async def _due(db: Database, now: datetime = NOW, **kwargs: Any) -> list[int]:
    async with db.begin() as session:
        items = await inbox.next_due(session, now=now, limit=10, **kwargs)
    return [i.update_id for i in items]


async def _done(db: Database, update_id: int) -> None:
    async with db.begin() as session:
        await inbox.mark_done(session, update_id, now=NOW, worker="w")


async def _fail(db: Database, update_id: int, now: datetime = NOW) -> str:
    async with db.begin() as session:
        return await inbox.mark_failed(
            session,
            update_id,
            now=now,
            worker="w",
            error="KeyError: 'x'\ntraceback",
            max_attempts=3,
            retry_base_s=2.0,
        )


async def test_a_redelivered_update_is_one_row(db: Database) -> None:
    assert await _store(db, _update(1, GROUP), _update(2, GROUP)) == [1, 2]
    assert await _store(db, _update(2, GROUP, "changed?"), _update(3, GROUP), via="webhook") == [3]
    await _done(db, 1)
    assert await _store(db, _update(1, GROUP)) == []  # done stays done: no second effect
    async with db.begin() as session:
        rows = (
            await session.scalars(select(models.InboxUpdate).order_by(models.InboxUpdate.update_id))
        ).all()
    assert [(r.update_id, r.status, r.lane, r.kind, r.received_via) for r in rows] == [
        (1, "done", GROUP, "message", "polling"),
        (2, "pending", GROUP, "message", "polling"),
        (3, "pending", GROUP, "message", "webhook"),
    ]
    assert rows[1].payload["message"]["text"] == "hi"  # the first delivery is what is kept


async def test_each_lane_in_order_and_lanes_independent(db: Database) -> None:
    await _store(db, _update(10, GROUP), _update(11, OTHER), _update(12, GROUP), _update(13, OTHER))
    # Only the head of each lane may run; the rest wait for it.
    assert await _due(db) == [10, 11]
    assert await _due(db, exclude=[10]) == [11]  # 10 is in flight: 12 still waits behind it
    await _done(db, 10)
    assert await _due(db) == [11, 12]
    await _done(db, 11)
    await _done(db, 12)
    assert await _due(db) == [13]


async def test_failures_retry_with_a_pause_then_park_without_blocking(db: Database) -> None:
    await _store(db, _update(20, GROUP), _update(21, GROUP), _update(22, OTHER))
    assert await _fail(db, 20) == "pending"
    # Waiting for its retry, 20 holds its lane (order kept) but not the other one.
    assert await _due(db) == [22]
    assert await _due(db, NOW + timedelta(seconds=2)) == [20, 22]
    assert await _fail(db, 20, NOW + timedelta(seconds=2)) == "pending"
    assert await _due(db, NOW + timedelta(seconds=5)) == [22]  # 4 s this time
    assert await _fail(db, 20, NOW + timedelta(seconds=6)) == "parked"
    # Parked: out of the way, the lane goes on.
    assert await _due(db, NOW + timedelta(seconds=6)) == [21, 22]
    async with db.begin() as session:
        total, parked = await inbox.parked(session)
        summary = await inbox.summary(session, now=NOW + timedelta(seconds=10))
    assert total == 1 and parked[0].update_id == 20 and parked[0].attempts == 3
    assert parked[0].error.startswith("KeyError: 'x'")
    assert (summary.pending, summary.parked) == (2, 1)
    assert summary.oldest_due == timedelta(seconds=10)
    assert summary.last_processed_at is None
    # Replayed: back in line with fresh tries, ahead of its lane's later updates.
    async with db.begin() as session:
        assert await inbox.replay(session, [20, 999], now=NOW) == 1
        assert await inbox.replay(session, None, now=NOW) == 0
    assert await _due(db) == [20, 22]
    await _done(db, 20)
    async with db.begin() as session:
        summary = await inbox.summary(session, now=NOW)
        row = await session.get(models.InboxUpdate, 20)
    assert row is not None and row.status == "done" and row.attempts == 1
    assert summary.last_processed_at == NOW and summary.parked == 0


async def test_done_updates_are_forgotten_after_a_while(db: Database) -> None:
    await _store(db, _update(30, GROUP), _update(31, GROUP), _update(32, OTHER))
    await _done(db, 30)
    await _fail(db, 32)
    async with db.begin() as session:
        assert await inbox.purge_done(session, before=NOW) == 0
        assert await inbox.purge_done(session, before=NOW + timedelta(seconds=1)) == 1
        left = (await session.scalars(select(models.InboxUpdate.update_id))).all()
    assert sorted(left) == [31, 32]


async def test_two_claimers_on_postgresql_never_share_a_row_or_a_lane(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serves one process")
    await _store(db, _update(40, GROUP), _update(41, GROUP), _update(42, OTHER))
    first, second = db.sessions(), db.sessions()
    try:
        await first.begin()
        await second.begin()
        a = await inbox.next_due(first, now=NOW, lock=True)
        b = await inbox.next_due(second, now=NOW, lock=True)
        # The second skips the row the first holds; 41 waits behind it, so 42 is next.
        assert [i.update_id for i in a] == [40] and [i.update_id for i in b] == [42]
        await inbox.mark_done(first, 40, now=NOW, worker="a")
        await first.commit()
        third = await inbox.next_due(first, now=NOW, lock=True)
        assert [i.update_id for i in third] == [41]  # its lane is free once 40 is done
    finally:
        await first.close()
        await second.close()
    # A claimer that dies (its transaction gone) leaves its row to the next one at once.
    assert await _due(db) == [41, 42]


async def test_an_album_is_taken_once_in_the_transaction_that_reports_it(db: Database) -> None:
    parts = [
        intake.Part(GROUP, m, "album1", 4001, f"f{m}", f"u{m}", 10, "#问题" if m == 7 else None)
        for m in (8, 7)
    ]
    async with db.begin() as session:
        for part in parts:
            assert await intake.record_part(session, part, NOW)
    async with db.begin() as session:
        found = await intake.album_parts(session, GROUP, "album1")
    assert [p.message_id for p in found] == [7, 8]
    # A run that dies before its transaction commits takes nothing.
    with pytest.raises(RuntimeError):
        async with db.begin() as session:
            assert await intake.mark_taken(session, GROUP, [7, 8]) == 2
            raise RuntimeError("killed before the problem was stored")
    async with db.begin() as session:
        assert await intake.mark_taken(session, GROUP, [7, 8]) == 2
    async with db.begin() as session:
        assert await intake.mark_taken(session, GROUP, [7, 8]) == 0  # another worker: too late
        assert await intake.album_parts(session, GROUP, "album1") == []
