"""The limiter's rules, on virtual time: a real asyncio loop whose clock jumps to the next timer
instead of waiting for it, so minutes of Telegram windows run in milliseconds and every time an
assertion sees is exact. One smoke test runs on real time with the limiter's defaults."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import selectors
import time
import warnings
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TimedOut,
)

from bot.limits import RateWindow, TelegramLimits, is_group_chat
from bot.sending.ratelimit import ChatRateLimiter, retry_after_seconds
from bot.sending.window import SlidingWindow, wait_needed

T = TypeVar("T")
LIMITS = TelegramLimits()
M = 0.02  # the limiter's default margin


# -- virtual time --------------------------------------------------------------------------------


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: where the loop would sleep until its next timer, time jumps there."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is set")
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def run(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)


def now() -> float:
    return asyncio.get_running_loop().time()


def make_limiter(**kwargs: Any) -> ChatRateLimiter:
    """A limiter on the running (virtual) loop's clock; jitter fixed so backoffs are exact."""
    kwargs.setdefault("jitter", lambda: 1.0)
    return ChatRateLimiter(clock=now, **kwargs)


class Recorder:
    """The Bot API call: records (time, chat, label) or raises the next planned failure."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Any, Any]] = []
        self.failures: dict[Any, list[Exception]] = {}
        self.attempts = 0

    async def __call__(self, chat_id: Any, label: Any = None, cost: int = 1) -> bool:
        self.attempts += 1
        plan = self.failures.get(chat_id)
        if plan:
            raise plan.pop(0)
        self.calls.extend([(now(), chat_id, label)] * cost)
        return True

    def times(self, chat_id: Any = None) -> list[float]:
        return [t for t, c, _ in self.calls if chat_id is None or c == chat_id]

    def labels(self, chat_id: Any) -> list[Any]:
        return [label for _, c, label in self.calls if c == chat_id]


async def send(
    limiter: ChatRateLimiter,
    rec: Recorder,
    chat_id: Any,
    label: Any = None,
    endpoint: str = "sendMessage",
    **data: Any,
) -> Any:
    cost = len(data["media"]) if endpoint == "sendMediaGroup" else 1
    payload = {**data} if chat_id is None else {"chat_id": chat_id, **data}
    return await limiter.process_request(rec, (chat_id, label, cost), {}, endpoint, payload, None)


def violations(times: list[float], rate: RateWindow) -> list[float]:
    """Where more than ``n`` events fall into one window, as the stand-in checks on arrival."""
    times = sorted(times)
    return [
        times[i] for i in range(len(times) - rate.n) if times[i + rate.n] - times[i] < rate.window_s
    ]


# -- the window math -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "window", "past", "at", "cost", "wait"),
    [
        (1, 1.0, [], 0.0, 1, 0.0),
        (1, 1.0, [0.0], 0.5, 1, 0.5),
        (1, 1.0, [0.0], 1.0, 1, 0.0),  # half-open: exactly one window later no longer overlaps
        (1, 1.0, [0.0], 0.0, 1, 1.0),
        (20, 60.0, [0.0] * 19, 1.0, 1, 0.0),
        (20, 60.0, [0.0] * 20, 3.0, 1, 57.0),  # not a leaky bucket: the 21st waits a minute
        (20, 60.0, [0.0] * 10 + [30.0] * 10, 45.0, 1, 15.0),
        (20, 60.0, [0.0] * 10 + [30.0] * 10, 45.0, 11, 45.0),  # the second ten must go too
        (20, 60.0, [-70.0] * 20, 0.0, 20, 0.0),  # all outside the window
        (30, 1.0, [0.5] * 25, 0.9, 5, 0.0),
        (30, 1.0, [0.5] * 25, 0.9, 6, 0.6),
        (1, 1.0, [0.2], 0.4, 10, 0.8),  # a batch larger than the window waits for it empty
        (3, 1.0, [0.1, 0.2, 0.3], 0.5, 2, 0.7),
    ],
)
def test_wait_needed(
    n: int, window: float, past: list[float], at: float, cost: int, wait: float
) -> None:
    assert wait_needed(past, n, window, at, cost) == pytest.approx(wait)
    w = SlidingWindow(n, window)
    for t in past:
        w.record(t)
    assert w.delay(at, cost) == pytest.approx(wait)


def test_window_forgets_old_events() -> None:
    w = SlidingWindow(2, 1.0)
    w.record(0.0, cost=5)  # capped at n: a batch can never need more than an empty window
    assert w.delay(0.5) == pytest.approx(0.5)
    assert not w.idle(0.99) and w.idle(1.0)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(timedelta(seconds=3), 3.0), (timedelta(milliseconds=1500), 1.5), (7, 7.0)],
)
@pytest.mark.parametrize("ptb_timedelta", ["true", "false"])
def test_retry_after_in_either_form(
    monkeypatch: pytest.MonkeyPatch, value: timedelta | int, seconds: float, ptb_timedelta: str
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", ptb_timedelta)  # "false": an int plus a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB's own __init__ reads the deprecated property
        exc = RetryAfter(value)
    assert retry_after_seconds(exc) == seconds  # warnings are errors here: ours is hidden


# -- spacing -------------------------------------------------------------------------------------


def test_burst_to_one_private_chat_is_spaced_and_in_order() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        await asyncio.gather(*(send(limiter, rec, 42, i) for i in range(10)))
        assert rec.labels(42) == list(range(10))
        assert rec.times() == pytest.approx([i * (1 + M) for i in range(10)])
        assert violations(rec.times(), LIMITS.private_chat) == []
        assert limiter.stats.sent == 10

    run(scenario())


def test_burst_to_one_group_sends_20_then_waits_a_minute() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        await asyncio.gather(*(send(limiter, rec, -100, i) for i in range(25)))
        times = rec.times()
        assert times[:20] == [0.0] * 20
        assert times[20:] == pytest.approx([60 + M] * 5)
        assert violations(times, LIMITS.group_chat) == []

    run(scenario())


def test_hundred_private_chats_keep_the_overall_limit() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        await asyncio.gather(*(send(limiter, rec, 1000 + i) for i in range(100)))
        times = rec.times()
        assert len(times) == 100 and violations(times, LIMITS.overall) == []
        assert times.count(0.0) == 30  # a full second's budget at once, then the next second's
        assert max(times) == pytest.approx(3 * (1 + M))

    run(scenario())


def test_a_queued_chat_does_not_hold_up_another() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        queue = [asyncio.create_task(send(limiter, rec, 1, i)) for i in range(10)]
        await asyncio.sleep(0.5)
        await send(limiter, rec, 2)
        assert rec.times(2) == [0.5]
        await asyncio.gather(*queue)

    run(scenario())


def test_media_group_counts_each_item() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        for _ in range(4):  # 4 albums of 5 fill a group's 20 per minute
            await send(limiter, rec, -7, endpoint="sendMediaGroup", media=[1, 2, 3, 4, 5])
        assert rec.times() == [0.0] * 20
        await send(limiter, rec, -7, "late")
        assert rec.times()[-1] == pytest.approx(60 + M)
        assert limiter.stats.sent == 21

    run(scenario())


def test_media_group_takes_its_items_from_the_overall_budget() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        await asyncio.gather(*(send(limiter, rec, -1 - i) for i in range(27)))
        await send(limiter, rec, -99, endpoint="sendMediaGroup", media=[1, 2, 3, 4, 5])
        assert rec.times(-99) == pytest.approx([1 + M] * 5)  # 27 + 5 > 30
        assert violations(rec.times(), LIMITS.overall) == []

    run(scenario())


def test_album_to_a_private_chat_takes_the_window() -> None:
    """More items than the window holds (1 per second): the album needs the window empty, like
    the stand-in's arrival check, and then fills it."""

    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        await send(limiter, rec, 42, "text")
        await send(limiter, rec, 42, "album", endpoint="sendMediaGroup", media=[1, 2, 3])
        await send(limiter, rec, 42, "text")
        assert rec.times() == pytest.approx([0.0, *[1 + M] * 3, 2 + 2 * M])

    run(scenario())


@pytest.mark.parametrize(
    ("endpoint", "data"),
    [
        ("answerCallbackQuery", {}),
        ("getFile", {}),
        ("sendChatAction", {"chat_id": 42}),
        ("editMessageText", {"chat_id": 42}),
    ],
)
def test_calls_that_send_nothing_are_not_limited(endpoint: str, data: dict[str, Any]) -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        await send(limiter, rec, 42)  # the private chat's slot for this second is taken
        for _ in range(20):
            await limiter.process_request(rec, (42,), {}, endpoint, data, None)
        assert rec.times() == [0.0] * 21 and limiter.stats.sent == 1

    run(scenario())


def test_the_same_chat_as_int_or_string_shares_one_window() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        await asyncio.gather(send(limiter, rec, 5), send(limiter, rec, "5"), send(limiter, rec, 5))
        assert rec.times() == pytest.approx([0.0, 1 + M, 2 + 2 * M])

    run(scenario())


# -- 429 -----------------------------------------------------------------------------------------


def test_a_429_pauses_only_its_chat() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        rec.failures[7] = [RetryAfter(timedelta(seconds=5))]
        blocked = asyncio.create_task(send(limiter, rec, 7, "first"))
        queued = asyncio.create_task(send(limiter, rec, 7, "second"))
        await asyncio.sleep(0)
        for i in range(3):
            await send(limiter, rec, 8, i)
        assert rec.times(8) == pytest.approx([0.0, 1 + M, 2 + 2 * M])
        assert not blocked.done()
        await asyncio.gather(blocked, queued)
        assert rec.times(7) == pytest.approx([5 + M, 6 + 2 * M])
        assert rec.labels(7) == ["first", "second"]  # the retried message keeps its place
        assert limiter.stats.retries_429 == 1 and limiter.stats.gave_up == 0

    run(scenario())


def test_a_429_on_an_edit_pauses_its_chat_sends() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        rec.failures[3] = [RetryAfter(2)]
        edit = asyncio.create_task(
            limiter.process_request(
                rec, (3, "edit"), {}, "editMessageText", {"chat_id": 3, "message_id": 1}, None
            )
        )
        await asyncio.sleep(0.1)
        await asyncio.gather(send(limiter, rec, 3, "send"), send(limiter, rec, 4))
        await edit
        assert rec.times(4) == [0.1]  # another chat is not paused
        assert rec.times(3) == pytest.approx([2 + M, 2 + M])

    run(scenario())


def test_a_429_while_waiting_for_the_overall_budget_still_holds() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        await asyncio.gather(*(send(limiter, rec, 100 + i) for i in range(30)))
        waiting = asyncio.create_task(send(limiter, rec, 3, "send"))  # for the next second
        await asyncio.sleep(0.1)
        rec.failures[3] = [RetryAfter(2)]
        await limiter.process_request(
            rec, (3, "edit"), {}, "editMessageText", {"chat_id": 3, "message_id": 1}, None
        )
        await waiting
        assert rec.times(3) == pytest.approx([2.1 + M, 2.1 + M])

    run(scenario())


def test_a_429_without_a_chat_pauses_everything() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        rec.failures[None] = [RetryAfter(timedelta(seconds=3))]
        first = asyncio.create_task(send(limiter, rec, None, endpoint="answerInlineQuery"))
        await asyncio.sleep(0.1)
        await asyncio.gather(send(limiter, rec, 9), send(limiter, rec, -9), first)
        assert rec.times() == pytest.approx([3 + M] * 3)

    run(scenario())


def test_a_429_that_persists_is_raised_after_max_retries() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(max_retries=3), Recorder()
        rec.failures[1] = [RetryAfter(1) for _ in range(4)]
        with pytest.raises(RetryAfter):
            await send(limiter, rec, 1)
        assert rec.attempts == 4 and limiter.stats.retries_429 == 3
        assert limiter.stats.gave_up == 1 and limiter.stats.sent == 0
        await send(limiter, rec, 1)  # the chat is usable again once the last pause is over
        assert rec.times(1) == pytest.approx([4 + 4 * M])

    run(scenario())


# -- network errors ------------------------------------------------------------------------------


def test_transport_failures_are_retried_with_backoff() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        rec.failures[1] = [TimedOut(), NetworkError("Bad Gateway"), NetworkError("httpx.Connect")]
        assert await send(limiter, rec, 1) is True
        # Backoffs of 0.5, 1 and 2 s; a try may have reached Telegram, so each retry also waits
        # for its turn in the chat's window: 0 -> 1.02 -> 2.04 -> 4.04.
        assert rec.times(1) == pytest.approx([2 * (1 + M) + 2])
        assert limiter.stats.retries_network == 3 and limiter.stats.gave_up == 0

    run(scenario())


def test_backoff_has_a_cap_and_jitter() -> None:
    limiter = ChatRateLimiter(backoff_cap_s=3.0, jitter=lambda: 0.0)
    assert [limiter._backoff(r) for r in (1, 2, 3, 4, 5)] == [0.25, 0.5, 1.0, 1.5, 1.5]


@pytest.mark.parametrize(
    "refusal",
    [
        BadRequest("Bad Request: chat not found"),
        Forbidden("Forbidden: bot was blocked by the user"),
        ChatMigrated(-100123),
    ],
    ids=lambda e: type(e).__name__,
)
def test_answers_from_telegram_are_not_retried(refusal: Exception) -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(), Recorder()
        rec.failures[2] = [refusal]
        with pytest.raises(type(refusal)):
            await send(limiter, rec, 2)
        assert rec.attempts == 1 and limiter.stats.retries_network == 0

    run(scenario())


def test_transport_failures_are_raised_after_max_retries() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(max_retries=3), Recorder()
        rec.failures[3] = [TimedOut() for _ in range(10)]
        with pytest.raises(TimedOut):
            await send(limiter, rec, 3)
        assert rec.attempts == 4 and limiter.stats.gave_up == 1

    run(scenario())


# -- state ---------------------------------------------------------------------------------------


def test_idle_chats_are_forgotten() -> None:
    async def scenario() -> None:
        limiter, rec = make_limiter(min_chats_kept=100), Recorder()
        for wave in range(10):
            await asyncio.gather(*(send(limiter, rec, 1 + wave * 1000 + i) for i in range(90)))
            await asyncio.sleep(1.1)
        assert len(limiter._chats) <= 200  # 900 chats seen
        assert violations(rec.times(), LIMITS.overall) == []

    run(scenario())


def test_a_chat_in_backoff_is_not_forgotten() -> None:
    """Dropping it would give the retry a fresh window beside a newer message to the chat."""

    async def scenario() -> None:
        limiter, rec = make_limiter(min_chats_kept=10, backoff_base_s=5.0), Recorder()
        rec.failures[1] = [TimedOut()]
        retried = asyncio.create_task(send(limiter, rec, 1, "retried"))
        await asyncio.sleep(2)  # in backoff until 5 s; its window has long emptied
        await asyncio.gather(*(send(limiter, rec, 100 + i) for i in range(30)))  # sweeps
        queued = asyncio.create_task(send(limiter, rec, 1, "queued"))
        await asyncio.gather(retried, queued)
        assert rec.labels(1) == ["retried", "queued"]
        assert violations(rec.times(1), LIMITS.private_chat) == []

    run(scenario())


def test_all_limits_hold_under_random_traffic_and_failures() -> None:
    chats = st.sampled_from([1, 2, 3, -10, -11, "@channel"])
    event = st.tuples(
        st.floats(0, 5, allow_nan=False),
        chats,
        st.sampled_from(["sendMessage", "sendMediaGroup", "editMessageText"]),
        st.sampled_from([None, None, None, "429", "timeout"]),
    )

    @settings(max_examples=60, deadline=None)
    @given(st.lists(event, max_size=60))
    def check(plan: list[tuple[float, Any, str, str | None]]) -> None:
        async def scenario() -> None:
            limiter, rec = make_limiter(jitter=lambda: 0.3), Recorder()
            for _at, chat, _, failure in plan:
                if failure == "429":
                    rec.failures.setdefault(chat, []).append(RetryAfter(1))
                elif failure == "timeout":
                    rec.failures.setdefault(chat, []).append(TimedOut())

            async def one(at: float, chat: Any, endpoint: str) -> None:
                await asyncio.sleep(at)
                if endpoint == "sendMediaGroup" and not is_group_chat(chat):
                    endpoint = "sendMessage"  # see test_album_to_a_private_chat_takes_the_window
                media = {"media": [1, 2, 3]} if endpoint == "sendMediaGroup" else {}
                with contextlib.suppress(RetryAfter, TimedOut):  # given up: that is allowed
                    await send(limiter, rec, chat, endpoint, endpoint, **media)

            await asyncio.gather(*(one(at, chat, ep) for at, chat, ep, _ in plan))
            sends = [(t, c) for t, c, ep in rec.calls if ep != "editMessageText"]
            assert violations([t for t, _ in sends], LIMITS.overall) == []
            for chat in {c for _, c in sends}:
                own = [t for t, c in sends if c == chat]
                assert violations(own, LIMITS.chat_window(chat)) == []

        run(scenario())

    check()


# -- real time -----------------------------------------------------------------------------------


async def test_real_clock_and_sleep_by_default() -> None:
    limits = LIMITS.scaled(0.02)  # 1 message per 20 ms per private chat
    limiter, rec = ChatRateLimiter(limits, margin_s=0.002), Recorder()
    started = time.monotonic()
    await asyncio.gather(*(send(limiter, rec, 42) for _ in range(5)))
    assert time.monotonic() - started >= 4 * limits.private_chat.window_s  # sleeps never end early


def test_restamp_moves_the_latest_events() -> None:
    w = SlidingWindow(2, 1.0)
    w.record(0.0)
    w.record(0.5)
    w.restamp(0.8)
    assert w.delay(1.0) == pytest.approx(0.0)  # 0.0 has left; 0.8 is the only one that counts
    assert w.delay(1.0, cost=2) == pytest.approx(0.8)


def test_a_slow_send_spaces_the_next_from_its_answer() -> None:
    """The request may reach Telegram late (a busy loop, a slow network): the chat's next
    message waits a full window from the answer, not from when the slot was taken."""

    async def scenario() -> None:
        limiter = make_limiter()
        arrivals: list[float] = []
        latencies = [0.4, 0.0, 0.0]  # the first request is slow on its way, the rest are not

        async def slow_then_arrive(chat_id: Any, label: Any = None, cost: int = 1) -> bool:
            await asyncio.sleep(latencies[len(arrivals)])
            arrivals.append(now())  # it arrives just before the answer comes back
            return True

        await asyncio.gather(
            *(
                limiter.process_request(
                    slow_then_arrive, (42,), {}, "sendMessage", {"chat_id": 42}, None
                )
                for _ in range(3)
            )
        )
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert all(gap >= 1.0 for gap in gaps), gaps

    run(scenario())


def test_restamp_at_moves_an_event_recorded_before_others() -> None:
    w = SlidingWindow(3, 1.0)
    for t in (0.0, 0.1, 0.2):
        w.record(t)
    w.restamp_at(0.0, 0.5)  # answered after the two others were recorded
    assert w.delay(1.05) == pytest.approx(0.05)  # 0.1 leaves at 1.1
    assert w.delay(1.05, cost=3) == pytest.approx(0.45)  # the moved one leaves at 1.5
    w.restamp_at(9.0, 1.2)  # never recorded (or long forgotten): added, on the safe side
    assert w.delay(1.3, cost=3) == pytest.approx(0.9)


def test_slow_requests_do_not_crowd_the_overall_window() -> None:
    """Thirty messages whose requests reach Telegram late (a busy loop) and thirty that go
    fast: the fast ones must not land within a second of the slow ones' arrival (counting the
    overall window from when the slots were taken would send them 0.3 s too early)."""

    async def scenario() -> None:
        limiter = make_limiter(margin_s=0.0)
        arrivals: list[float] = []

        async def arrive(chat_id: int, label: Any = None, cost: int = 1) -> bool:
            await asyncio.sleep(0.3 if chat_id < 30 else 0.0)
            arrivals.append(now())
            return True

        await asyncio.gather(
            *(
                limiter.process_request(arrive, (chat,), {}, "sendMessage", {"chat_id": chat}, None)
                for chat in range(60)
            )
        )
        assert len(arrivals) == 60
        assert violations(arrivals, LIMITS.overall) == []
        assert max(arrivals) == pytest.approx(1.3)  # and no later than that

    run(scenario())
