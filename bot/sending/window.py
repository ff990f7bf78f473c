"""The sliding window: at most ``n`` events in any ``window_s`` seconds (pure; clock passed in).

Not a leaky bucket: Telegram's stand-in counts the events of the last ``window_s`` seconds, so a
group that took 20 messages at once gets its 21st a full minute later, not 3 seconds later.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def wait_needed(past: Sequence[float], n: int, window_s: float, now: float, cost: int = 1) -> float:
    """Seconds from ``now`` until ``cost`` more events fit beside ``past`` (ascending times).

    The window is half-open: an event exactly ``window_s`` after another no longer overlaps it.
    A batch larger than ``n`` waits for an empty window (Telegram would refuse it otherwise).
    """
    live = [t for t in past if t > now - window_s]
    excess = len(live) + min(cost, n) - n
    if excess <= 0:
        return 0.0
    # The oldest ``excess`` events must leave: the last of them leaves at its time + window_s.
    return max(0.0, live[excess - 1] + window_s - now)


class SlidingWindow:
    """The last ``n`` event times of one key, and how long the next events must wait."""

    __slots__ = ("_times", "n", "window_s")

    def __init__(self, n: int, window_s: float) -> None:
        self.n = n
        self.window_s = window_s
        # Ascending, at most n: older events can never matter again.
        self._times: list[float] = []

    def _prune(self, now: float) -> None:
        cut = bisect.bisect_right(self._times, now - self.window_s)
        if cut:
            del self._times[:cut]

    def _add(self, at: float, cost: int) -> None:
        for _ in range(min(cost, self.n)):
            bisect.insort(self._times, at)
        if len(self._times) > self.n:
            del self._times[: len(self._times) - self.n]

    def delay(self, now: float, cost: int = 1) -> float:
        """Seconds to wait until ``cost`` more events fit (0 if they fit now)."""
        self._prune(now)
        return wait_needed(self._times, self.n, self.window_s, now, cost)

    def record(self, now: float, cost: int = 1) -> None:
        self._add(now, cost)

    def restamp(self, now: float, cost: int = 1) -> None:
        """Move the latest ``cost`` events to ``now``: the caller learnt they happened later
        than first recorded. Only valid while no other event was recorded after them."""
        k = min(cost, self.n, len(self._times))
        if k:
            del self._times[-k:]
        self._add(now, k)

    def restamp_at(self, recorded: float, now: float, cost: int = 1) -> None:
        """Move ``cost`` events recorded at ``recorded`` to ``now``, whatever was recorded since
        (events with equal times are interchangeable). One that was already forgotten is added
        back at ``now``: later is the safe side."""
        for _ in range(min(cost, self.n)):
            i = bisect.bisect_left(self._times, recorded)
            if i < len(self._times) and self._times[i] == recorded:
                del self._times[i]
        self._add(now, cost)

    def idle(self, now: float) -> bool:
        """True when no past event still counts: the key's state can be dropped."""
        self._prune(now)
        return not self._times
