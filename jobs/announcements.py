"""Queued announcements go out at their time: the schedule's tick (every 30 s, and on start)
releases the due ones into the outbox, one row per group (``announce:<id>:<chat>``), in the
transaction that marks them released. An announcement for a time chooses quiet hours' side:
one timed for 22:00 waits in the outbox for their end (08:00 by default); one sent "now" goes
at once. If its one group is no longer bound, nothing is sent and the admin who queued it is
told.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.context import Services
from bot.services import announcements, outbox
from bot.services.announcements import Released
from bot.services.outbox import NewMessage

log = logging.getLogger(__name__)
KIND = "announce"
DROPPED = "announce-dropped"


def payload_of(text: str, photo_file_id: str | None) -> dict[str, Any]:
    """The message as the groups get it: plain text, or the photo with its caption."""
    if photo_file_id:
        return {"photo": photo_file_id, "text": text or None}
    return {"text": text}


def _messages(services: Services, released: Released) -> list[NewMessage]:
    item = released.announcement
    if not released.chat_ids:
        tr = services.i18n.translator(released.creator_locale)
        return [
            NewMessage(
                f"{DROPPED}:{item.id}",
                DROPPED,
                released.creator_telegram_id,
                {"text": tr("announce.dropped", id=item.id)},
            )
        ]
    payload = payload_of(item.text, item.photo_file_id)
    return [
        NewMessage(f"{KIND}:{item.id}:{chat_id}", KIND, chat_id, payload, item.respects_quiet_hours)
        for chat_id in released.chat_ids
    ]


async def release_due(services: Services) -> list[Released]:
    """Release what is due into the outbox; what was released (or dropped)."""
    now = services.now()
    async with services.db.begin() as session:
        released = await announcements.release_due(session, now=now)
        messages = [m for r in released for m in _messages(services, r)]
        await outbox.enqueue_many(session, messages, now=now)
    if released:
        services.wake_outbox()
        for r in released:
            log.info("announcement %s released to %d groups", r.announcement.id, len(r.chat_ids))
    return released
