"""Group photo intake: every photo in a bound group is recorded as it arrives; albums are
gathered into one report once no part has arrived for a moment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models import IntakePart

# The tag may run straight into the text (Chinese is written without spaces: "#问题河道有垃圾")
# and the hash may be the full-width "＃" of Chinese keyboards; "#reporting" is another word.
REPORT_TAG = re.compile(r"[#＃](?:问题|report(?![A-Za-z0-9_]))", re.IGNORECASE)
ALBUM_QUIET = timedelta(seconds=1.5)


def has_report_tag(caption: str | None) -> bool:
    return bool(caption and REPORT_TAG.search(caption))


def strip_tag(caption: str | None) -> str:
    return REPORT_TAG.sub("", caption or "").strip()


@dataclass(frozen=True)
class Part:
    chat_id: int
    message_id: int
    media_group_id: str | None
    sender_telegram_id: int
    file_id: str
    file_unique_id: str
    file_size: int | None
    caption: str | None


async def record_part(session: AsyncSession, part: Part, now: datetime) -> bool:
    """Store the part; False if this very message was recorded before (a redelivery).

    One INSERT … ON CONFLICT DO NOTHING (rather than a savepoint around an insert that may
    fail): a statement instead of three for every photo."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(IntakePart)
        .values(
            chat_id=part.chat_id,
            message_id=part.message_id,
            media_group_id=part.media_group_id,
            sender_telegram_id=part.sender_telegram_id,
            file_id=part.file_id,
            file_unique_id=part.file_unique_id,
            file_size=part.file_size,
            caption=part.caption,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["chat_id", "message_id"])
        .returning(IntakePart.id)
    )
    return result.first() is not None


async def quiet_albums(session: AsyncSession, now: datetime) -> list[tuple[int, str]]:
    """(chat_id, media_group_id) of albums still open whose last part is older than the pause."""
    rows = await session.execute(
        select(IntakePart.chat_id, IntakePart.media_group_id)
        .where(IntakePart.done.is_(False), IntakePart.media_group_id.is_not(None))
        .group_by(IntakePart.chat_id, IntakePart.media_group_id)
        .having(func.max(IntakePart.received_at) <= now - ALBUM_QUIET)
    )
    return [(chat, group) for chat, group in rows if group is not None]


def _to_part(row: IntakePart) -> Part:
    return Part(
        row.chat_id,
        row.message_id,
        row.media_group_id,
        row.sender_telegram_id,
        row.file_id,
        row.file_unique_id,
        row.file_size,
        row.caption,
    )


async def album_parts(session: AsyncSession, chat_id: int, media_group_id: str) -> list[Part]:
    """The album's parts in message order; empty once the album was taken (see `mark_taken`)."""
    rows = list(
        await session.scalars(
            select(IntakePart)
            .where(IntakePart.chat_id == chat_id, IntakePart.media_group_id == media_group_id)
            .order_by(IntakePart.message_id)
        )
    )
    if all(row.done for row in rows):
        return []
    return [_to_part(r) for r in rows]


async def mark_taken(session: AsyncSession, chat_id: int, message_ids: list[int]) -> int:
    """Mark the parts taken, in the transaction that makes them a problem (so a process killed
    in between leaves them to be taken again); how many were not taken before, 0 meaning another
    worker took them first (on PostgreSQL the second waits for the first to commit)."""
    taken = await session.execute(
        update(IntakePart)
        .where(
            IntakePart.chat_id == chat_id,
            IntakePart.message_id.in_(message_ids),
            IntakePart.done.is_(False),
        )
        .values(done=True)
        .execution_options(synchronize_session=False)
    )
    return int(taken.rowcount)  # type: ignore[attr-defined]


async def take_message(session: AsyncSession, chat_id: int, message_id: int) -> list[Part]:
    """The parts a replied-to message stands for: its whole album, or itself."""
    row = (
        await session.scalars(
            select(IntakePart).where(
                IntakePart.chat_id == chat_id, IntakePart.message_id == message_id
            )
        )
    ).first()
    if row is None:
        return []
    if row.media_group_id is None:
        row.done = True
        return [_to_part(row)]
    rows = await session.scalars(
        select(IntakePart)
        .where(IntakePart.chat_id == chat_id, IntakePart.media_group_id == row.media_group_id)
        .order_by(IntakePart.message_id)
    )
    parts = list(rows)
    for part in parts:
        part.done = True
    return [_to_part(p) for p in parts]
