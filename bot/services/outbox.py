"""The outbox: scheduled messages as rows with an idempotency key, claimed by one sender.

A job only computes what is due and writes rows (a key written twice is one row); a sender
claims due rows under a lease, sends them, and marks each sent, retried later, or given up.
A sender killed mid-way stops renewing its leases; once they run out, another sender (or the
restarted one) takes the rows over.

Two clocks: ``now`` is the domain's time (``services.now()``, moved by tests and the demo) and
decides what is due and when quiet hours are; ``wall`` is the machine's time and only times the
leases, which are about whether a process is still alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models import OutboxMessage

PENDING, SENT, GAVE_UP = "pending", "sent", "gave_up"
MAX_ATTEMPTS = 8
ENQUEUE_CHUNK = 500  # rows per INSERT: well inside SQLite's limit on bound parameters


@dataclass(frozen=True)
class OutboxItem:
    id: int
    key: str
    kind: str
    chat_id: int
    payload: dict[str, Any]
    attempts: int
    respects_quiet_hours: bool


def is_quiet(local: time, start: time, end: time) -> bool:
    """Whether a local time of day falls in quiet hours (which may wrap past midnight).
    Equal start and end mean no quiet hours."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def retry_delay(attempts: int) -> timedelta:
    """After the n-th failed attempt: 5 s, 10 s, 20 s … capped at an hour."""
    return timedelta(seconds=min(3600, 5 * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class NewMessage:
    """A message for the outbox: ``key`` is kind:recipient:period, one row per key ever."""

    key: str
    kind: str
    chat_id: int
    payload: dict[str, Any]
    quiet: bool = True  # held back in quiet hours


async def enqueue_many(
    session: AsyncSession, messages: list[NewMessage], *, now: datetime
) -> list[NewMessage]:
    """Write the messages whose keys are new, in few statements; the ones written."""
    if not messages:
        return []
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    written: set[str] = set()
    for start in range(0, len(messages), ENQUEUE_CHUNK):
        chunk = messages[start : start + ENQUEUE_CHUNK]
        statement = (
            insert(OutboxMessage)
            .values(
                [
                    {
                        "key": m.key,
                        "kind": m.kind,
                        "chat_id": m.chat_id,
                        "payload": m.payload,
                        "status": PENDING,
                        "attempts": 0,
                        "not_before": now,
                        "respects_quiet_hours": m.quiet,
                        "created_at": now,
                    }
                    for m in chunk
                ]
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(OutboxMessage.key)
        )
        written.update(await session.scalars(statement))
    return [m for m in messages if m.key in written]


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
    return bool(
        await enqueue_many(session, [NewMessage(key, kind, chat_id, payload, quiet)], now=now)
    )


async def claim(
    session: AsyncSession,
    worker: str,
    *,
    now: datetime,
    wall: datetime,
    lease: timedelta,
    limit: int,
    quiet_now: bool,
) -> list[OutboxItem]:
    """Take up to ``limit`` due rows, oldest first, for ``worker`` until ``wall + lease``.

    Two senders never get the same row. PostgreSQL locks the chosen rows, skipping those another
    claim holds, then takes them (in one statement with the selection as a subquery it may run
    the subquery again and take more than ``limit``). SQLite takes them in one statement under
    its single writer's lock. Either way the update checks the claim conditions again.
    """
    earlier = aliased(OutboxMessage)
    waits_for = [
        earlier.chat_id == OutboxMessage.chat_id,
        earlier.status == PENDING,
        earlier.id < OutboxMessage.id,
    ]
    if quiet_now:  # what quiet hours hold back holds back nothing that may go now
        waits_for.append(earlier.respects_quiet_hours.is_(False))
    due = [
        OutboxMessage.status == PENDING,
        OutboxMessage.not_before <= now,
        OutboxMessage.claimed_until.is_(None) | (OutboxMessage.claimed_until < wall),
        # One chat's rows go in the order they were written (a chart, then its table): a row
        # waits while an earlier one to the same chat is still pending, claimed or not.
        ~exists().where(*waits_for),
    ]
    if quiet_now:
        due.append(OutboxMessage.respects_quiet_hours.is_(False))
    # A plain read first: an idle sender looks every second and should not take the write lock.
    if await session.scalar(select(OutboxMessage.id).where(*due).limit(1)) is None:
        return []
    chosen = select(OutboxMessage.id).where(*due).order_by(OutboxMessage.id).limit(limit)
    ids: Any
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        ids = list(await session.scalars(chosen.with_for_update(skip_locked=True)))
        if not ids:
            return []
    else:
        ids = chosen.scalar_subquery()
    rows = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), *due)
        .values(claimed_by=worker, claimed_until=wall + lease)
        .returning(
            OutboxMessage.id,
            OutboxMessage.key,
            OutboxMessage.kind,
            OutboxMessage.chat_id,
            OutboxMessage.payload,
            OutboxMessage.attempts,
            OutboxMessage.respects_quiet_hours,
        )
        .execution_options(synchronize_session=False)
    )
    return sorted((OutboxItem(*row) for row in rows), key=lambda item: item.id)


def _mine(item_id: int, worker: str) -> list[Any]:
    """The row is still this worker's claim (a lease that ran out may have passed it on)."""
    return [
        OutboxMessage.id == item_id,
        OutboxMessage.claimed_by == worker,
        OutboxMessage.status == PENDING,
    ]


async def renew(
    session: AsyncSession, worker: str, ids: list[int], *, wall: datetime, lease: timedelta
) -> int:
    """Extend the leases this worker still holds on ``ids``; how many it holds."""
    if not ids:
        return 0
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(ids),
            OutboxMessage.claimed_by == worker,
            OutboxMessage.status == PENDING,
        )
        .values(claimed_until=wall + lease)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def mark_sent(
    session: AsyncSession, item: OutboxItem, worker: str, *, now: datetime, message_id: int | None
) -> bool:
    """Record the delivery; False if the claim had passed to another sender meanwhile."""
    result = await session.execute(
        update(OutboxMessage)
        .where(*_mine(item.id, worker))
        .values(
            status=SENT,
            sent_at=now,
            telegram_message_id=message_id,
            claimed_by=None,
            claimed_until=None,
            attempts=item.attempts + 1,
            last_error=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_failed(
    session: AsyncSession,
    item: OutboxItem,
    worker: str,
    *,
    now: datetime,
    error: str,
    retry: bool,
) -> str | None:
    """Retry later with backoff, or give up (a blocked bot, a chat gone, too many tries).
    Returns the row's new status, or None if the claim had passed to another sender."""
    attempts = item.attempts + 1
    status = PENDING if retry and attempts < MAX_ATTEMPTS else GAVE_UP
    result = await session.execute(
        update(OutboxMessage)
        .where(*_mine(item.id, worker))
        .values(
            status=status,
            attempts=attempts,
            last_error=error[:1000],
            not_before=now + retry_delay(attempts) if status == PENDING else now,
            claimed_by=None,
            claimed_until=None,
        )
    )
    return status if result.rowcount else None  # type: ignore[attr-defined]


async def release(session: AsyncSession, worker: str, ids: list[int]) -> None:
    """Hand claimed rows back untried (quiet hours began, or the sender is stopping)."""
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(ids),
                OutboxMessage.claimed_by == worker,
                OutboxMessage.status == PENDING,
            )
            .values(claimed_by=None, claimed_until=None)
        )


async def backlog(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == PENDING)
    )
    return count or 0
