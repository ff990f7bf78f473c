"""The 晾晒 formula (DESIGN.md §4) against cases computed by hand.

score = 100 × (0.5 × C/A + 0.5 × T/D) − 5 × O, clipped to 0..100; ties: fewer overdue, fewer
average days, then the name; top third green, bottom third red, the rest yellow; overdue more
than 7 days: red; fewer than the minimum sample assigned: listed apart.
"""

import itertools
from pathlib import Path
from typing import Any

import pytest

from bot.rules import Ranking as RankingRules
from bot.rules import load_rules
from bot.services.ranking import (
    Change,
    ChangeKind,
    Code,
    SubjectCounts,
    rank_changes,
    rank_subjects,
    score,
)
from bot.settings import ConfigError

DEFAULT = RankingRules()
G, Y, R = Code.green, Code.yellow, Code.red
_ids = itertools.count(1)


def c(
    name: str,
    a: int,
    closed: int,
    t: int,
    d: int,
    o: int = 0,
    *,
    longest: float = 0.0,
    days: float | None = None,
) -> SubjectCounts:
    """Counts as the formula names them: A assigned, C closed, T on time, D due, O overdue;
    ``days`` the total days to rectify (default: 2 per closed problem)."""
    return SubjectCounts(
        next(_ids),
        name,
        assigned=a,
        closed=closed,
        closed_on_time=t,
        due=d,
        overdue=o,
        longest_overdue_days=longest,
        rectify_days_total=2.0 * closed if days is None else days,
    )


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # 100 × (0.5 × 3/4 + 0.5 × 2/4) − 5 × 1 = 62.5 − 5
        (c("x", 4, 3, 2, 4, 1), 57.5),
        (c("x", 10, 10, 10, 10), 100.0),
        # nothing due yet: the on-time rate counts as full; 100 × (0 + 0.5)
        (c("x", 5, 0, 0, 0), 50.0),
        # all three overdue: 0 + 0 − 15, clipped to 0
        (c("x", 3, 0, 0, 3, 3), 0.0),
        # 100 × (0.5 × 2/2 + 0.5 × 1/2)
        (c("x", 2, 2, 1, 2), 75.0),
        # 2/3 and 2/3: 66.666… is printed, and judged, as 66.7
        (c("x", 3, 2, 2, 3), 66.7),
        # one closed late, one open overdue: 100 × (0.5 × 1/2 + 0.5 × 0/2) − 5
        (c("x", 2, 1, 0, 2, 1), 20.0),
        # nothing assigned (ranked only when the minimum sample is 0): both rates full
        (c("x", 0, 0, 0, 0), 100.0),
    ],
)
def test_score(counts: SubjectCounts, expected: float) -> None:
    assert score(counts, DEFAULT) == expected


def _table(rows: list[SubjectCounts], rules: RankingRules = DEFAULT) -> list[tuple[Any, ...]]:
    standings = rank_subjects(rows, rules)
    return [(r.name, r.rank, r.score, r.code) for r in standings.ranked]


def test_order_and_codes_by_thirds() -> None:
    rows = [
        c("f", 10, 5, 5, 5),  # 100 × (0.25 + 0.5) = 75
        c("a", 10, 10, 10, 10),  # 100
        c("e", 10, 6, 6, 6),  # 80
        c("b", 10, 9, 9, 9),  # 95
        c("d", 10, 7, 7, 7),  # 85
        c("c", 10, 8, 8, 8),  # 90
    ]
    assert _table(rows) == [
        ("a", 1, 100.0, G),
        ("b", 2, 95.0, G),
        ("c", 3, 90.0, Y),
        ("d", 4, 85.0, Y),
        ("e", 5, 80.0, R),
        ("f", 6, 75.0, R),
    ]


@pytest.mark.parametrize(
    ("n", "codes"),
    [
        (1, [Y]),
        (2, [Y, Y]),
        (3, [G, Y, R]),
        (4, [G, Y, Y, R]),
        (5, [G, Y, Y, Y, R]),
        (6, [G, G, Y, Y, R, R]),
        (7, [G, G, Y, Y, Y, R, R]),
        (9, [G, G, G, Y, Y, Y, R, R, R]),
    ],
)
def test_thirds(n: int, codes: list[Code]) -> None:
    rows = [c(f"s{i}", 10, 10 - i, 10 - i, 10 - i) for i in range(n)]
    assert [code for *_, code in _table(rows)] == codes


def test_ties_fewer_overdue_then_fewer_days_then_name() -> None:
    rows = [
        # 95 − 5 = 90 with one overdue
        c("overdue", 20, 19, 19, 20, 1),
        # 100 × (0.4 + 0.5) = 90 with none overdue: ahead
        c("clean", 10, 8, 8, 8),
        # 100 with 5 days on average, against 100 with 2: behind
        c("slow", 2, 2, 2, 2, days=10.0),
        c("quick", 2, 2, 2, 2, days=4.0),
    ]
    assert [(name, rank) for name, rank, *_ in _table(rows)] == [
        ("quick", 1),
        ("slow", 2),
        ("clean", 3),
        ("overdue", 4),
    ]


def test_a_full_tie_shares_the_rank_and_the_code_and_is_listed_by_name() -> None:
    rows = [c("甲镇", 4, 4, 4, 4), c("乙镇", 4, 4, 4, 4), c("丙镇", 4, 2, 2, 2)]
    # '乙' (U+4E59) sorts before '甲' (U+7532); the name orders the list but is no merit.
    assert _table(rows) == [
        ("乙镇", 1, 100.0, G),
        ("甲镇", 1, 100.0, G),
        ("丙镇", 3, 75.0, R),
    ]


def test_a_tie_across_the_boundary_takes_the_better_code() -> None:
    rows = [
        c("a", 10, 10, 10, 10),  # 100
        c("b", 10, 8, 8, 8),  # 90
        c("c", 10, 8, 8, 8),  # 90: tied with b at rank 2, so green like b
        c("d", 10, 6, 6, 6),  # 80
        c("e", 10, 4, 4, 4),  # 70
        c("f", 10, 2, 2, 2),  # 60
    ]
    assert [(name, rank, code) for name, rank, _, code in _table(rows)] == [
        ("a", 1, G),
        ("b", 2, G),
        ("c", 2, G),
        ("d", 4, Y),
        ("e", 5, R),
        ("f", 6, R),
    ]


def test_no_closed_problem_ranks_after_any_number_of_days() -> None:
    # Both score 50 with none overdue: 100 × (0.5 × 0/4 + 0.5 × full) and 100 × (0.25 + 0.25).
    rows = [c("none closed", 4, 0, 0, 0), c("slow but closing", 4, 2, 1, 2, days=60.0)]
    standings = rank_subjects(rows, DEFAULT)
    assert [(r.name, r.score) for r in standings.ranked] == [
        ("slow but closing", 50.0),
        ("none closed", 50.0),
    ]
    assert [r.counts.average_rectify_days for r in standings.ranked] == [30.0, None]


def test_empty_subjects_and_the_minimum_sample() -> None:
    rows = [c("empty", 0, 0, 0, 0), c("one", 1, 1, 1, 1), c("two", 2, 1, 1, 1)]
    standings = rank_subjects(rows, DEFAULT)
    assert [r.name for r in standings.ranked] == ["one", "two"]
    assert [(r.name, r.rank, r.score, r.code) for r in standings.apart] == [
        ("empty", None, None, None)
    ]
    reason = standings.apart[0].reasons[0]
    assert (reason.kind, dict(reason.values)) == ("below_min_sample", {"assigned": 0, "min": 1})

    strict = RankingRules(min_sample=2)
    standings = rank_subjects(rows, strict)
    assert [r.name for r in standings.ranked] == ["two"]
    assert [r.name for r in standings.apart] == ["empty", "one"]  # by name

    everyone = RankingRules(min_sample=0)
    # "empty" scores 100 (nothing to count is no failure) but has no days: after "one"
    assert [(r.name, r.score) for r in rank_subjects(rows, everyone).ranked] == [
        ("one", 100.0),
        ("empty", 100.0),
        ("two", 75.0),
    ]


def test_no_subjects_at_all() -> None:
    standings = rank_subjects([], DEFAULT)
    assert standings.ranked == [] and standings.apart == []


def test_overdue_more_than_seven_days_is_red_whatever_the_rank() -> None:
    rows = [
        # first by score (100 × (0.5 × 0.9 + 0.5 × 0.9) − 5 = 85) but 7.5 days overdue
        c("top", 10, 9, 9, 10, 1, longest=7.5),
        c("second", 10, 8, 8, 9, 1, longest=7.0),  # exactly 7 days: not more than 7
        c("third", 10, 5, 5, 6, 1, longest=1.0),
    ]
    standings = rank_subjects(rows, DEFAULT)
    top, second, third = standings.ranked
    assert (top.name, top.rank, top.code) == ("top", 1, R)
    assert [(r.kind, dict(r.values)) for r in top.reasons] == [
        ("top_third", {"rank": 1, "n": 3}),
        ("overdue_over", {"days": 7, "limit": 7}),
    ]
    assert (second.name, second.code) == ("second", Y)
    assert (third.name, third.code) == ("third", R)
    assert [r.kind for r in third.reasons] == ["bottom_third"]


def test_an_unranked_subject_with_a_long_overdue_problem_is_still_red() -> None:
    rows = [c("small", 1, 0, 0, 1, 1, longest=12.0), c("big", 5, 5, 5, 5)]
    standings = rank_subjects(rows, RankingRules(min_sample=2))
    (small,) = standings.apart
    assert small.rank is None and small.code is R
    assert [r.kind for r in small.reasons] == ["below_min_sample", "overdue_apart", "overdue_over"]


def test_an_unranked_subject_with_overdue_problems_says_so() -> None:
    """Nothing assigned in the window, but problems carried over and overdue: listed apart,
    never clean; red only beyond the override's days."""
    rows = [c("carried", 0, 0, 0, 0, 2, longest=3.0), c("quiet", 0, 0, 0, 0), c("big", 5, 5, 5, 5)]
    standings = rank_subjects(rows, DEFAULT)
    carried, quiet = standings.apart
    assert (carried.name, carried.code) == ("carried", None)
    assert [(r.kind, dict(r.values)) for r in carried.reasons] == [
        ("below_min_sample", {"assigned": 0, "min": 1}),
        ("overdue_apart", {"overdue": 2}),
    ]
    assert [r.kind for r in quiet.reasons] == ["below_min_sample"]
    late = rank_subjects([c("carried", 0, 0, 0, 0, 2, longest=8.0)], DEFAULT).apart[0]
    assert late.code is R


# Each weight and threshold changed in a rules file's `ranking` section, one at a time.
SAMPLE = c("x", 4, 2, 1, 3, 1, longest=4.0)  # closure 2/4, on time 1/3, one overdue 4 days


@pytest.mark.parametrize(
    ("section", "expected_score", "expected_code_alone"),
    [
        # defaults: 100 × (0.5 × 0.5 + 0.5 × 0.333…) − 5 = 36.666… → 36.7
        ("{}", 36.7, Y),
        # closure only: 100 × 0.5 − 5
        ("{weight_closure: 1.0, weight_on_time: 0}", 45.0, Y),
        # on time only: 100 × 0.333… − 5
        ("{weight_closure: 0, weight_on_time: 1.0}", 28.3, Y),
        # 100 × (0.7 × 0.5 + 0.3 × 0.333…) − 5 = 45 − 5
        ("{weight_closure: 0.7, weight_on_time: 0.3}", 40.0, Y),
        # no penalty: 41.666… → 41.7
        ("{overdue_penalty: 0}", 41.7, Y),
        # 41.666… − 20
        ("{overdue_penalty: 20}", 21.7, Y),
        # 4 days overdue is more than 3: red, alone at rank 1
        ("{red_if_overdue_days: 3}", 36.7, R),
    ],
)
def test_every_weight_comes_from_the_rules_file(
    tmp_path: Path, section: str, expected_score: float, expected_code_alone: Code
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f"ranking: {section}\n", encoding="utf-8")
    rules = load_rules(path).ranking
    standings = rank_subjects([SAMPLE], rules)
    (row,) = standings.ranked
    assert (row.score, row.code) == (expected_score, expected_code_alone)


def test_minimum_sample_and_window_from_the_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[ranking]\nmin_sample = 5\nwindow = "month"\n', encoding="utf-8")
    rules = load_rules(path).ranking
    assert rules.window == "month" and rules.min_sample == 5
    standings = rank_subjects([SAMPLE], rules)
    assert standings.ranked == [] and [r.name for r in standings.apart] == ["x"]


@pytest.mark.parametrize(
    "section",
    ["{window: decade}", "{min_sample: -1}", "{overdue_penalty: -5}", "{weight_closure: -0.5}"],
)
def test_bad_ranking_rules_stop_start_up(tmp_path: Path, section: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f"ranking: {section}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="ranking"):
        load_rules(path)


def test_changes_since_the_previous_post() -> None:
    rows = [c("a", 4, 4, 4, 4), c("b", 4, 3, 3, 3), c("c", 4, 2, 2, 2), c("d", 4, 1, 1, 1)]
    standings = rank_subjects(rows, DEFAULT)
    a, b, cc, d = (r.subject_id for r in standings.ranked)
    previous = {a: 3, b: 1, cc: None}  # c was listed apart; d was not there at all
    assert rank_changes(standings, previous) == {
        a: Change(ChangeKind.up, 2),
        b: Change(ChangeKind.down, 1),
        cc: Change(ChangeKind.new),
        d: Change(ChangeKind.new),
    }
    assert rank_changes(standings, {a: 1, b: 2})[a] == Change(ChangeKind.same)
    assert rank_changes(standings, None) == {}  # the first post: no arrows at all
