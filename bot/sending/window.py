"""The sliding window: at most ``n`` events in any ``window_s`` seconds (pure, clock passed in)."""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    def __init__(self, n: int, window_s: float) -> None:
        self.n = n
        self.window_s = window_s
        self._times: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()

    def delay(self, now: float, cost: int = 1) -> float:
        """Seconds to wait until ``cost`` more events fit (0 if they fit now)."""
        self._prune(now)
        cost = min(cost, self.n)  # a batch larger than the window waits for an empty window
        excess = len(self._times) + cost - self.n
        if excess <= 0:
            return 0.0
        return max(0.0, self._times[excess - 1] + self.window_s - now)

    def record(self, now: float, cost: int = 1) -> None:
        self._times.extend([now] * min(cost, self.n))

    def idle(self, now: float) -> bool:
        self._prune(now)
        return not self._times
