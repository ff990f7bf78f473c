"""The inbox: every update is a row (keyed by Telegram's update_id) before Telegram is told it
arrived; processing takes rows from here, marks each done once its handlers finished, retries a
failing one a few times and then parks it with its error.

Order: the updates of one lane (a chat, or a user for updates without a chat) are taken strictly
in update_id order, each only when every earlier update of its lane is done or parked. Updates of
different lanes may run at the same time, in one process or several.

Claims: on PostgreSQL the processor takes a row with SELECT … FOR UPDATE SKIP LOCKED inside a
transaction it keeps open while the handlers run, and writes the outcome in that transaction; a
process that dies releases its locks with its connection, so its rows are taken up again at
once. SQLite serves one process, whose processor keeps its own in-flight set (``exclude``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models import InboxUpdate

PENDING, DONE, PARKED = "pending", "done", "parked"
RETRY_CAP = timedelta(minutes=5)
ERROR_MAX = 2000

# The update kinds that carry a chat, and where; the rest are keyed by the user.
_CHAT_PATHS: dict[str, tuple[str, ...]] = {
    "message": ("chat",),
    "edited_message": ("chat",),
    "channel_post": ("chat",),
    "edited_channel_post": ("chat",),
    "business_message": ("chat",),
    "edited_business_message": ("chat",),
    "deleted_business_messages": ("chat",),
    "callback_query": ("message", "chat"),
    "my_chat_member": ("chat",),
    "chat_member": ("chat",),
    "chat_join_request": ("chat",),
    "message_reaction": ("chat",),
    "message_reaction_count": ("chat",),
    "chat_boost": ("chat",),
    "removed_chat_boost": ("chat",),
}
_USER_KEYS = ("from", "user")


@dataclass(frozen=True)
class InboxItem:
    update_id: int
    lane: int
    kind: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class ParkedUpdate:
    update_id: int
    kind: str
    lane: int
    attempts: int
    received_at: datetime
    error: str


@dataclass(frozen=True)
class InboxSummary:
    pending: int
    parked: int
    # Age of the oldest update that is due and not yet done: how far processing lags.
    oldest_due: timedelta | None
    last_processed_at: datetime | None


def _dig(data: object, path: Sequence[str]) -> object:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def describe(update: dict[str, Any]) -> tuple[int, str]:
    """(lane, kind) of a raw update: its chat's id, or its user's, or 0 when it has neither."""
    kind = next((k for k in update if k != "update_id"), "unknown")
    body = update.get(kind)
    chat_id = _dig(body, (*_CHAT_PATHS[kind], "id")) if kind in _CHAT_PATHS else None
    if isinstance(chat_id, int):
        return chat_id, kind
    for key in _USER_KEYS:
        user_id = _dig(body, (key, "id"))
        if isinstance(user_id, int):
            return user_id, kind
    return 0, kind


def retry_delay(attempts: int, base_s: float) -> timedelta:
    """After the n-th failure: base, 2×base, 4×base … capped at five minutes."""
    seconds = base_s * 2.0 ** min(max(0, attempts - 1), 30)  # the cap long reached by 2**30
    return min(RETRY_CAP, timedelta(seconds=seconds))


async def store(
    session: AsyncSession, updates: Sequence[dict[str, Any]], *, via: str, now: datetime
) -> list[int]:
    """Write the updates not yet in the inbox; returns the ids that were new (a redelivery of
    a known update, done or not, changes nothing)."""
    rows = []
    for raw in updates:
        lane, kind = describe(raw)
        rows.append(
            {
                "update_id": int(raw["update_id"]),
                "lane": lane,
                "kind": kind[:40],
                "payload": raw,
                "status": PENDING,
                "attempts": 0,
                "next_try_at": now,
                "received_via": via,
                "received_at": now,
            }
        )
    if not rows:
        return []
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(InboxUpdate)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(InboxUpdate.update_id)
    )
    return sorted(result.scalars())


def _due(now: datetime) -> list[Any]:
    earlier = aliased(InboxUpdate)
    blocked = exists().where(
        earlier.lane == InboxUpdate.lane,
        earlier.update_id < InboxUpdate.update_id,
        earlier.status == PENDING,
    )
    return [InboxUpdate.status == PENDING, InboxUpdate.next_try_at <= now, ~blocked]


async def next_due(
    session: AsyncSession,
    *,
    now: datetime,
    exclude: Collection[int] = (),
    lock: bool = False,
    limit: int = 1,
) -> list[InboxItem]:
    """The oldest updates that may run now (see the module's note on order). With ``lock``
    (PostgreSQL), rows another transaction holds are skipped and the ones returned stay locked
    until this session's transaction ends."""
    query = select(InboxUpdate).where(*_due(now)).order_by(InboxUpdate.update_id).limit(limit)
    if exclude:
        query = query.where(InboxUpdate.update_id.not_in(list(exclude)))
    if lock:
        query = query.with_for_update(skip_locked=True, of=InboxUpdate)
    rows = (await session.scalars(query)).all()
    return [InboxItem(r.update_id, r.lane, r.kind, r.payload, r.attempts) for r in rows]


async def mark_done(session: AsyncSession, update_id: int, *, now: datetime, worker: str) -> None:
    await session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.update_id == update_id, InboxUpdate.status == PENDING)
        .values(
            status=DONE,
            processed_at=now,
            processed_by=worker[:80],
            attempts=InboxUpdate.attempts + 1,
        )
    )


async def mark_failed(
    session: AsyncSession,
    update_id: int,
    *,
    now: datetime,
    worker: str,
    error: str,
    max_attempts: int,
    retry_base_s: float,
) -> str:
    """Count a failed run: try again after a pause, or park it after ``max_attempts``.
    Returns the row's new status."""
    row = await session.get(InboxUpdate, update_id)
    if row is None:  # purged meanwhile: nothing left to count
        return DONE
    if row.status != PENDING:
        return row.status
    row.attempts += 1
    row.last_error = error[:ERROR_MAX]
    row.processed_by = worker[:80]
    if row.attempts >= max_attempts:
        row.status = PARKED
        row.processed_at = now
    else:
        row.next_try_at = now + retry_delay(row.attempts, retry_base_s)
    return row.status


async def parked(session: AsyncSession, *, limit: int = 10) -> tuple[int, list[ParkedUpdate]]:
    """How many updates are parked, and the oldest ``limit`` of them."""
    total = await session.scalar(
        select(func.count()).select_from(InboxUpdate).where(InboxUpdate.status == PARKED)
    )
    rows = await session.scalars(
        select(InboxUpdate)
        .where(InboxUpdate.status == PARKED)
        .order_by(InboxUpdate.update_id)
        .limit(limit)
    )
    return total or 0, [
        ParkedUpdate(r.update_id, r.kind, r.lane, r.attempts, r.received_at, r.last_error or "")
        for r in rows
    ]


async def replay(
    session: AsyncSession, update_ids: Collection[int] | None, *, now: datetime
) -> int:
    """Put parked updates (these, or all) back in line with a fresh count of attempts; their
    last error stays until they run. Returns how many were put back."""
    query = (
        update(InboxUpdate)
        .where(InboxUpdate.status == PARKED)
        .values(status=PENDING, attempts=0, next_try_at=now, processed_at=None)
        .execution_options(synchronize_session=False)
    )
    if update_ids is not None:
        query = query.where(InboxUpdate.update_id.in_(list(update_ids)))
    result = await session.execute(query)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge_done(session: AsyncSession, *, before: datetime) -> int:
    """Forget updates done before ``before``. Telegram redelivers an unconfirmed update for at
    most a day, and picks ids at random after a quiet week, so a few days of memory is enough
    and keeps an old id from shadowing a new one."""
    result = await session.execute(
        delete(InboxUpdate).where(InboxUpdate.status == DONE, InboxUpdate.processed_at < before)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def summary(session: AsyncSession, *, now: datetime) -> InboxSummary:
    counts = dict(
        (
            await session.execute(
                select(InboxUpdate.status, func.count())
                .where(InboxUpdate.status != DONE)
                .group_by(InboxUpdate.status)
            )
        ).all()
    )
    oldest = await session.scalar(
        select(func.min(InboxUpdate.received_at)).where(
            InboxUpdate.status == PENDING, InboxUpdate.next_try_at <= now
        )
    )
    last = await session.scalar(
        select(func.max(InboxUpdate.processed_at)).where(InboxUpdate.status == DONE)
    )
    return InboxSummary(
        pending=int(counts.get(PENDING, 0)),
        parked=int(counts.get(PARKED, 0)),
        oldest_due=max(timedelta(0), now - oldest) if oldest is not None else None,
        last_processed_at=last,
    )
