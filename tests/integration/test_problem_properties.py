"""The problem service against the pure machine, on a real database (SQLite and PostgreSQL).

Random sequences of actions by random members of a cast: every accepted transition adds exactly
one history row with a pair of statuses the machine allows, the service agrees with the machine
(same refusal, or the same next state), every refusal leaves the rows untouched, and the stored
history always replays to the stored state.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.db import Database
from bot.services import people, problems
from bot.services.org import import_org, parse_org_file
from bot.services.problem_machine import (
    TRANSITIONS,
    Action,
    ActorRoles,
    Event,
    ProblemState,
    Refusal,
    Status,
    apply,
    check,
    initial,
)
from bot.services.problems import PhotoIn, ReportIn
from bot.services.roles import Role
from models import Area, Problem, ProblemEvent, ProblemPhoto

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
T0 = datetime(2026, 11, 2, 1, 30, tzinfo=UTC)
ZONE_YEAR = 2026
SOURCE_CHAT = -100_777
SUBJECT, OTHER_SUBJECT, VILLAGE, DISTRICT = "NH-DQ", "NH-XS", "NH-DQ-01", "NH"

# name: (telegram id, roles as (role, area code or None))
CAST: dict[str, tuple[int, tuple[tuple[Role, str | None], ...]]] = {
    "admin": (91_001, ((Role.admin, DISTRICT),)),
    "liaison": (91_002, ((Role.liaison, SUBJECT),)),
    "other_liaison": (91_003, ((Role.liaison, OTHER_SUBJECT),)),
    "inspector": (91_004, ((Role.inspector, SUBJECT),)),
    "other_inspector": (91_005, ((Role.inspector, OTHER_SUBJECT),)),
    "volunteer": (91_006, ((Role.volunteer, VILLAGE),)),
    "stranger": (91_007, ()),
}

_examples = itertools.count(1)  # unique source keys and photo ids across examples and backends


@dataclass(frozen=True)
class Step:
    """One attempted transition, in terms that shrink well and print readably."""

    action: Action
    actor: str  # a key of CAST
    subject: str | None  # an area code, or None
    deadline: tuple[str, int] | None  # (anchor "now" | "deadline", offset in minutes)
    reason: str | None
    photos: int
    advance_minutes: int  # the clock moves this far before the step


@dataclass(frozen=True)
class Cast:
    person_ids: dict[str, int]
    roles: dict[str, ActorRoles]
    areas: dict[str, int]


@dataclass(frozen=True)
class Snapshot:
    problem: tuple[Any, ...]
    events: tuple[tuple[Any, ...], ...]
    photos: tuple[tuple[Any, ...], ...]
    state: ProblemState  # problems.state_of of the row, through the ORM


STATE_COLUMNS = {
    "status",
    "subject_id",
    "deadline",
    "extension_until",
    "submitted_at",
    "submitted_on_time",
    "closed_at",
    "assigned_at",
}

reasons = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "  \n\t", "\u3000", "整改不到位", "need more time"]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20),
)
deadlines = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["now", "deadline"]),
        st.integers(min_value=-10 * 24 * 60, max_value=30 * 24 * 60),
    ),
)
# Who can make each action, so that aimed steps get past the reported status often enough.
MAY_ACT: dict[Action, list[str]] = {
    Action.assign: ["admin"],
    Action.reject: ["admin"],
    Action.submit: ["liaison", "admin"],
    Action.pass_check: ["inspector", "admin"],
    Action.fail_check: ["inspector", "admin"],
    Action.request_extension: ["liaison", "admin"],
    Action.approve_extension: ["admin"],
    Action.refuse_extension: ["admin"],
}
advances = st.integers(min_value=1, max_value=5 * 24 * 60)
# Anything at all: mostly refused.
wild_steps = st.builds(
    Step,
    action=st.sampled_from(list(MAY_ACT)),
    actor=st.sampled_from(list(CAST)),
    subject=st.sampled_from([SUBJECT, OTHER_SUBJECT, None]),
    deadline=deadlines,
    reason=reasons,
    photos=st.integers(min_value=0, max_value=2),
    advance_minutes=advances,
)


def aimed(action: Action) -> st.SearchStrategy[Step]:
    """A plausible actor with plausible parameters: mostly accepted when the status allows."""
    return st.builds(
        Step,
        action=st.just(action),
        actor=st.sampled_from(MAY_ACT[action]),
        subject=st.sampled_from([SUBJECT, SUBJECT, OTHER_SUBJECT]),
        deadline=st.tuples(
            st.sampled_from(["deadline", "now"]),
            st.integers(min_value=1, max_value=30 * 24 * 60),
        ),
        reason=st.sampled_from(["整改不到位", "need more time"]),
        photos=st.integers(min_value=1, max_value=2),
        advance_minutes=advances,
    )


@cache
def steps_from(status: Status, extension_pending: bool) -> st.SearchStrategy[Step]:
    """The next step: two times in three an action the state allows, by someone who may make
    it; otherwise anything (for the refusals). Drawn step by step, so that sequences get past
    the assignment, through submissions and checks, to extensions and their decisions."""
    decisions = {Action.approve_extension, Action.refuse_extension}
    fitting = [
        a
        for a, (sources, _) in TRANSITIONS.items()
        if status in sources and (a in decisions) == extension_pending
    ]
    if not fitting:  # closed or rejected: only refusals are left
        return wild_steps
    # Rejecting ends the loop, and is possible from three statuses: make it rarer.
    weighted = [a for a in fitting for _ in range(1 if a is Action.reject else 3)]
    fitting_aimed = st.sampled_from(weighted).flatmap(aimed)
    return st.sampled_from(["aimed", "aimed", "wild"]).flatmap(
        lambda kind: fitting_aimed if kind == "aimed" else wild_steps
    )


@pytest.fixture
async def cast(db: Database) -> Cast:
    """The areas and the cast, once per database; every example shares them (and changes no
    roles)."""
    async with db.begin() as s:
        await import_org(s, parse_org_file(EXAMPLES / "org.yaml"))
        areas = {a.code: a.id for a in (await s.scalars(select(Area))).all()}
        ids: dict[str, int] = {}
        roles: dict[str, ActorRoles] = {}
        for name, (telegram_id, grants) in CAST.items():
            person = await people.ensure_person(s, telegram_id, name, None)
            ids[name] = person.id
            for role, code in grants:
                await people.grant_role(s, person.id, role, areas[code] if code else None)
            roles[name] = ActorRoles(
                person.id, frozenset((role, areas[code] if code else None) for role, code in grants)
            )
    return Cast(ids, roles, areas)


async def _snapshot(db: Database, problem_id: int) -> Snapshot:
    """Every row of the problem, its history and its photos, read fresh from the database."""
    p, e, ph = Problem.__table__, ProblemEvent.__table__, ProblemPhoto.__table__
    async with db.begin() as s:
        row = (await s.execute(select(p).where(p.c.id == problem_id))).one()
        events = (
            await s.execute(select(e).where(e.c.problem_id == problem_id).order_by(e.c.id))
        ).all()
        photos = (
            await s.execute(select(ph).where(ph.c.problem_id == problem_id).order_by(ph.c.id))
        ).all()
        stored = await s.get(Problem, problem_id)
        assert stored is not None
        state = problems.state_of(stored)
    return Snapshot(tuple(row), tuple(map(tuple, events)), tuple(map(tuple, photos)), state)


def _column(snapshot_row: tuple[Any, ...], table: Any, name: str) -> Any:
    return snapshot_row[[c.name for c in table.columns].index(name)]


def _resolve_deadline(step: Step, now: datetime, model: ProblemState) -> datetime | None:
    if step.deadline is None:
        return None
    anchor, minutes = step.deadline
    base = model.deadline if anchor == "deadline" and model.deadline is not None else now
    return base + timedelta(minutes=minutes)


def _assert_allowed_pair(action: Action, from_status: str | None, to_status: str) -> None:
    sources, target = TRANSITIONS[action]
    assert from_status is not None and Status(from_status) in sources, (action, from_status)
    expected = from_status if target is None else target.value
    assert to_status == expected, (action, from_status, to_status)


async def _run(db: Database, cast: Cast, reporter: str, length: int, data: st.DataObject) -> None:
    n = next(_examples)
    now = T0
    async with db.begin() as s:
        reported = await problems.report_problem(
            s,
            ReportIn(
                reporter_id=cast.person_ids[reporter],
                category="garbage",
                description=f"property example {n}",
                photos=[PhotoIn(f"before-{n}", f"ub-{n}")],
                source_chat_id=SOURCE_CHAT,
                source_key=f"prop-{n}",
            ),
            now=now,
            code_prefix="NH",
            zone_year=ZONE_YEAR,
        )
    assert reported.created
    code, problem_id = reported.problem.code, reported.problem.id
    model = initial(cast.person_ids[reporter])
    p_table, e_table, ph_table = (
        Problem.__table__,
        ProblemEvent.__table__,
        ProblemPhoto.__table__,
    )
    # Nothing else writes to this problem, so each step's "after" is the next step's "before".
    after = await _snapshot(db, problem_id)
    assert after.state == model and len(after.events) == 1

    for i in range(length):
        step = data.draw(
            steps_from(model.status, model.extension_until is not None), label=f"step {i}"
        )
        now += timedelta(minutes=step.advance_minutes)
        deadline = _resolve_deadline(step, now, model)
        subject_id = cast.areas[step.subject] if step.subject else None
        photos = [PhotoIn(f"after-{n}-{i}-{k}", f"ua-{n}-{i}-{k}") for k in range(step.photos)]
        event = Event(
            step.action,
            cast.roles[step.actor],
            now,
            subject_id=subject_id,
            deadline=deadline,
            reason=step.reason,
            photo_count=len(photos),
        )
        expected_refusal = check(model, event)

        before = after
        async with db.begin() as s:
            result = await problems.transition(
                s,
                code,
                step.action,
                cast.person_ids[step.actor],
                now=now,
                subject_id=subject_id,
                deadline=deadline,
                reason=step.reason,
                after_photos=photos,
            )
        after = await _snapshot(db, problem_id)
        assert result is not None, "the problem exists"

        if isinstance(result, Refusal):
            assert after == before, f"step {i}: refused ({result}) but the database changed"
            assert result == expected_refusal, (
                f"step {i}: the service refused {result}, the machine {expected_refusal}"
            )
            continue

        assert expected_refusal is None, f"step {i}: the machine refuses {expected_refusal}"
        # Exactly one new history row, appended; earlier history and photos untouched.
        assert after.events[: len(before.events)] == before.events, f"step {i}: history rewritten"
        new_events = after.events[len(before.events) :]
        assert len(new_events) == 1, f"step {i}: {len(new_events)} history rows for one transition"
        (row,) = new_events
        from_status = _column(row, e_table, "from_status")
        to_status = _column(row, e_table, "to_status")
        assert _column(row, e_table, "action") == step.action.value
        assert _column(row, e_table, "actor_id") == cast.person_ids[step.actor]
        assert _column(row, e_table, "at") == now
        _assert_allowed_pair(step.action, from_status, to_status)
        assert from_status == _column(before.problem, p_table, "status")
        assert to_status == _column(after.problem, p_table, "status")
        # The photos sent with it, as "after" photos, and nothing else.
        assert after.photos[: len(before.photos)] == before.photos
        new_photos = after.photos[len(before.photos) :]
        assert [_column(r, ph_table, "file_unique_id") for r in new_photos] == [
            p.file_unique_id for p in photos
        ]
        assert all(_column(r, ph_table, "kind") == "after" for r in new_photos)
        # Only the state columns of the problem change.
        for column in p_table.columns:
            if column.name not in STATE_COLUMNS:
                assert _column(after.problem, p_table, column.name) == _column(
                    before.problem, p_table, column.name
                ), f"step {i}: {column.name} changed"
        # The service made the same move as the machine.
        model = apply(model, event)
        assert after.state == model, f"step {i}: the service and the machine disagree"
        assert result.status is model.status

    async with db.begin() as s:
        stored = await s.get(Problem, problem_id)
        assert stored is not None
        assert stored.status in set(Status)
        state = problems.state_of(stored)
        assert await problems.history_state(s, problem_id) == state
        assert state == model
        events = await s.scalar(
            select(func.count())
            .select_from(ProblemEvent)
            .where(ProblemEvent.problem_id == problem_id)
        )
    assert events is not None and events >= 1
    note(f"final status: {model.status}")
    note(f"accepted transitions: {events - 1}")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    reporter=st.sampled_from(list(CAST)),
    length=st.integers(min_value=0, max_value=12),
    data=st.data(),
)
async def test_random_transitions_follow_the_machine(
    db: Database, cast: Cast, reporter: str, length: int, data: st.DataObject
) -> None:
    await _run(db, cast, reporter, length, data)
