"""Telegram's rate limits as the stand-in enforces them: sliding windows over accepted sends.

Windows are checked when a request arrives. A batch larger than a window (an album of 10 in a
private chat allowing 1 per second) is accepted into an empty window, as Telegram delivers albums
whole, and then fills it. ``tolerance_s`` forgives loopback jitter at the window's edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.limits import RateWindow, TelegramLimits


@dataclass
class LoggedRequest:
    t: float  # on the sandbox clock
    method: str
    chat_id: int | str | None
    status: int  # 0: the connection was dropped
    messages: int  # how many messages it put into the chat (0 unless accepted)


def _slack(window: RateWindow, tolerance_s: float) -> float:
    return min(tolerance_s, window.window_s * 0.2)


def retry_after(
    log: Sequence[LoggedRequest],
    limits: TelegramLimits,
    chat_id: int | str,
    cost: int,
    now: float,
    tolerance_s: float,
) -> int | None:
    """Whole seconds (at least 1) until ``cost`` more messages to ``chat_id`` fit every window,
    or None if they fit now."""
    waits: list[float] = []
    accepted = [r for r in log if r.messages]
    for window, relevant in (
        (limits.overall, accepted),
        (limits.chat_window(chat_id), [r for r in accepted if r.chat_id == chat_id]),
    ):
        start = now - window.window_s + _slack(window, tolerance_s)
        times = sorted(
            r.t for r in relevant if r.t > start for _ in range(min(r.messages, window.n))
        )
        effective = min(cost, window.n)
        excess = len(times) + effective - window.n
        if excess > 0:
            # The excess-th oldest message must leave the window first.
            waits.append(times[excess - 1] + window.window_s - now)
    if not waits:
        return None
    return max(1, math.ceil(max(waits)))


def violations(
    log: Sequence[LoggedRequest], limits: TelegramLimits, tolerance_s: float
) -> list[str]:
    """Every window in which more messages were accepted than the limits allow."""
    found: list[str] = []
    series: dict[str, tuple[RateWindow, list[float]]] = {"overall": (limits.overall, [])}
    for r in log:
        if not r.messages or r.status != 200 or r.chat_id is None:
            continue
        chat = limits.chat_window(r.chat_id)
        series["overall"][1].extend([r.t] * min(r.messages, limits.overall.n))
        series.setdefault(f"chat {r.chat_id}", (chat, []))[1].extend(
            [r.t] * min(r.messages, chat.n)
        )
    for key, (window, times) in series.items():
        times.sort()
        slack = _slack(window, tolerance_s)
        for i in range(len(times) - window.n):
            span = times[i + window.n] - times[i]
            if span < window.window_s - slack:
                found.append(
                    f"{key}: {window.n + 1} messages within {span:.3f}s "
                    f"(limit {window.n} per {window.window_s}s)"
                )
                break
    return found
