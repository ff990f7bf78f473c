"""The closed loop as a table: every transition, who may make it, and what it needs."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.services.problem_machine import (
    Action,
    ActorRoles,
    Event,
    ProblemState,
    Refusal,
    Refused,
    Status,
    apply,
    check,
    closed_on_time,
    is_overdue,
    replay,
)
from bot.services.roles import Role

T0 = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
SUBJECT, OTHER = 10, 11
ADMIN = ActorRoles(1, frozenset({(Role.admin, 1)}))
LIAISON = ActorRoles(2, frozenset({(Role.liaison, SUBJECT)}))
OTHER_LIAISON = ActorRoles(3, frozenset({(Role.liaison, OTHER)}))
INSPECTOR = ActorRoles(4, frozenset({(Role.inspector, SUBJECT)}))
VOLUNTEER = ActorRoles(5, frozenset({(Role.volunteer, 100)}))
STRANGER = ActorRoles(6)

REPORTED = ProblemState(Status.reported, reporter_id=5)
RECTIFYING = ProblemState(Status.rectifying, 5, SUBJECT, T0 + timedelta(days=7))
CHECKING = ProblemState(
    Status.pending_check,
    5,
    SUBJECT,
    T0 + timedelta(days=7),
    submitted_at=T0 + timedelta(days=2),
    submitted_on_time=True,
)
EXTENDING = ProblemState(
    Status.rectifying, 5, SUBJECT, T0 + timedelta(days=7), extension_until=T0 + timedelta(days=14)
)
CLOSED = ProblemState(Status.closed, 5, SUBJECT, T0, closed_at=T0)
REJECTED = ProblemState(Status.rejected, 5)

AT = T0 + timedelta(days=1)
LATER = T0 + timedelta(days=10)


def ev(action: Action, actor: ActorRoles, **kw: object) -> Event:
    return Event(action, actor, kw.pop("at", AT), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        # assign: admins only, from reported, with a subject and a future deadline
        (REPORTED, ev(Action.assign, ADMIN, subject_id=SUBJECT, deadline=LATER), Status.rectifying),
        (
            REPORTED,
            ev(Action.assign, LIAISON, subject_id=SUBJECT, deadline=LATER),
            Refusal.not_allowed,
        ),
        (REPORTED, ev(Action.assign, ADMIN, deadline=LATER), Refusal.needs_subject),
        (REPORTED, ev(Action.assign, ADMIN, subject_id=SUBJECT, deadline=AT), Refusal.bad_deadline),
        (
            RECTIFYING,
            ev(Action.assign, ADMIN, subject_id=SUBJECT, deadline=LATER),
            Refusal.wrong_status,
        ),
        # reject: admins, with a reason, from any status before closing
        (REPORTED, ev(Action.reject, ADMIN, reason="重复"), Status.rejected),
        (RECTIFYING, ev(Action.reject, ADMIN, reason="不属于本辖区"), Status.rejected),
        (REPORTED, ev(Action.reject, ADMIN, reason="  "), Refusal.needs_reason),
        (REPORTED, ev(Action.reject, VOLUNTEER, reason="x"), Refusal.not_allowed),
        (CLOSED, ev(Action.reject, ADMIN, reason="x"), Refusal.wrong_status),
        (REJECTED, ev(Action.reject, ADMIN, reason="x"), Refusal.wrong_status),
        # submit: the subject's liaison (or an admin), with after-photos
        (RECTIFYING, ev(Action.submit, LIAISON, photo_count=2), Status.pending_check),
        (RECTIFYING, ev(Action.submit, ADMIN, photo_count=1), Status.pending_check),
        (RECTIFYING, ev(Action.submit, OTHER_LIAISON, photo_count=1), Refusal.not_allowed),
        (RECTIFYING, ev(Action.submit, INSPECTOR, photo_count=1), Refusal.not_allowed),
        (RECTIFYING, ev(Action.submit, LIAISON), Refusal.needs_photos),
        (REPORTED, ev(Action.submit, LIAISON, photo_count=1), Refusal.wrong_status),
        # verify: admin or the subject's inspector; failing needs a reason
        (CHECKING, ev(Action.pass_check, INSPECTOR), Status.closed),
        (CHECKING, ev(Action.pass_check, ADMIN), Status.closed),
        (CHECKING, ev(Action.pass_check, LIAISON), Refusal.not_allowed),
        (CHECKING, ev(Action.fail_check, INSPECTOR, reason="仍有垃圾"), Status.rectifying),
        (CHECKING, ev(Action.fail_check, INSPECTOR), Refusal.needs_reason),
        (RECTIFYING, ev(Action.pass_check, ADMIN), Refusal.wrong_status),
        # extensions: the liaison asks for a later deadline, an admin decides
        (RECTIFYING, ev(Action.request_extension, LIAISON, deadline=LATER), Status.rectifying),
        (RECTIFYING, ev(Action.request_extension, LIAISON, deadline=T0), Refusal.bad_deadline),
        (RECTIFYING, ev(Action.request_extension, VOLUNTEER, deadline=LATER), Refusal.not_allowed),
        (
            EXTENDING,
            ev(Action.request_extension, LIAISON, deadline=LATER),
            Refusal.extension_pending,
        ),
        (EXTENDING, ev(Action.approve_extension, ADMIN), Status.rectifying),
        (EXTENDING, ev(Action.approve_extension, LIAISON), Refusal.not_allowed),
        (RECTIFYING, ev(Action.approve_extension, ADMIN), Refusal.no_extension_pending),
        (EXTENDING, ev(Action.refuse_extension, ADMIN, reason="理由不足"), Status.rectifying),
        (EXTENDING, ev(Action.refuse_extension, ADMIN), Refusal.needs_reason),
        # nothing leaves closed or rejected; report is never a transition
        (CLOSED, ev(Action.fail_check, ADMIN, reason="x"), Refusal.wrong_status),
        (
            REJECTED,
            ev(Action.assign, ADMIN, subject_id=SUBJECT, deadline=LATER),
            Refusal.wrong_status,
        ),
        (REPORTED, ev(Action.report, ADMIN), Refusal.wrong_status),
        (
            REPORTED,
            ev(Action.assign, STRANGER, subject_id=SUBJECT, deadline=LATER),
            Refusal.not_allowed,
        ),
    ],
)
def test_transitions(state: ProblemState, event: Event, expected: Status | Refusal) -> None:
    if isinstance(expected, Refusal):
        assert check(state, event) is expected
        with pytest.raises(Refused) as info:
            apply(state, event)
        assert info.value.refusal is expected
    else:
        assert check(state, event) is None
        assert apply(state, event).status is expected


def test_extension_moves_the_deadline_only_when_approved() -> None:
    asked = apply(RECTIFYING, ev(Action.request_extension, LIAISON, deadline=LATER))
    assert asked.deadline == RECTIFYING.deadline and asked.extension_until == LATER
    assert apply(asked, ev(Action.approve_extension, ADMIN)).deadline == LATER
    refused = apply(asked, ev(Action.refuse_extension, ADMIN, reason="no"))
    assert refused.deadline == RECTIFYING.deadline and refused.extension_until is None


@pytest.mark.parametrize(
    ("submit_after_days", "on_time"), [(6, True), (7, True), (7.01, False), (9, False)]
)
def test_on_time_is_the_accepted_submission_against_the_deadline_then(
    submit_after_days: float, on_time: bool
) -> None:
    deadline = T0 + timedelta(days=7)
    history = [
        ev(Action.assign, ADMIN, subject_id=SUBJECT, deadline=deadline, at=T0),
        ev(Action.submit, LIAISON, photo_count=1, at=T0 + timedelta(days=submit_after_days)),
        ev(Action.pass_check, INSPECTOR, at=T0 + timedelta(days=12)),
    ]
    assert closed_on_time(replay(5, history)) is on_time


def test_a_failed_submission_does_not_count_as_on_time() -> None:
    deadline = T0 + timedelta(days=7)
    history = [
        ev(Action.assign, ADMIN, subject_id=SUBJECT, deadline=deadline, at=T0),
        ev(Action.submit, LIAISON, photo_count=1, at=T0 + timedelta(days=2)),
        ev(Action.fail_check, INSPECTOR, reason="没清完", at=T0 + timedelta(days=3)),
        ev(Action.submit, LIAISON, photo_count=1, at=T0 + timedelta(days=8)),
        ev(Action.pass_check, INSPECTOR, at=T0 + timedelta(days=9)),
    ]
    state = replay(5, history)
    assert state.status is Status.closed and not closed_on_time(state)


@pytest.mark.parametrize(
    ("state", "now", "overdue"),
    [
        (RECTIFYING, T0 + timedelta(days=7), False),  # at the deadline: not yet
        (RECTIFYING, T0 + timedelta(days=7, seconds=1), True),
        (CHECKING, T0 + timedelta(days=8), True),  # still open while being checked
        (CLOSED, T0 + timedelta(days=30), False),
        (REPORTED, T0 + timedelta(days=30), False),  # no deadline before assignment
    ],
)
def test_overdue_is_derived(state: ProblemState, now: datetime, overdue: bool) -> None:
    assert is_overdue(state, now) is overdue
