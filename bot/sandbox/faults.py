"""Faults on request: the network and Telegram failing the way they do in production."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from bot.limits import counts_toward_limits

FaultKind = Literal["5xx", "timeout", "drop"]
ALL_KINDS: tuple[FaultKind, ...] = ("5xx", "timeout", "drop")
# What a random fault may be: besides the network's, a burst of 429s on one chat.
RandomKind = FaultKind | Literal["429"]


@dataclass
class Fault:
    kind: FaultKind | Literal["429"]
    remaining: int
    method: str | None = None
    chat_id: int | None = None
    retry_after: int = 1

    def matches(self, method: str, chat_id: object) -> bool:
        if self.method is not None and self.method.lower() != method.lower():
            return False
        if self.kind == "429" and not counts_toward_limits(method):
            return False
        return self.chat_id is None or self.chat_id == chat_id


class FaultPlan:
    """Queued faults for the next matching calls, then random ones at a given rate."""

    def __init__(self) -> None:
        self.queued: list[Fault] = []
        self.rate = 0.0
        self.kinds: tuple[RandomKind, ...] = ALL_KINDS
        self.methods: frozenset[str] | None = None
        self.random = random.Random(0)
        # A random "429" answers this many messages to the chat in a row with ``retry_after``.
        self.burst_429 = 1
        self.retry_after = 1
        # Every fault dealt, in order: (method, chat_id, kind), for a test to account for.
        self.dealt: list[tuple[str, object, str]] = []

    def take(self, method: str, chat_id: object) -> Fault | None:
        fault = self._next(method, chat_id)
        if fault is not None:
            self.dealt.append((method, chat_id, fault.kind))
        return fault

    def _next(self, method: str, chat_id: object) -> Fault | None:
        for fault in self.queued:
            if fault.remaining > 0 and fault.matches(method, chat_id):
                fault.remaining -= 1
                return fault
        if (
            self.rate
            and (self.methods is None or method in self.methods)
            and self.random.random() < self.rate
        ):
            kind = self.random.choice(self.kinds)
            if kind != "429":
                return Fault(kind, 1)
            if not counts_toward_limits(method) or not isinstance(chat_id, int):
                return Fault("5xx", 1)  # Telegram's 429s are about messages to a chat
            rest = self.burst_429 - 1
            if rest:
                self.queued.append(Fault("429", rest, None, chat_id, self.retry_after))
            return Fault("429", 1, None, chat_id, self.retry_after)
        return None

    def clear(self) -> None:
        self.queued.clear()
        self.rate = 0.0
