"""The problem's closed loop as one pure state machine (DESIGN.md §3).

Every change to a problem is an ``Event``; ``apply`` checks it against the state and the actor
and returns the next state, or raises ``Refused`` naming why. ``replay`` folds a history back into
the state, so the stored history always explains the stored status. Overdue and on-time are
derived from the state and a moment, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from enum import StrEnum

from bot.services.roles import Role


class Status(StrEnum):
    reported = "reported"  # 待交办
    rectifying = "rectifying"  # 整改中
    pending_check = "pending_check"  # 待核查
    closed = "closed"  # 已销号
    rejected = "rejected"  # 不予受理


OPEN_STATUSES = frozenset({Status.rectifying, Status.pending_check})


class Action(StrEnum):
    report = "report"
    assign = "assign"
    reject = "reject"
    submit = "submit"
    pass_check = "pass_check"
    fail_check = "fail_check"
    request_extension = "request_extension"
    approve_extension = "approve_extension"
    refuse_extension = "refuse_extension"


class Refusal(StrEnum):
    wrong_status = "wrong_status"
    not_allowed = "not_allowed"
    needs_reason = "needs_reason"
    needs_subject = "needs_subject"
    bad_deadline = "bad_deadline"
    needs_photos = "needs_photos"
    no_extension_pending = "no_extension_pending"
    extension_pending = "extension_pending"


class Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


@dataclass(frozen=True)
class ActorRoles:
    """Who acts: their roles, and the areas they hold each in."""

    person_id: int
    roles: frozenset[tuple[Role, int | None]] = field(default_factory=frozenset)

    def holds(self, role: Role, area_id: int | None = None) -> bool:
        return any(r is role and (area_id is None or a == area_id) for r, a in self.roles)

    @property
    def is_admin(self) -> bool:
        return self.holds(Role.admin)


@dataclass(frozen=True)
class Event:
    action: Action
    actor: ActorRoles
    at: datetime
    subject_id: int | None = None
    deadline: datetime | None = None
    reason: str | None = None
    photo_count: int = 0


@dataclass(frozen=True)
class ProblemState:
    status: Status
    reporter_id: int
    subject_id: int | None = None
    deadline: datetime | None = None
    extension_until: datetime | None = None  # asked for, not yet decided
    submitted_at: datetime | None = None  # the submission now being checked, or accepted
    submitted_on_time: bool | None = None
    closed_at: datetime | None = None


# Which statuses each action starts from, and where it goes (None: status unchanged).
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status | None]] = {
    Action.assign: (frozenset({Status.reported}), Status.rectifying),
    Action.reject: (
        frozenset({Status.reported, Status.rectifying, Status.pending_check}),
        Status.rejected,
    ),
    Action.submit: (frozenset({Status.rectifying}), Status.pending_check),
    Action.pass_check: (frozenset({Status.pending_check}), Status.closed),
    Action.fail_check: (frozenset({Status.pending_check}), Status.rectifying),
    Action.request_extension: (frozenset({Status.rectifying}), None),
    Action.approve_extension: (frozenset({Status.rectifying, Status.pending_check}), None),
    Action.refuse_extension: (frozenset({Status.rectifying, Status.pending_check}), None),
}


def _is_liaison(state: ProblemState, actor: ActorRoles) -> bool:
    return state.subject_id is not None and actor.holds(Role.liaison, state.subject_id)


def allowed(action: Action, state: ProblemState, actor: ActorRoles) -> bool:
    """Who may make each transition (the status is checked separately)."""
    if actor.is_admin:
        return True
    if action in (Action.submit, Action.request_extension):
        return _is_liaison(state, actor)
    if action in (Action.pass_check, Action.fail_check):
        # An inspector checks problems of the subject they work in.
        return state.subject_id is not None and actor.holds(Role.inspector, state.subject_id)
    return False  # assign, reject and the extension decisions are the admins'


def check(state: ProblemState, event: Event, *, authorised: bool = False) -> Refusal | None:
    """Why ``event`` cannot happen to ``state``, or None if it can. ``authorised`` skips the
    role check, for replaying a history whose events were checked when they happened."""
    if event.action is Action.report:
        return Refusal.wrong_status
    sources, _target = TRANSITIONS[event.action]
    if state.status not in sources:
        return Refusal.wrong_status
    if not authorised and not allowed(event.action, state, event.actor):
        return Refusal.not_allowed
    match event.action:
        case Action.assign:
            if event.subject_id is None:
                return Refusal.needs_subject
            if event.deadline is None or event.deadline <= event.at:
                return Refusal.bad_deadline
        case Action.reject | Action.fail_check | Action.refuse_extension:
            if not (event.reason or "").strip():
                return Refusal.needs_reason
            if event.action is Action.refuse_extension and state.extension_until is None:
                return Refusal.no_extension_pending
        case Action.submit:
            if event.photo_count < 1:
                return Refusal.needs_photos
        case Action.request_extension:
            if state.extension_until is not None:
                return Refusal.extension_pending
            if event.deadline is None or state.deadline is None or event.deadline <= state.deadline:
                return Refusal.bad_deadline
        case Action.approve_extension:
            if state.extension_until is None:
                return Refusal.no_extension_pending
        case _:
            pass
    return None


def apply(state: ProblemState, event: Event, *, authorised: bool = False) -> ProblemState:
    refusal = check(state, event, authorised=authorised)
    if refusal is not None:
        raise Refused(refusal)
    target = TRANSITIONS[event.action][1]
    next_state = replace(state, status=target) if target is not None else state
    match event.action:
        case Action.assign:
            return replace(next_state, subject_id=event.subject_id, deadline=event.deadline)
        case Action.submit:
            on_time = state.deadline is not None and event.at <= state.deadline
            return replace(next_state, submitted_at=event.at, submitted_on_time=on_time)
        case Action.fail_check:
            return replace(next_state, submitted_at=None, submitted_on_time=None)
        case Action.pass_check:
            return replace(next_state, closed_at=event.at, extension_until=None)
        case Action.reject:
            return replace(next_state, extension_until=None)
        case Action.request_extension:
            return replace(next_state, extension_until=event.deadline)
        case Action.approve_extension:
            return replace(next_state, deadline=state.extension_until, extension_until=None)
        case Action.refuse_extension:
            return replace(next_state, extension_until=None)
        case _:
            return next_state


def initial(reporter_id: int) -> ProblemState:
    return ProblemState(Status.reported, reporter_id)


def replay(reporter_id: int, events: list[Event]) -> ProblemState:
    state = initial(reporter_id)
    for event in events:
        state = apply(state, event)
    return state


def is_overdue(state: ProblemState, now: datetime) -> bool:
    """Open and past its deadline."""
    return state.status in OPEN_STATUSES and state.deadline is not None and now > state.deadline


def overdue_days(state: ProblemState, now: datetime) -> float:
    if not is_overdue(state, now) or state.deadline is None:
        return 0.0
    return (now - state.deadline).total_seconds() / 86400


def days_overdue(deadline: datetime, now: datetime, zone: tzinfo) -> int:
    """Local calendar days past the deadline, as people count them (due 11-27, today 12-14:
    17 days): 0 until it passes, then at least 1. Reminders, the ranking and the summaries all
    say this number."""
    if now <= deadline:
        return 0
    return max(1, (now.astimezone(zone).date() - deadline.astimezone(zone).date()).days)


def closed_on_time(state: ProblemState) -> bool:
    """Closed, and the accepted rectification was submitted by the deadline then in force."""
    return state.status is Status.closed and bool(state.submitted_on_time)
