"""The limiter's rules, on real time with Telegram's windows scaled down (lower bounds only:
an asyncio sleep never returns early, so these cannot flake by being slow)."""

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.limits import RateWindow, TelegramLimits
from bot.sending.ratelimit import ChatRateLimiter
from bot.sending.window import SlidingWindow

SCALE = 0.02  # private 1 per 20 ms, group 20 per 1.2 s, overall 30 per 20 ms
LIMITS = TelegramLimits().scaled(SCALE)


@pytest.mark.parametrize(
    ("n", "window", "past", "now", "cost", "delay"),
    [
        (1, 1.0, [], 0.0, 1, 0.0),
        (1, 1.0, [0.0], 0.5, 1, 0.5),
        (1, 1.0, [0.0], 1.0, 1, 0.0),  # the window is half-open: exactly 1 s later is fine
        (20, 60.0, [0.0] * 20, 3.0, 1, 57.0),  # not a leaky bucket: the 21st waits a minute
        (20, 60.0, [0.0] * 10 + [30.0] * 10, 45.0, 1, 15.0),
        (30, 1.0, [0.5] * 25, 0.9, 5, 0.0),
        (30, 1.0, [0.5] * 25, 0.9, 6, 0.6),
        (1, 1.0, [0.2], 0.4, 10, 0.8),  # a batch larger than the window needs it empty
    ],
)
def test_window_delay(
    n: int, window: float, past: list[float], now: float, cost: int, delay: float
) -> None:
    w = SlidingWindow(n, window)
    for t in past:
        w.record(t)
    assert w.delay(now, cost) == pytest.approx(delay)


def _violations(times: list[float], rate: RateWindow) -> int:
    times = sorted(times)
    return sum(
        1 for i in range(len(times) - rate.n) if times[i + rate.n] - times[i] < rate.window_s
    )


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, Any]] = []
        self.failures: dict[Any, list[Exception]] = {}

    async def __call__(self, chat_id: Any) -> bool:
        plan = self.failures.get(chat_id)
        if plan:
            raise plan.pop(0)
        self.calls.append((time.monotonic(), chat_id))
        return True

    def times(self, chat_id: Any = None) -> list[float]:
        return [t for t, c in self.calls if chat_id is None or c == chat_id]


async def _send(
    limiter: ChatRateLimiter, rec: Recorder, chat_id: Any, endpoint: str = "sendMessage",
    **data: Any,
) -> Any:
    return await limiter.process_request(
        rec, (chat_id,), {}, endpoint, {"chat_id": chat_id, **data}, None
    )


async def test_private_chat_burst_is_spaced() -> None:
    limiter, rec = ChatRateLimiter(LIMITS, margin_s=0.002), Recorder()
    await asyncio.gather(*(_send(limiter, rec, 42) for _ in range(10)))
    assert len(rec.calls) == 10 and _violations(rec.times(), LIMITS.private_chat) == 0
    times = rec.times()
    assert times[-1] - times[0] >= 9 * LIMITS.private_chat.window_s


async def test_group_burst_waits_for_the_window() -> None:
    limiter, rec = ChatRateLimiter(LIMITS, margin_s=0.002), Recorder()
    await asyncio.gather(*(_send(limiter, rec, -100) for _ in range(23)))
    times = rec.times()
    assert _violations(times, LIMITS.group_chat) == 0
    assert times[19] - times[0] < LIMITS.group_chat.window_s / 2  # the first 20 at once
    assert times[20] - times[0] >= LIMITS.group_chat.window_s


async def test_many_chats_keep_the_overall_limit() -> None:
    limiter, rec = ChatRateLimiter(LIMITS, margin_s=0.002), Recorder()
    await asyncio.gather(*(_send(limiter, rec, 1000 + i) for i in range(100)))
    assert len(rec.calls) == 100 and _violations(rec.times(), LIMITS.overall) == 0


async def test_media_group_counts_each_item() -> None:
    limits = TelegramLimits(overall=RateWindow(6, 0.2))
    limiter, rec = ChatRateLimiter(limits, margin_s=0.0), Recorder()
    await _send(limiter, rec, -1, "sendMediaGroup", media=[1, 2, 3, 4, 5])
    await _send(limiter, rec, -2)  # the 6th message fits
    started = time.monotonic()
    await _send(limiter, rec, -3)  # the 7th waits for the window
    assert time.monotonic() - started >= 0.15


async def test_calls_that_send_nothing_are_not_limited() -> None:
    limiter, rec = ChatRateLimiter(LIMITS), Recorder()
    started = time.monotonic()
    for _ in range(20):
        await _send(limiter, rec, 42, "answerCallbackQuery")
    assert time.monotonic() - started < 0.1 * 20 * LIMITS.private_chat.window_s + 0.5


async def test_429_pauses_only_its_chat() -> None:
    limiter, rec = ChatRateLimiter(LIMITS, margin_s=0.002), Recorder()
    rec.failures[7] = [RetryAfter(timedelta(seconds=1))]
    blocked = asyncio.create_task(_send(limiter, rec, 7))
    await asyncio.sleep(0.05)
    for _ in range(5):
        await _send(limiter, rec, 8)
    assert not blocked.done() and len(rec.times(8)) == 5
    assert await blocked is True
    assert rec.times(7)[0] - rec.times(8)[0] >= 0.8
    assert limiter.stats.retries_429 == 1


async def test_429_without_a_chat_pauses_everything() -> None:
    limiter, rec = ChatRateLimiter(LIMITS, margin_s=0.0), Recorder()
    rec.failures[None] = [RetryAfter(timedelta(seconds=1))]
    started = time.monotonic()
    await limiter.process_request(rec, (None,), {}, "getMe", {}, None)
    await _send(limiter, rec, 9)
    assert time.monotonic() - started >= 0.95


async def test_network_errors_retried_answers_not() -> None:
    limiter = ChatRateLimiter(LIMITS, backoff_base_s=0.01)
    rec = Recorder()
    rec.failures[1] = [TimedOut(), NetworkError("Bad Gateway")]
    assert await _send(limiter, rec, 1) is True
    assert limiter.stats.retries_network == 2
    for refusal in (BadRequest("Bad Request: chat not found"), Forbidden("blocked")):
        rec.failures[2] = [refusal]
        with pytest.raises(type(refusal)):
            await _send(limiter, rec, 2)
    rec.failures[3] = [TimedOut() for _ in range(10)]
    with pytest.raises(TimedOut):
        await _send(limiter, rec, 3)
    assert limiter.stats.gave_up == 1 and len(rec.failures[3]) == 10 - 4  # 1 try + 3 retries


async def test_idle_chats_are_forgotten() -> None:
    limiter, rec = ChatRateLimiter(LIMITS, margin_s=0.0), Recorder()
    for i in range(1000):
        await _send(limiter, rec, 10_000 + i, "sendChatAction")  # not limited: no state
    assert len(limiter._chats) == 0
    await asyncio.gather(*(_send(limiter, rec, 20_000 + i) for i in range(1000)))
    await asyncio.sleep(LIMITS.private_chat.window_s)
    await _send(limiter, rec, 99)
    assert len(limiter._chats) < 10
