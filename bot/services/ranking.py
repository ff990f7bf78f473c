"""晾晒: the ranking as a pure function from each subject's counts to rows (DESIGN.md §4).

    closure rate (整改率) = C / A         on-time rate (按期率) = T / D
    score = 100 × (w_closure × closure + w_on_time × on_time) − penalty × O, clipped to 0..100

A counts the problems assigned to the subject in the window (rejected ones excluded), C those
closed, T those closed on time, D those closed or past their deadline. O counts every problem of
the subject open and overdue now that was assigned before the window's end, including those
assigned before it began (a problem carried over into a new year still counts against its town).
A rate with nothing to count (A or D of 0) is shown as "—" and counts as full in the score: a
problem not yet due does not count against anyone. Ties: fewer overdue, then fewer average days
to rectify, then the name. Subjects tied on all three share a rank and a code: the name orders
the listing but is no merit. Codes: the top third by rank green, the bottom third red, the rest
yellow; any problem overdue more than ``red_if_overdue_days`` makes the subject red whatever its
rank. A subject with fewer assigned problems than ``min_sample`` is listed apart, not ranked;
if it has overdue problems (carried over from before the window) the listing says so, and the
red override applies to it too: too few new problems to rank is never a clean sheet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.rules import Ranking as RankingRules


class Code(StrEnum):
    green = "green"  # 绿
    yellow = "yellow"  # 黄
    red = "red"  # 红


@dataclass(frozen=True)
class SubjectCounts:
    """What the ranking needs of one subject over one window."""

    subject_id: int
    name: str
    area_code: str = ""
    assigned: int = 0  # A
    closed: int = 0  # C
    closed_on_time: int = 0  # T
    due: int = 0  # D: closed, or open past the deadline
    overdue: int = 0  # O: open past the deadline (also those assigned before the window)
    longest_overdue_days: float = 0.0
    rectify_days_total: float = 0.0  # over the C closed ones: assigned → accepted submission

    @property
    def closure_rate(self) -> float | None:
        return self.closed / self.assigned if self.assigned else None

    @property
    def on_time_rate(self) -> float | None:
        return self.closed_on_time / self.due if self.due else None

    @property
    def average_rectify_days(self) -> float | None:
        return round(self.rectify_days_total / self.closed, 1) if self.closed else None


REASON_KINDS = (
    "top_third",
    "middle",
    "bottom_third",
    "overdue_over",
    "below_min_sample",
    "overdue_apart",
)


@dataclass(frozen=True)
class Reason:
    """Why a subject got its code (or was not ranked), for people to read."""

    kind: str  # one of REASON_KINDS
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RankingRow:
    counts: SubjectCounts
    score: float | None  # None: listed apart
    rank: int | None
    code: Code | None
    reasons: tuple[Reason, ...] = ()

    @property
    def subject_id(self) -> int:
        return self.counts.subject_id

    @property
    def name(self) -> str:
        return self.counts.name


@dataclass(frozen=True)
class Standings:
    ranked: list[RankingRow]  # by rank, then name
    apart: list[RankingRow]  # below the minimum sample: red, then overdue, then the rest; by name
    rules: RankingRules

    def row(self, subject_id: int) -> RankingRow | None:
        return next((r for r in self.ranked + self.apart if r.subject_id == subject_id), None)

    def count(self, code: Code) -> int:
        return sum(1 for r in self.ranked + self.apart if r.code is code)


def score(counts: SubjectCounts, rules: RankingRules) -> float:
    """The score, rounded to the one decimal that is printed (ties are judged on it)."""
    closure = counts.closure_rate
    on_time = counts.on_time_rate
    raw = (
        100
        * (
            rules.weight_closure * (1.0 if closure is None else closure)
            + rules.weight_on_time * (1.0 if on_time is None else on_time)
        )
        - rules.overdue_penalty * counts.overdue
    )
    return round(min(100.0, max(0.0, raw)), 1)


def _merit(score_: float, counts: SubjectCounts) -> tuple[float, int, float]:
    """What decides the order: higher score, fewer overdue, fewer days (none closed: last)."""
    days = counts.average_rectify_days
    return (-score_, counts.overdue, float("inf") if days is None else days)


def _red_override(counts: SubjectCounts, rules: RankingRules) -> Reason | None:
    if counts.overdue and counts.longest_overdue_days > rules.red_if_overdue_days:
        return Reason(
            "overdue_over",
            {"days": int(counts.longest_overdue_days), "limit": rules.red_if_overdue_days},
        )
    return None


def rank_subjects(counts: Iterable[SubjectCounts], rules: RankingRules) -> Standings:
    """Rank the subjects; pure, so that anyone can check it against the printed formula."""
    ranked_counts: list[tuple[float, SubjectCounts]] = []
    apart: list[RankingRow] = []
    for item in counts:
        if item.assigned < rules.min_sample:
            override = _red_override(item, rules)
            reasons = [
                Reason("below_min_sample", {"assigned": item.assigned, "min": rules.min_sample})
            ]
            if item.overdue:  # not ranked, but not clean either: say what is overdue
                reasons.append(Reason("overdue_apart", {"overdue": item.overdue}))
            if override is not None:
                reasons.append(override)
            apart.append(
                RankingRow(item, None, None, Code.red if override else None, tuple(reasons))
            )
        else:
            ranked_counts.append((score(item, rules), item))
    ranked_counts.sort(key=lambda pair: (*_merit(*pair), pair[1].name, pair[1].subject_id))

    n = len(ranked_counts)
    third = n // 3
    rows: list[RankingRow] = []
    rank = 0
    previous: tuple[float, int, float] | None = None
    for position, (score_, item) in enumerate(ranked_counts, start=1):
        merit = _merit(score_, item)
        if merit != previous:  # a full tie keeps the rank of the first of the tie
            rank, previous = position, merit
        if rank <= third:
            code, reasons = Code.green, [Reason("top_third", {"rank": rank, "n": n})]
        elif rank > n - third:
            code, reasons = Code.red, [Reason("bottom_third", {"rank": rank, "n": n})]
        else:
            code, reasons = Code.yellow, [Reason("middle", {"rank": rank, "n": n})]
        override = _red_override(item, rules)
        if override is not None:
            code = Code.red
            reasons.append(override)
        rows.append(RankingRow(item, score_, rank, code, tuple(reasons)))
    # Those with overdue problems first (red ones first of all), so that they stand out.
    apart.sort(key=lambda r: (r.code is not Code.red, not r.counts.overdue, r.name, r.subject_id))
    return Standings(rows, apart, rules)


class ChangeKind(StrEnum):
    up = "up"
    down = "down"
    same = "same"
    new = "new"  # ranked now, not ranked (or not there) last time


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    places: int = 0


def rank_changes(
    standings: Standings, previous: Mapping[int, int | None] | None
) -> dict[int, Change]:
    """Each ranked subject's move since the previous posted ranking (subject id → its rank
    then, None if listed apart); nothing at all when there is no previous ranking."""
    if previous is None:
        return {}
    changes: dict[int, Change] = {}
    for row in standings.ranked:
        before = previous.get(row.subject_id)
        if before is None or row.rank is None:
            changes[row.subject_id] = Change(ChangeKind.new)
        elif row.rank < before:
            changes[row.subject_id] = Change(ChangeKind.up, before - row.rank)
        elif row.rank > before:
            changes[row.subject_id] = Change(ChangeKind.down, row.rank - before)
        else:
            changes[row.subject_id] = Change(ChangeKind.same)
    return changes
