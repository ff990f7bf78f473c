"""Announcements to the work groups (DESIGN.md §7): laws, typical cases, notices.

An admin queues one (text, or a photo with a caption; one bound group or all of them; now or at
a time). At its time it is *released*: outbox rows are written for the groups bound then (a
group unbound meanwhile gets nothing; if its one group is gone it is *dropped*), all in the
transaction that changes its status, so it is released once whatever runs the release. Until
then an admin may cancel it: the row stays, with who cancelled it and when.

Each change of status is one conditional update (``WHERE status = 'queued'``): a cancel and a
release racing, or two processes releasing, cannot both win.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.services import chats
from models import Announcement, Person

QUEUED, RELEASED, CANCELLED, DROPPED = "queued", "released", "cancelled", "dropped"
TEXT_MAX = 4096  # Telegram's limits for a message and for a photo's caption
CAPTION_MAX = 1024
MAX_AHEAD = timedelta(days=366)


# ---------------------------------------------------------------- when: pure


class TimeError(StrEnum):
    unknown = "unknown"  # not a time at all
    bad_date = "bad_date"  # 2026-02-30, 25:00
    past = "past"
    too_far = "too_far"


_CLOCK = r"(\d{1,2})[:：](\d{2})"
_AT = re.compile(rf"^{_CLOCK}$")
_TOMORROW = re.compile(rf"^(?:明天|明日|tomorrow)\s*{_CLOCK}$")
_DATED = re.compile(rf"^(?:(\d{{4}})[-/.年])?(\d{{1,2}})[-/.月](\d{{1,2}})日?\s*{_CLOCK}$")


def parse_send_time(text: str, *, now: datetime, zone: tzinfo) -> datetime | TimeError:
    """The moment an admin means by ``HH:MM`` (today), ``明天 HH:MM`` / ``tomorrow HH:MM``,
    ``MM-DD HH:MM`` (this year) or ``YYYY-MM-DD HH:MM``, in the configured zone."""
    words = " ".join(text.strip().lower().split())
    today = now.astimezone(zone).date()
    day: date
    if match := _AT.match(words):
        day, clock = today, match.group(1, 2)
    elif match := _TOMORROW.match(words):
        day, clock = today + timedelta(days=1), match.group(1, 2)
    elif match := _DATED.match(words):
        year = int(match.group(1)) if match.group(1) else today.year
        try:
            day = date(year, int(match.group(2)), int(match.group(3)))
        except ValueError:
            return TimeError.bad_date
        clock = match.group(4, 5)
    else:
        return TimeError.unknown
    hour, minute = int(clock[0]), int(clock[1])
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return TimeError.bad_date
    moment = datetime.combine(day, time(hour, minute), zone)
    if moment <= now:
        return TimeError.past
    if moment - now > MAX_AHEAD:
        return TimeError.too_far
    return moment


def content_problem(text: str, *, photo: bool) -> int | None:
    """The limit ``text`` goes over (as Telegram counts: UTF-16 units), or None."""
    limit = CAPTION_MAX if photo else TEXT_MAX
    return limit if len(text.encode("utf-16-le")) // 2 > limit else None


# ---------------------------------------------------------------- the rows


@dataclass(frozen=True)
class AnnouncementView:
    id: int
    status: str
    target_chat_id: int | None
    text: str
    photo_file_id: str | None
    send_at: datetime
    respects_quiet_hours: bool
    created_by_name: str
    created_at: datetime
    released_at: datetime | None
    recipients: int | None
    cancelled_by_name: str | None
    cancelled_at: datetime | None


def _views_query() -> Select[Announcement, str, str | None]:
    creator, canceller = aliased(Person), aliased(Person)
    return (
        select(Announcement, creator.full_name, canceller.full_name)
        .join(creator, creator.id == Announcement.created_by_id)
        .outerjoin(canceller, canceller.id == Announcement.cancelled_by_id)
        # Status changes are conditional UPDATEs: read the row as it is now, not as loaded.
        .execution_options(populate_existing=True)
    )


def _view(row: Announcement, creator: str, canceller: str | None) -> AnnouncementView:
    return AnnouncementView(
        row.id,
        row.status,
        row.target_chat_id,
        row.text,
        row.photo_file_id,
        row.send_at,
        row.respects_quiet_hours,
        creator,
        row.created_at,
        row.released_at,
        row.recipients,
        canceller,
        row.cancelled_at,
    )


async def get(session: AsyncSession, announcement_id: int) -> AnnouncementView | None:
    row = (await session.execute(_views_query().where(Announcement.id == announcement_id))).first()
    return None if row is None else _view(*row)


async def queue(
    session: AsyncSession,
    *,
    created_by_id: int,
    target_chat_id: int | None,
    text: str,
    photo_file_id: str | None,
    send_at: datetime,
    respects_quiet_hours: bool,
    now: datetime,
) -> AnnouncementView:
    row = Announcement(
        status=QUEUED,
        target_chat_id=target_chat_id,
        text=text,
        photo_file_id=photo_file_id,
        send_at=send_at,
        respects_quiet_hours=respects_quiet_hours,
        created_by_id=created_by_id,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    view = await get(session, row.id)
    assert view is not None
    return view


async def queued(session: AsyncSession, *, limit: int = 20) -> list[AnnouncementView]:
    """The announcements still to be sent, soonest first."""
    rows = await session.execute(
        _views_query()
        .where(Announcement.status == QUEUED)
        .order_by(Announcement.send_at, Announcement.id)
        .limit(limit)
    )
    return [_view(*row) for row in rows]


async def recent(session: AsyncSession, *, limit: int = 5) -> list[AnnouncementView]:
    """The latest announcements sent, cancelled or dropped: the history under the list."""
    rows = await session.execute(
        _views_query()
        .where(Announcement.status != QUEUED)
        .order_by(Announcement.id.desc())
        .limit(limit)
    )
    return [_view(*row) for row in rows]


class CancelRefusal(StrEnum):
    not_found = "not_found"
    released = "released"  # already sent
    cancelled = "cancelled"
    dropped = "dropped"


async def cancel(
    session: AsyncSession, announcement_id: int, *, by_person_id: int, now: datetime
) -> AnnouncementView | CancelRefusal:
    """Take a queued announcement out of delivery (kept, with who and when)."""
    result = await session.execute(
        update(Announcement)
        .where(Announcement.id == announcement_id, Announcement.status == QUEUED)
        .values(status=CANCELLED, cancelled_by_id=by_person_id, cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    view = await get(session, announcement_id)
    if view is None:
        return CancelRefusal.not_found
    if not result.rowcount:  # type: ignore[attr-defined]
        return CancelRefusal(view.status)
    return view


@dataclass(frozen=True)
class Released:
    announcement: AnnouncementView
    chat_ids: list[int]  # empty: dropped (its one group is no longer bound)
    creator_telegram_id: int
    creator_locale: str | None


async def release_due(session: AsyncSession, *, now: datetime) -> list[Released]:
    """Release every queued announcement whose time has come, to the groups bound now. The
    caller writes the outbox rows in the same transaction."""
    due = list(
        await session.scalars(
            select(Announcement.id)
            .where(Announcement.status == QUEUED, Announcement.send_at <= now)
            .order_by(Announcement.send_at, Announcement.id)
        )
    )
    released: list[Released] = []
    for announcement_id in due:
        row = await session.get(Announcement, announcement_id)
        if row is None:
            continue
        if row.target_chat_id is None:
            targets = [g.telegram_chat_id for g in await chats.bound_groups(session)]
        else:
            binding = await chats.binding_of(session, row.target_chat_id)
            targets = [row.target_chat_id] if binding is not None else []
        result = await session.execute(
            update(Announcement)
            .where(Announcement.id == announcement_id, Announcement.status == QUEUED)
            .values(
                status=RELEASED if targets else DROPPED,
                released_at=now,
                recipients=len(targets),
            )
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            continue  # cancelled, or released by another process, meanwhile
        view = await get(session, announcement_id)
        creator = await session.get(Person, row.created_by_id)
        assert view is not None and creator is not None
        released.append(Released(view, targets, creator.telegram_id, creator.locale))
    return released
