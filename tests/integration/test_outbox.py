"""The outbox's rows on a real database (SQLite and PostgreSQL): keys written once, claims that
never overlap, leases that pass a dead sender's rows on, retries with backoff, giving up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.db import Database
from bot.services import outbox
from bot.services.outbox import MAX_ATTEMPTS, NewMessage, OutboxItem
from models import OutboxMessage

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
WALL = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


async def _write(db: Database, n: int, *, quiet: bool = True, prefix: str = "k") -> None:
    async with db.begin() as session:
        for i in range(n):
            await outbox.enqueue(
                session, f"{prefix}:{i}", "test", 1000 + i, {"text": str(i)}, now=NOW, quiet=quiet
            )


async def _claim(
    db: Database, worker: str, limit: int = 100, *, wall: datetime = WALL, quiet: bool = False
) -> list[OutboxItem]:
    async with db.begin() as session:
        return await outbox.claim(
            session, worker, now=NOW, wall=wall, lease=LEASE, limit=limit, quiet_now=quiet
        )


async def _row(db: Database, item_id: int) -> OutboxMessage:
    async with db.begin() as session:
        row: OutboxMessage | None = await session.get(OutboxMessage, item_id)
        assert row is not None
        return row


async def test_a_key_is_written_once(db: Database) -> None:
    async with db.begin() as session:
        first = await outbox.enqueue(session, "remind:1:2026-03-10", "remind", 1, {}, now=NOW)
        again = await outbox.enqueue(session, "remind:1:2026-03-10", "remind", 1, {}, now=NOW)
    async with db.begin() as session:
        later = await outbox.enqueue(session, "remind:1:2026-03-10", "remind", 1, {}, now=NOW)
        assert await outbox.backlog(session) == 1
    assert (first, again, later) == (True, False, False)


async def test_many_written_at_once_and_only_the_new_keys(db: Database) -> None:
    await _write(db, 3)  # k:0 … k:2 exist
    batch = [NewMessage(f"k:{i}", "test", 1000 + i, {"text": str(i)}) for i in range(1200)]
    async with db.begin() as session:
        new = await outbox.enqueue_many(session, batch, now=NOW)
        again = await outbox.enqueue_many(session, batch, now=NOW)
        assert await outbox.backlog(session) == 1200
    assert [m.key for m in new] == [f"k:{i}" for i in range(3, 1200)] and again == []
    ids = [i.id for i in await _claim(db, "w", 2000)]
    assert ids == sorted(ids) and len(ids) == 1200  # in the order written


async def test_concurrent_claims_never_share_a_row(db: Database, db_url: str) -> None:
    await _write(db, 120)
    other = Database.connect(db_url)  # another process's pool
    try:
        claims = await asyncio.gather(
            *(_claim(db if i % 2 else other, f"w{i}", 25) for i in range(6))
        )
    finally:
        await other.dispose()
    ids = [item.id for batch in claims for item in batch]
    assert len(ids) == len(set(ids)) > 0
    assert all(len(batch) <= 25 for batch in claims)
    # A claim that lost a race takes fewer rows, never someone else's; the rest stay free.
    rest = [item.id for item in await _claim(db, "late", 200)]
    assert sorted(ids + rest) == sorted(set(ids) | set(rest)) and len(ids) + len(rest) == 120
    async with db.begin() as session:
        owners = dict(
            (await session.execute(select(OutboxMessage.id, OutboxMessage.claimed_by))).all()
        )
    for worker, batch in zip([f"w{i}" for i in range(6)], claims, strict=True):
        assert all(owners[item.id] == worker for item in batch)


async def test_a_claim_takes_the_oldest_rows_up_to_its_limit(db: Database) -> None:
    await _write(db, 150)
    first = await _claim(db, "a", 40)
    second = await _claim(db, "b", 40)
    assert [i.id for i in first] == list(range(1, 41))
    assert [i.id for i in second] == list(range(41, 81))


async def test_a_lease_that_ran_out_passes_the_row_on(db: Database) -> None:
    await _write(db, 1)
    (mine,) = await _claim(db, "dead")
    assert await _claim(db, "alive", wall=WALL + LEASE - timedelta(seconds=1)) == []
    (taken,) = await _claim(db, "alive", wall=WALL + LEASE + timedelta(seconds=1))
    assert taken.id == mine.id
    async with db.begin() as session:  # the first sender wakes up: its mark changes nothing
        assert not await outbox.mark_sent(session, mine, "dead", now=NOW, message_id=1)
        assert await outbox.mark_sent(session, taken, "alive", now=NOW, message_id=2)
    row = await _row(db, mine.id)
    assert (row.status, row.telegram_message_id, row.claimed_by) == ("sent", 2, None)


async def test_renewed_leases_are_kept(db: Database) -> None:
    await _write(db, 2)
    first, second = await _claim(db, "w")
    async with db.begin() as session:
        held = await outbox.renew(
            session, "w", [first.id], wall=WALL + timedelta(seconds=25), lease=LEASE
        )
    assert held == 1
    (free,) = await _claim(db, "x", wall=WALL + timedelta(seconds=40))
    assert free.id == second.id  # the renewed one is still held


async def test_failures_back_off_then_give_up(db: Database) -> None:
    await _write(db, 1)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        async with db.begin() as session:
            due = NOW + timedelta(days=1)  # long past any backoff
            (item,) = await outbox.claim(
                session, "w", now=due, wall=WALL, lease=LEASE, limit=5, quiet_now=False
            )
            status = await outbox.mark_failed(
                session, item, "w", now=NOW, error="502 Bad Gateway", retry=True
            )
        row = await _row(db, item.id)
        assert row.attempts == attempt
        if attempt < MAX_ATTEMPTS:
            assert status == "pending" and row.not_before == NOW + outbox.retry_delay(attempt)
        else:
            assert status == "gave_up" and row.last_error == "502 Bad Gateway"
    assert await _claim(db, "w") == []


async def test_a_retry_waits_for_its_time(db: Database) -> None:
    await _write(db, 1)
    (item,) = await _claim(db, "w")
    async with db.begin() as session:
        await outbox.mark_failed(session, item, "w", now=NOW, error="timeout", retry=True)
        early = await outbox.claim(
            session,
            "w",
            now=NOW + timedelta(seconds=4),
            wall=WALL,
            lease=LEASE,
            limit=5,
            quiet_now=False,
        )
        on_time = await outbox.claim(
            session,
            "w",
            now=NOW + timedelta(seconds=5),
            wall=WALL,
            lease=LEASE,
            limit=5,
            quiet_now=False,
        )
    assert early == [] and [i.id for i in on_time] == [item.id]


async def test_quiet_hours_hold_what_respects_them(db: Database) -> None:
    await _write(db, 2, quiet=True, prefix="polite")
    await _write(db, 1, quiet=False, prefix="urgent")
    taken = await _claim(db, "w", quiet=True)
    assert [i.key for i in taken] == ["urgent:0"]
    assert sorted(i.key for i in await _claim(db, "w")) == ["polite:0", "polite:1"]


async def test_released_rows_are_free_at_once(db: Database) -> None:
    await _write(db, 3)
    taken = await _claim(db, "stopping")
    async with db.begin() as session:
        await outbox.release(session, "stopping", [i.id for i in taken])
        rows = list(await session.scalars(select(OutboxMessage)))
    assert {(r.claimed_by, r.claimed_until, r.attempts) for r in rows} == {(None, None, 0)}
    assert len(await _claim(db, "next")) == 3


async def test_one_chats_rows_go_in_the_order_they_were_written(db: Database) -> None:
    """A chart and its table to one group: the table is not claimed while the chart is pending
    (claimed by another sender, or waiting for a retry), whoever claims; other chats go on."""
    async with db.begin() as session:
        for key, chat in (("chart", -100), ("table", -100), ("other", -200)):
            await outbox.enqueue(session, key, "test", chat, {"text": key}, now=NOW)
    first = await _claim(db, "a")
    assert [i.key for i in first] == ["chart", "other"]
    assert await _claim(db, "b") == []  # the table waits for the chart, even for another sender
    chart = next(i for i in first if i.key == "chart")
    async with db.begin() as session:
        await outbox.mark_failed(session, chart, "a", now=NOW, error="502", retry=True)
    assert await _claim(db, "b") == []  # the chart waits for its retry: the table still waits

    async def claim_later(worker: str) -> list[OutboxItem]:
        async with db.begin() as session:
            return await outbox.claim(
                session,
                worker,
                now=NOW + timedelta(hours=1),
                wall=WALL,
                lease=LEASE,
                limit=10,
                quiet_now=False,
            )

    again = await claim_later("b")
    assert [i.key for i in again] == ["chart"]  # the retry comes first, the table still waits
    async with db.begin() as session:
        await outbox.mark_sent(session, again[0], "b", now=NOW, message_id=1)
    assert [i.key for i in await claim_later("b")] == ["table"]
