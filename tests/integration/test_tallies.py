"""The ranking's counts from one aggregate query, on SQLite and PostgreSQL, against problems
made through the real services, and against a recount by the pure machine's own definitions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.db import Database
from bot.rules import Ranking as RankingRules
from bot.services import problems as problem_service
from bot.services.problem_machine import closed_on_time, is_overdue
from bot.services.ranking import Code, rank_subjects
from bot.services.tallies import window_counts, window_flows
from bot.services.windows import WindowKind, period
from models import Problem
from tests.stories import SHANGHAI, World, local, make_world, story

NOW = local(2026, 11, 23, 9, 0)  # Monday 09:00 in Shanghai
YEAR = period(WindowKind.year, date(2026, 11, 23), SHANGHAI)
NOVEMBER = period(WindowKind.month, date(2026, 11, 23), SHANGHAI)


async def _history(db: Database) -> World:
    """东桥镇 (NH-DQ) has one problem of each kind; 西山街道 one closed on time; 北湖镇 none."""
    async with db.begin() as s:
        w = await make_world(s)
        # p1 closed on time: 5 days to rectify
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 3, 1, 9),
            ("assign", local(2026, 3, 1), local(2026, 3, 8)),
            ("submit", local(2026, 3, 6)),
            ("pass", local(2026, 3, 7)),
        )
        # p2 closed late: submitted after its deadline, 6 days
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 5, 1, 9),
            ("assign", local(2026, 5, 1), local(2026, 5, 4)),
            ("submit", local(2026, 5, 7)),
            ("pass", local(2026, 5, 8)),
        )
        # p3 open and overdue since 11-10
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 11, 1, 9),
            ("assign", local(2026, 11, 1), local(2026, 11, 10)),
        )
        # p4 open, not yet due: counts against nobody
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 11, 20, 9),
            ("assign", local(2026, 11, 20), local(2026, 11, 30)),
        )
        # p5 assigned, then rejected: excluded
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 6, 1, 9),
            ("assign", local(2026, 6, 1), local(2026, 6, 8)),
            ("reject", local(2026, 6, 2)),
        )
        # p6 assigned last year and still overdue: outside the window's cohort, but open
        # overdue now, so it counts in O (and makes 东桥镇 red)
        await story(
            s, w, "NH-DQ", local(2025, 12, 1, 9), ("assign", local(2025, 12, 1), local(2025, 12, 8))
        )
        # p7 only reported: no subject yet
        await story(s, w, None, local(2026, 11, 22, 9))
        # p8 submitted on time but not yet checked, and the deadline (10-08) has passed: open
        # and past its deadline is overdue (DESIGN.md §3)
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 10, 1, 9),
            ("assign", local(2026, 10, 1), local(2026, 10, 8)),
            ("submit", local(2026, 10, 5)),
        )
        # p9 submitted on time, failed, submitted again late, passed: the accepted one was late
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 9, 1, 9),
            ("assign", local(2026, 9, 1), local(2026, 9, 8)),
            ("submit", local(2026, 9, 5)),
            ("fail", local(2026, 9, 6)),
            ("submit", local(2026, 9, 20)),
            ("pass", local(2026, 9, 21)),
        )
        # p10 extended from 08-04 to 08-20 and submitted on 08-15: on time by the deadline then
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 8, 1, 9),
            ("assign", local(2026, 8, 1), local(2026, 8, 4)),
            ("extend", local(2026, 8, 2), local(2026, 8, 20)),
            ("submit", local(2026, 8, 15)),
            ("pass", local(2026, 8, 16)),
        )
        # 西山街道: one, closed on time
        await story(
            s,
            w,
            "NH-XS",
            local(2026, 4, 1, 9),
            ("assign", local(2026, 4, 1), local(2026, 4, 8)),
            ("submit", local(2026, 4, 2)),
            ("pass", local(2026, 4, 3)),
        )
    return w


@contextmanager
def counting_queries(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)


async def test_counts_of_the_year(db: Database) -> None:
    await _history(db)
    with counting_queries(db) as statements:
        async with db.begin() as s:
            counts = await window_counts(s, YEAR, NOW, SHANGHAI)
    on_problems = [q for q in statements if "FROM problems" in q]
    assert len(on_problems) == 1, statements  # one aggregate, whatever the number of rows
    by_code = {c.area_code: c for c in counts.subjects}
    assert list(by_code) == ["NH-BH", "NH-DQ", "NH-XS"]
    dq = by_code["NH-DQ"]
    # cohort p1 p2 p3 p4 p8 p9 p10: closed p1 p2 p9 p10, on time p1 p10, due p1 p2 p3 p8 p9
    # p10; overdue p3 p8 of the cohort and p6, carried over from 2025
    assert (dq.assigned, dq.closed, dq.closed_on_time, dq.overdue, dq.due) == (7, 4, 2, 3, 6)
    # the oldest overdue deadline is p6's, 2025-12-08 10:00 local: 350 days by the calendar
    # on 11-23 (09:00, though 23 hours short of 350 full days: people count dates)
    assert dq.longest_overdue_days == 350
    # days to rectify (assigned → accepted submission): 5 + 6 + 19 + 14
    assert dq.rectify_days_total == pytest.approx(44, abs=1e-3)
    assert dq.average_rectify_days == 11.0
    xs = by_code["NH-XS"]
    assert (xs.assigned, xs.closed, xs.closed_on_time, xs.overdue, xs.due) == (1, 1, 1, 0, 1)
    bh = by_code["NH-BH"]
    assert (bh.assigned, bh.closed, bh.due, bh.longest_overdue_days) == (0, 0, 0, 0.0)

    standings = rank_subjects(counts.subjects, RankingRules())
    # 西山 100; 东桥 100 × (0.5 × 4/7 + 0.5 × 2/6) − 5 × 3 = 45.2 − 15 = 30.2, red by p6
    assert [(r.name, r.rank, r.score, r.code) for r in standings.ranked] == [
        ("西山街道", 1, 100.0, Code.yellow),
        ("东桥镇", 2, 30.2, Code.red),
    ]
    assert [r.name for r in standings.apart] == ["北湖镇"]


async def test_a_narrower_window_and_a_later_moment(db: Database) -> None:
    await _history(db)
    async with db.begin() as s:
        november = await window_counts(s, NOVEMBER, NOW, SHANGHAI)
        later = await window_counts(s, NOVEMBER, local(2026, 12, 5, 9), SHANGHAI)
    dq = {c.area_code: c for c in november.subjects}["NH-DQ"]
    # cohort p3 p4: p3 overdue and due, p4 not yet; overdue also p8 (October) and p6 (2025)
    assert (dq.assigned, dq.closed, dq.overdue, dq.due) == (2, 0, 3, 1)
    dq_later = {c.area_code: c for c in later.subjects}["NH-DQ"]
    assert (dq_later.overdue, dq_later.due) == (4, 2)  # p4 is past its deadline by then


async def test_the_counts_agree_with_the_machine(db: Database) -> None:
    """Recount every subject from the rows with the pure machine's own definitions."""
    await _history(db)
    async with db.begin() as s:
        counts = {c.subject_id: c for c in (await window_counts(s, YEAR, NOW, SHANGHAI)).subjects}
        rows = (await s.scalars(select(Problem))).all()
        expected: dict[int, list[int]] = {sid: [0, 0, 0, 0, 0] for sid in counts}
        for row in rows:
            state = problem_service.state_of(row)
            if (
                row.subject_id is None
                or row.assigned_at is None
                or row.assigned_at >= YEAR.end
                or row.status == "rejected"
            ):
                continue
            tally = expected[row.subject_id]
            overdue = is_overdue(state, NOW.astimezone(UTC))
            tally[3] += overdue  # overdue now, whenever it was assigned before the end
            if row.assigned_at < YEAR.start:
                continue
            tally[0] += 1
            tally[1] += row.status == "closed"
            tally[2] += closed_on_time(state)
            tally[4] += row.status == "closed" or overdue
    for sid, c in counts.items():
        assert [c.assigned, c.closed, c.closed_on_time, c.overdue, c.due] == expected[sid]


async def test_flows_within_a_window(db: Database) -> None:
    await _history(db)
    async with db.begin() as s:
        flows = await window_flows(s, NOVEMBER, NOW)
        year = await window_flows(s, YEAR, NOW)
        later = await window_flows(s, NOVEMBER, local(2026, 12, 5, 9))
    world_dq = flows.pop(next(k for k in flows if k is not None))
    # November: p3 and p4 reported and assigned there; p7 reported, not yet given to anyone;
    # p3 went overdue on 11-10 (p4's deadline, 11-30, is still to come)
    assert (world_dq.reported, world_dq.assigned, world_dq.closed, world_dq.overdue) == (
        2,
        2,
        0,
        1,
    )
    assert flows[None].reported == 1
    # by December the whole month counts: p4 went overdue on 11-30 too
    assert later[world_dq.subject_id].overdue == 2
    total_closed = sum(f.closed for f in year.values())
    assert total_closed == 5  # p1 p2 p9 p10 and 西山's
    assert sum(f.reported for f in year.values()) == 10  # all but p6 (reported in 2025)
    # gone overdue in 2026: p2 and p9 (closed late), p3 and p8 (open); p6's deadline was in
    # 2025, p10's extended one was met, p1 and 西山's were on time
    assert sum(f.overdue for f in year.values()) == 4


async def test_nothing_at_all(db: Database) -> None:
    async with db.begin() as s:
        counts = await window_counts(s, YEAR, datetime(2026, 11, 23, 1, tzinfo=UTC), SHANGHAI)
        flows = await window_flows(s, YEAR, NOW)
    assert counts.subjects == [] and flows == {}


async def _new_year(db: Database) -> World:
    """January 2027: what was assigned in December 2026 and how it stands on 2027-01-05."""
    async with db.begin() as s:
        w = await make_world(s)
        # 东桥镇: nothing assigned in 2027; one December problem overdue since 12-27 (9 days
        # on 01-05), one December problem closed in January, one not yet due
        await story(
            s, w, "NH-DQ", local(2026, 12, 20, 9), ("assign", local(2026, 12, 20), DEC_27)
        )
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 12, 21, 9),
            ("assign", local(2026, 12, 21), local(2026, 12, 28)),
            ("submit", local(2026, 12, 27)),
            ("pass", local(2027, 1, 2)),
        )
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 12, 22, 9),
            ("assign", local(2026, 12, 22), local(2027, 1, 20)),
        )
        # 北湖镇: nothing in 2027, one December problem overdue since 01-02 (3 days): not red
        await story(
            s,
            w,
            "NH-BH",
            local(2026, 12, 26, 9),
            ("assign", local(2026, 12, 26), local(2027, 1, 2)),
        )
        # 西山街道: a cohort of two in 2027 (one closed on time), and one carried over overdue
        await story(
            s,
            w,
            "NH-XS",
            local(2027, 1, 2, 9),
            ("assign", local(2027, 1, 2), local(2027, 1, 4)),
            ("submit", local(2027, 1, 3)),
            ("pass", local(2027, 1, 3, 15)),
        )
        await story(
            s, w, "NH-XS", local(2027, 1, 3, 9), ("assign", local(2027, 1, 3), local(2027, 1, 4))
        )
        await story(
            s, w, "NH-XS", local(2026, 12, 1, 9), ("assign", local(2026, 12, 1), local(2026, 12, 8))
        )
        # assigned after the December window ended and overdue: never December's
        await story(
            s, w, "NH-BH", local(2027, 1, 1, 9), ("assign", local(2027, 1, 1), local(2027, 1, 3))
        )
    return w


DEC_27 = local(2026, 12, 27)
JAN_5 = local(2027, 1, 5, 10)
YEAR_2027 = period(WindowKind.year, date(2027, 1, 5), SHANGHAI)


async def test_overdue_carried_into_a_new_window_counts_and_turns_red(db: Database) -> None:
    """A town whose December problems are still overdue in January is not clean in January:
    O counts them (and the red override applies) while A, C, T, D and the days to rectify stay
    the window's own."""
    await _new_year(db)
    async with db.begin() as s:
        found = await window_counts(s, YEAR_2027, JAN_5, SHANGHAI)
    counts = {c.area_code: c for c in found.subjects}
    dq, bh, xs = counts["NH-DQ"], counts["NH-BH"], counts["NH-XS"]
    # 东桥镇: no cohort at all, one carried over overdue 9 days (the closed and the not yet due
    # December problems count nowhere)
    assert (dq.assigned, dq.closed, dq.closed_on_time, dq.due, dq.overdue) == (0, 0, 0, 0, 1)
    assert dq.longest_overdue_days == pytest.approx(9.0, abs=1e-3)
    assert dq.rectify_days_total == 0.0
    # 北湖镇: two overdue now (the December one, 3 days, and the January one, 2 days); the
    # January one was assigned in the window: cohort A 1, D 1
    assert (bh.assigned, bh.closed, bh.due, bh.overdue) == (1, 0, 1, 2)
    assert bh.longest_overdue_days == pytest.approx(3.0, abs=1e-3)
    # 西山街道: the cohort of two as without the carried-over problem (A 2, C 1, T 1, D 2 and
    # 1 day to rectify), and O 2: the cohort's 01-04 problem and the one from 12-08
    assert (xs.assigned, xs.closed, xs.closed_on_time, xs.due) == (2, 1, 1, 2)
    assert xs.rectify_days_total == pytest.approx(1.0, abs=1e-3)
    assert xs.overdue == 2
    assert xs.longest_overdue_days == pytest.approx(28.0, abs=1e-3)

    standings = rank_subjects(counts.values(), RankingRules())
    # ranked: 北湖 100 × (0.5 × 0 + 0.5 × 0/1) − 10 → 0, 西山 100 × (0.5 × 1/2 + 0.5 × 1/2) − 10;
    # two ranked: no thirds, so yellow unless overdue more than 7 days
    assert [(r.name, r.score, r.code) for r in standings.ranked] == [
        ("西山街道", 40.0, Code.red),  # red by the 28 days of the carried-over problem
        ("北湖镇", 0.0, Code.yellow),  # 3 days overdue: not red
    ]
    # 东桥镇 is below the minimum sample (nothing assigned in 2027) but red, and says why
    (apart,) = standings.apart
    assert (apart.name, apart.rank, apart.code) == ("东桥镇", None, Code.red)
    assert [(r.kind, dict(r.values)) for r in apart.reasons] == [
        ("below_min_sample", {"assigned": 0, "min": 1}),
        ("overdue_apart", {"overdue": 1}),
        ("overdue_over", {"days": 9, "limit": 7}),
    ]


async def test_a_past_window_counts_overdue_assigned_before_its_end_only(db: Database) -> None:
    await _new_year(db)
    december = period(WindowKind.month, date(2026, 12, 1), SHANGHAI)
    async with db.begin() as s:
        found = await window_counts(s, december, JAN_5, SHANGHAI)
    counts = {c.area_code: c for c in found.subjects}
    # 北湖镇's January problem (overdue since 01-03) is not December's; its December one is
    assert (counts["NH-BH"].assigned, counts["NH-BH"].overdue) == (1, 1)
    # 东桥镇: three assigned in December, one closed on time, one overdue, one not yet due
    dq = counts["NH-DQ"]
    assert (dq.assigned, dq.closed, dq.closed_on_time, dq.due, dq.overdue) == (3, 1, 1, 2, 1)
