"""The outbox: scheduled messages as rows with an idempotency key, claimed by one sender.

A job only computes what is due and writes rows (a key written twice is one row); a sender
claims due rows under a lease, sends them, and marks each sent, retried later, or given up.
A sender killed mid-way leaves its claims to expire; another (or the restarted one) takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models import OutboxMessage

PENDING, SENT, GAVE_UP = "pending", "sent", "gave_up"
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class OutboxItem:
    id: int
    key: str
    kind: str
    chat_id: int
    payload: dict[str, Any]
    attempts: int


def is_quiet(local: time, start: time, end: time) -> bool:
    """Whether a local time of day falls in quiet hours (which may wrap past midnight)."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def retry_delay(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s … capped at an hour."""
    return timedelta(seconds=min(3600, 5 * 2 ** max(0, attempts - 1)))


async def enqueue(
    session: AsyncSession,
    key: str,
    kind: str,
    chat_id: int,
    payload: dict[str, Any],
    *,
    now: datetime,
    quiet: bool = True,
) -> bool:
    """Write the message unless its key exists; True if a new row was written."""
    values = {
        "key": key,
        "kind": kind,
        "chat_id": chat_id,
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
        "not_before": now,
        "respects_quiet_hours": quiet,
        "created_at": now,
    }
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["key"])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def claim(
    session: AsyncSession,
    worker: str,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    quiet_now: bool,
) -> list[OutboxItem]:
    """Take up to ``limit`` due rows for ``worker`` until ``now + lease``. Two senders never get
    the same row: PostgreSQL skips rows another claim has locked, SQLite serialises writers, and
    the claim conditions are checked again on the row being updated."""
    due = [
        OutboxMessage.status == PENDING,
        OutboxMessage.not_before <= now,
        (OutboxMessage.claimed_until.is_(None)) | (OutboxMessage.claimed_until < now),
    ]
    if quiet_now:
        due.append(OutboxMessage.respects_quiet_hours.is_(False))
    ids = (
        select(OutboxMessage.id)
        .where(*due)
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), *due)
        .values(claimed_by=worker, claimed_until=now + lease)
        .returning(
            OutboxMessage.id,
            OutboxMessage.key,
            OutboxMessage.kind,
            OutboxMessage.chat_id,
            OutboxMessage.payload,
            OutboxMessage.attempts,
        )
        .execution_options(synchronize_session=False)
    )
    return sorted((OutboxItem(*row) for row in rows), key=lambda item: item.id)


async def mark_sent(
    session: AsyncSession, item_id: int, worker: str, *, now: datetime, message_id: int | None
) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == item_id, OutboxMessage.claimed_by == worker)
        .values(
            status=SENT,
            sent_at=now,
            telegram_message_id=message_id,
            claimed_until=None,
            attempts=OutboxMessage.attempts + 1,
        )
    )


async def mark_failed(
    session: AsyncSession,
    item_id: int,
    worker: str,
    *,
    now: datetime,
    error: str,
    retry: bool,
) -> str:
    """Retry later with backoff, or give up (a blocked bot, a chat gone, too many tries).
    Returns the row's new status."""
    row = await session.get(OutboxMessage, item_id)
    if row is None or row.claimed_by != worker:
        return PENDING
    row.attempts += 1
    row.last_error = error[:1000]
    row.claimed_until = None
    if retry and row.attempts < MAX_ATTEMPTS:
        row.not_before = now + retry_delay(row.attempts)
    else:
        row.status = GAVE_UP
    return row.status


async def defer_quiet(session: AsyncSession, item_id: int, worker: str, until: datetime) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == item_id, OutboxMessage.claimed_by == worker)
        .values(not_before=until, claimed_until=None)
    )


async def backlog(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == PENDING)
    )
    return count or 0
