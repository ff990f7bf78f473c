"""One rate limiter for every Bot API call, keeping Telegram's limits per chat and overall.

PTB's AIORateLimiter leaves private chats unlimited and pauses every chat on one 429. Here each
chat has its own sliding window, its own queue and its own 429 pause; only a 429 on a call that
names no chat pauses everything. Transport failures are retried with exponential backoff.

Retrying a send after a timeout may deliver it twice (the first try may have reached Telegram
before the connection failed): at-least-once delivery is the accepted trade-off here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

from bot.limits import TelegramLimits, counts_toward_limits
from bot.sending.window import SlidingWindow

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
Result = bool | JSONDict | list[JSONDict]
Callback = Callable[..., Coroutine[Any, Any, Result]]
Sleep = Callable[[float], Coroutine[Any, Any, None]]
ChatKey = int | str


@dataclass
class SendStats:
    """Counters for metrics. ``sent`` counts messages (an album of 5 is 5)."""

    sent: int = 0
    waited_s: float = 0.0
    seen_429: int = 0  # every 429 answer, the last one of a call given up included
    retries_429: int = 0
    retries_network: int = 0
    gave_up: int = 0


class _ChatState:
    __slots__ = ("lock", "paused_until", "users", "window")

    def __init__(self, window: SlidingWindow) -> None:
        self.window = window
        self.lock = asyncio.Lock()  # one message in flight per chat keeps the chat's order
        self.paused_until = 0.0  # set by a 429 on this chat
        self.users = 0  # calls holding this state; a state in use is never dropped


def retry_after_seconds(exc: RetryAfter) -> float:
    """``retry_after`` is a timedelta or (deprecated, PTB_TIMEDELTA unset) int seconds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def message_cost(endpoint: str, data: JSONDict) -> int:
    """How many messages a call puts into a chat: an album counts each item."""
    if not counts_toward_limits(endpoint):
        return 0
    media = data.get("media")
    if endpoint == "sendMediaGroup" and isinstance(media, list | tuple):
        return max(1, len(media))
    return 1


def chat_key(chat_id: object) -> ChatKey:
    """One key per chat, whether its id came as ``123`` or ``"123"``."""
    if isinstance(chat_id, int):
        return chat_id
    text = str(chat_id).strip()
    return int(text) if text.lstrip("-").isdigit() else text


class ChatRateLimiter(BaseRateLimiter[None]):
    """Throttles message-sending calls to Telegram's limits; retries 429s and transport failures.

    ``margin_s`` widens every window (and every ``retry_after``) so loopback jitter cannot break
    a limit. Each failure kind gets up to ``max_retries`` retries before the error is re-raised.
    """

    def __init__(
        self,
        limits: TelegramLimits | None = None,
        *,
        margin_s: float = 0.02,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        backoff_factor: float = 2.0,
        backoff_cap_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        min_chats_kept: int = 1000,
    ) -> None:
        self.limits = limits or TelegramLimits()
        self.margin_s = margin_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_factor = backoff_factor
        self.backoff_cap_s = backoff_cap_s
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._min_chats_kept = min_chats_kept
        self._sweep_at = min_chats_kept
        self.stats = SendStats()
        self._reset()

    def _reset(self) -> None:
        overall = self.limits.overall
        self._overall = SlidingWindow(overall.n, overall.window_s + self.margin_s)
        # Serves the shared budget in arrival order, so an album waiting for 5 free slots is not
        # overtaken forever by single messages.
        self._overall_lock = asyncio.Lock()
        self._paused_until = 0.0  # set by a 429 on a call without a chat
        self._chats: dict[ChatKey, _ChatState] = {}

    async def initialize(self) -> None:
        self._reset()

    async def shutdown(self) -> None:
        self._chats.clear()

    # -- per-chat state ----------------------------------------------------------------------

    def _checkout(self, key: ChatKey) -> _ChatState:
        state = self._chats.get(key)
        if state is None:
            if len(self._chats) >= self._sweep_at:
                self._forget_idle()
                # Sweep again only when the table has doubled: amortised O(1) per new chat.
                self._sweep_at = max(self._min_chats_kept, 2 * len(self._chats))
            rate = self.limits.chat_window(key)
            state = _ChatState(SlidingWindow(rate.n, rate.window_s + self.margin_s))
            self._chats[key] = state
        state.users += 1
        return state

    def _forget_idle(self) -> None:
        now = self._clock()
        idle = [
            key
            for key, s in self._chats.items()
            if s.users == 0 and s.paused_until <= now and s.window.idle(now)
        ]
        for key in idle:
            del self._chats[key]

    # -- waiting -----------------------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        self.stats.waited_s += seconds
        await self._sleep(seconds)

    async def _wait_turn(self, chat: _ChatState | None, cost: int) -> float | None:
        """Wait until the call may go out; for a message, take its slots in both windows and
        return when they were taken."""
        while True:
            now = self._clock()
            delay = self._paused_until - now
            if chat is not None:
                delay = max(delay, chat.paused_until - now)
                if cost:
                    delay = max(delay, chat.window.delay(now, cost))
            if delay > 0:
                await self._pause(delay)
                continue
            if chat is None or not cost:
                return None
            # The chat's own window is free (and only this chat's queue head records into it).
            async with self._overall_lock:
                while (delay := self._overall_delay(cost)) > 0:
                    await self._pause(delay)
                now = self._clock()
                if chat.paused_until <= now:  # a 429 on an edit to this chat may have come in
                    chat.window.record(now, cost)
                    self._overall.record(now, cost)
                    return now

    def _overall_delay(self, cost: int) -> float:
        now = self._clock()
        return max(self._paused_until - now, self._overall.delay(now, cost))

    def _backoff(self, retry: int) -> float:
        base = self.backoff_base_s * self.backoff_factor ** (retry - 1)
        # Equal jitter: half fixed, half random, so retries from many chats spread out.
        return min(self.backoff_cap_s, base) * (0.5 + self._jitter() / 2)

    # -- the request -------------------------------------------------------------------------

    async def process_request(
        self,
        callback: Callback,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> Result:
        cost = message_cost(endpoint, data)
        chat_id = data.get("chat_id")
        if chat_id is None:
            return await self._attempts(callback, args, kwargs, endpoint, None, 0)
        chat = self._checkout(chat_key(chat_id))
        try:
            if not cost:  # edits, chat actions...: no slot, no queue; only a 429 pause holds them
                return await self._attempts(callback, args, kwargs, endpoint, chat, 0)
            # The lock is held across retries so that a message retried after a 429 or a timeout
            # still goes out before the ones queued behind it.
            async with chat.lock:
                return await self._attempts(callback, args, kwargs, endpoint, chat, cost)
        finally:
            chat.users -= 1

    async def _attempts(
        self,
        callback: Callback,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        chat: _ChatState | None,
        cost: int,
    ) -> Result:
        retries_429 = retries_network = 0
        while True:
            taken = await self._wait_turn(chat, cost)
            try:
                try:
                    result = await callback(*args, **kwargs)
                finally:
                    if chat is not None and taken is not None:
                        # Telegram counts a message when it arrives, somewhere between the slot
                        # being taken and the answer coming back; a busy event loop can delay
                        # the request. Counting from the answer keeps the next message of this
                        # chat (held behind the chat's lock) a full window after it, and the
                        # 31st message of all a full window after the answer to the 1st.
                        answered = self._clock()
                        chat.window.restamp(answered, cost)
                        self._overall.restamp_at(taken, answered, cost)
            except RetryAfter as exc:
                self.stats.seen_429 += 1
                if retries_429 >= self.max_retries:
                    self.stats.gave_up += 1
                    log.error("%s: still 429 after %d retries; giving up", endpoint, retries_429)
                    raise
                retries_429 += 1
                self.stats.retries_429 += 1
                pause = retry_after_seconds(exc) + self.margin_s
                until = self._clock() + pause
                if chat is None:
                    self._paused_until = max(self._paused_until, until)
                else:
                    chat.paused_until = max(chat.paused_until, until)
                log.warning(
                    "%s: 429, %s paused %.2fs", endpoint, "chat" if chat else "everything", pause
                )
            except BadRequest:
                raise  # a NetworkError subclass in PTB, but Telegram's answer: never retried
            except NetworkError as exc:  # TimedOut, connection errors, 5xx
                if retries_network >= self.max_retries:
                    self.stats.gave_up += 1
                    log.error("%s: %s after %d retries; giving up", endpoint, exc, retries_network)
                    raise
                retries_network += 1
                self.stats.retries_network += 1
                backoff = self._backoff(retries_network)
                log.warning("%s: %s; retry %d in %.2fs", endpoint, exc, retries_network, backoff)
                await self._pause(backoff)
            else:
                self.stats.sent += cost
                return result
