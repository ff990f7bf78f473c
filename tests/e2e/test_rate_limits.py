"""Every outgoing call goes through the limiter: bursts never draw a 429 from the stand-in, its
own log shows the limits held, and a 429 on one chat does not hold up the others."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.harness import Harness, running_bot
from tests.e2e.conftest import ADMIN, start_world

# Real windows scaled to a fifth: 1 message per 0.2 s per private chat, 20 per 12 s per group,
# 30 per 0.2 s overall.
SPEED = 0.2


@pytest.fixture
async def slow_bot(sqlite_url: str) -> AsyncIterator[Harness]:
    async with running_bot(sqlite_url, admin_ids=[ADMIN], speed=SPEED) as h:
        await start_world(h)
        yield h


async def _send_all(h: Harness, chats: list[int]) -> float:
    started = time.monotonic()
    await asyncio.gather(*(h.app.bot.send_message(c, f"#{i}") for i, c in enumerate(chats)))
    return time.monotonic() - started


async def test_burst_to_one_private_chat(slow_bot: Harness) -> None:
    h = slow_bot
    h.sb.send_text(4001, "/start")
    await h.sb.wait_messages(4001, n=1)
    elapsed = await _send_all(h, [4001] * 10)
    assert h.sb.count_429 == 0 and h.sb.limit_violations() == []
    assert len(h.sb.sent(4001)) == 11
    assert elapsed >= 9 * 0.2 * 0.95  # spaced by the private window, not sent at once


async def test_burst_to_one_group(sqlite_url: str) -> None:
    speed = 0.05  # a group's minute becomes 3 s
    async with running_bot(sqlite_url, admin_ids=[ADMIN], speed=speed) as h:
        await start_world(h)
        group = -100500
        elapsed = await _send_all(h, [group] * 24)
        assert h.sb.count_429 == 0 and h.sb.limit_violations() == []
        assert len(h.sb.sent(group)) == 24
        assert elapsed >= 60 * speed * 0.95  # the 21st waited for the group's window


async def test_burst_to_many_chats(slow_bot: Harness) -> None:
    h = slow_bot
    users = list(range(70000, 70090))
    for uid in users:
        h.sb.add_user(uid, f"U{uid}")
        h.sb.send_text(uid, "/start")
    for uid in users:
        await h.sb.wait_messages(uid, n=1, timeout=30)
    elapsed = await _send_all(h, users)
    assert h.sb.count_429 == 0 and h.sb.limit_violations() == []
    assert all(len(h.sb.sent(uid)) == 2 for uid in users)
    assert elapsed >= (90 / 30 - 1) * 1.0 * SPEED * 0.95  # the overall window held them back


async def test_a_429_on_one_chat_does_not_delay_others(slow_bot: Harness) -> None:
    h = slow_bot
    for uid in (2001, 2002):
        h.sb.send_text(uid, "/start")
        await h.sb.wait_messages(uid, n=1)
    h.sb.force_429(2001, retry_after=3, count=1)
    blocked = asyncio.create_task(h.app.bot.send_message(2001, "after the 429"))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    for i in range(3):
        await h.app.bot.send_message(2002, f"other chat {i}")
    others_took = time.monotonic() - started
    assert not blocked.done()  # still waiting out its retry_after
    assert others_took < 2.0
    message = await asyncio.wait_for(blocked, timeout=10)
    assert message.text == "after the 429"
    assert [m.content for m in h.sb.sent(2001)][-1] == "after the 429"
