"""Faults on request: the network and Telegram failing the way they do in production."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from bot.limits import counts_toward_limits

FaultKind = Literal["5xx", "timeout", "drop"]
ALL_KINDS: tuple[FaultKind, ...] = ("5xx", "timeout", "drop")


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
        self.kinds: tuple[FaultKind, ...] = ALL_KINDS
        self.methods: frozenset[str] | None = None
        self.random = random.Random(0)

    def take(self, method: str, chat_id: object) -> Fault | None:
        for fault in self.queued:
            if fault.remaining > 0 and fault.matches(method, chat_id):
                fault.remaining -= 1
                return fault
        if (
            self.rate
            and (self.methods is None or method in self.methods)
            and self.random.random() < self.rate
        ):
            return Fault(self.random.choice(self.kinds), 1)
        return None

    def clear(self) -> None:
        self.queued.clear()
        self.rate = 0.0
