"""Two senders draining one outbox, on SQLite and on PostgreSQL: the application's own and a
second one with its own database pool, bot client and rate limiter, as another process would
have. Every row goes out exactly once."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram.ext import ExtBot

from bot.db import Database
from bot.harness import TOKEN, Clock, Harness, running_bot
from bot.limits import TelegramLimits
from bot.sending.outbox_sender import MAX_IN_FLIGHT, OutboxSender
from bot.sending.ratelimit import ChatRateLimiter
from bot.services.roles import Role
from jobs.reminders import write_reminders
from models.base import utcnow
from tests.e2e.conftest import ADMIN, start_world
from tests.e2e.reminder_world import deliveries, drained, local, person, problem, rows

SPEED = 0.05
LIAISONS = range(20001, 20151)


@pytest.fixture
async def many(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """150 liaisons of 东桥镇, which has a problem overdue; the clock runs from 10:00 in Shanghai
    (moving, so that a message retried after a 429 comes due again)."""
    clock = Clock(offset=local(2026, 3, 10, 10, 0) - utcnow())
    async with running_bot(
        db_url, admin_ids=[ADMIN], media_dir=tmp_path / "m", clock=clock, speed=SPEED
    ) as h:
        await start_world(h)
        for uid in LIAISONS:
            await person(h, uid, f"联络员{uid}", Role.liaison, "NH-DQ")
        await problem(h, local(2026, 3, 8, 23, 59, 59))
        yield h


async def test_two_senders_on_one_database_deliver_each_row_once(
    many: Harness, db_url: str
) -> None:
    h = many
    db = Database.connect(db_url)
    bot = ExtBot(
        TOKEN,
        base_url=h.sb.api_base_url,
        base_file_url=h.sb.file_base_url,
        rate_limiter=ChatRateLimiter(limits=TelegramLimits().scaled(SPEED)),
    )
    await bot.initialize()
    second = OutboxSender(bot, dataclasses.replace(h.services, db=db), worker="second", idle_s=0.05)
    second.start()
    try:
        written = await write_reminders(h.services)  # wakes the application's sender
        second.wake()
        assert written.liaisons == len(LIAISONS)
        await drained(h, timeout=30)
    finally:
        await second.stop()
        await bot.shutdown()
        await db.dispose()

    first = h.sender
    assert deliveries(h, "今日提醒") == {uid: 1 for uid in LIAISONS}
    assert first.sent > 0 and second.sent > 0  # both really took part
    assert first.peak_in_flight <= MAX_IN_FLIGHT and second.peak_in_flight <= MAX_IN_FLIGHT
    assert first.sent + second.sent == len(LIAISONS)
    sent = await rows(h)
    assert {r.status for r in sent} == {"sent"} and {r.attempts for r in sent} == {1}
    # Each row's Telegram message is the one the stand-in holds for that chat.
    held = {m.chat_id: m.message_id for m in h.sb.sent() if "今日提醒" in m.content}
    assert {r.chat_id: r.telegram_message_id for r in sent} == held


async def test_a_stopping_sender_finishes_what_is_in_flight_and_hands_back_the_rest(
    many: Harness,
) -> None:
    h = many
    sender = h.sender
    sender.max_in_flight = 5
    await write_reminders(h.services)
    await h.sb.wait_until(lambda: sender.sent >= 10, timeout=10, what="10 reminders sent")
    await sender.stop()
    assert sender.in_flight == []
    everything = await rows(h)
    left = [r for r in everything if r.status == "pending"]
    assert len(left) > 100  # stopped in the middle
    assert all(r.claimed_by is None and r.claimed_until is None for r in left)  # free at once
    # Nothing went out that is not marked sent: what was in flight was let finish.
    marked = {r.chat_id for r in everything if r.status == "sent"}
    assert deliveries(h, "今日提醒") == {chat: 1 for chat in marked}
