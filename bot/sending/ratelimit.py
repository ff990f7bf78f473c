"""One rate limiter for every Bot API call, keeping Telegram's limits per chat and overall.

PTB's AIORateLimiter does not limit private chats and pauses every chat on one 429. Here each
chat has its own sliding window and its own 429 pause; only a 429 that names no chat pauses all.
Transport failures are retried with exponential backoff. Retrying a send after a timeout may
deliver it twice (the first try may have arrived): at-least-once is the accepted trade-off.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter

from bot.limits import TelegramLimits, counts_toward_limits
from bot.sending.window import SlidingWindow

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
Sleep = Callable[[float], Coroutine[Any, Any, None]]


@dataclass
class SendStats:
    sent: int = 0
    waited_s: float = 0.0
    retries_429: int = 0
    retries_network: int = 0
    gave_up: int = 0


class _ChatState:
    __slots__ = ("blocked_until", "lock", "window")

    def __init__(self, window: SlidingWindow) -> None:
        self.window = window
        self.lock = asyncio.Lock()  # FIFO within one chat
        self.blocked_until = 0.0


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _cost(endpoint: str, data: JSONDict) -> int:
    media = data.get("media")
    if endpoint == "sendMediaGroup" and isinstance(media, list):
        return max(1, len(media))
    return 1


class ChatRateLimiter(BaseRateLimiter[None]):
    def __init__(
        self,
        limits: TelegramLimits | None = None,
        *,
        margin_s: float = 0.02,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.limits = limits or TelegramLimits()
        self.margin_s = margin_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._clock = clock
        self._sleep = sleep
        overall = self.limits.overall
        self._overall = SlidingWindow(overall.n, overall.window_s + margin_s)
        self._chats: dict[int | str, _ChatState] = {}
        self._global_block_until = 0.0
        self.stats = SendStats()

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        self._chats.clear()

    def _chat(self, chat_id: int | str) -> _ChatState:
        state = self._chats.get(chat_id)
        if state is None:
            if len(self._chats) >= 1000:
                self._forget_idle()
            rate = self.limits.chat_window(chat_id)
            state = _ChatState(SlidingWindow(rate.n, rate.window_s + self.margin_s))
            self._chats[chat_id] = state
        return state

    def _forget_idle(self) -> None:
        now = self._clock()
        for key in [
            k
            for k, s in self._chats.items()
            if not s.lock.locked() and s.blocked_until <= now and s.window.idle(now)
        ]:
            del self._chats[key]

    async def _wait(self, seconds: float) -> None:
        self.stats.waited_s += seconds
        await self._sleep(seconds)

    async def _acquire(self, chat: _ChatState | None, cost: int) -> None:
        while True:
            now = self._clock()
            delay = self._global_block_until - now
            if chat is not None:
                delay = max(
                    delay,
                    chat.blocked_until - now,
                    chat.window.delay(now, cost),
                    self._overall.delay(now, cost),
                )
            if delay <= 0:
                if chat is not None:
                    chat.window.record(now, cost)
                    self._overall.record(now, cost)
                return
            await self._wait(delay)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | JSONDict | list[JSONDict]:
        chat_id = data.get("chat_id")
        chat = (
            self._chat(chat_id) if chat_id is not None and counts_toward_limits(endpoint) else None
        )
        cost = _cost(endpoint, data)
        attempt = 0
        while True:
            if chat is not None:
                async with chat.lock:
                    await self._acquire(chat, cost)
            else:
                await self._acquire(None, cost)
            try:
                result = await callback(*args, **kwargs)
            except RetryAfter as exc:
                attempt += 1
                self.stats.retries_429 += 1
                pause = _seconds(exc.retry_after) + self.margin_s
                log.warning("429 on %s for chat %s: waiting %.1fs", endpoint, chat_id, pause)
                if attempt > self.max_retries:
                    self.stats.gave_up += 1
                    raise
                until = self._clock() + pause
                if chat is not None:
                    chat.blocked_until = max(chat.blocked_until, until)
                else:
                    self._global_block_until = max(self._global_block_until, until)
            except NetworkError as exc:
                # BadRequest is a NetworkError in PTB but an answer, not a transport failure.
                if isinstance(exc, BadRequest):
                    raise
                attempt += 1
                self.stats.retries_network += 1
                if attempt > self.max_retries:
                    self.stats.gave_up += 1
                    raise
                backoff = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
                backoff *= 0.5 + random.random() / 2  # jitter: retries from many chats spread
                log.warning("%s failed (%s): retry %d in %.2fs", endpoint, exc, attempt, backoff)
                await self._wait(backoff)
            else:
                self.stats.sent += 1
                return result
