"""Problems: reporting (idempotent), duplicates, transitions through the machine, cards, lists.

The row's status columns are the machine's state; each transition also appends a history row,
and ``history_state`` replays the history to the same state (the property test checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services import points as points_ledger
from bot.services.problem_machine import (
    OPEN_STATUSES,
    TRANSITIONS,
    Action,
    ActorRoles,
    Event,
    ProblemState,
    Refusal,
    Refused,
    Status,
    allowed,
    apply,
    initial,
)
from bot.services.roles import AreaKind, Role
from models import Area, Person, Problem, ProblemEvent, ProblemPhoto, RoleGrant

TRANSITION_ACTIONS = frozenset(a.value for a in TRANSITIONS)
CATEGORISE = "categorise"
ADD_PHOTOS = "add_photos"  # a late album part joined its problem
DUPLICATE_RADIUS_M = 200.0
DUPLICATE_WINDOW = timedelta(days=7)
EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True)
class PhotoIn:
    file_id: str
    file_unique_id: str
    message_id: int | None = None
    size: int | None = None


@dataclass(frozen=True)
class ReportIn:
    reporter_id: int
    category: str
    description: str
    photos: list[PhotoIn]
    source_chat_id: int | None
    source_key: str | None
    village_id: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None


@dataclass(frozen=True)
class Duplicate:
    code: str
    why: str  # same_photo | nearby


@dataclass(frozen=True)
class ProblemView:
    id: int
    code: str
    category: str
    description: str
    status: Status
    reporter_id: int
    reporter_telegram_id: int
    village_id: int | None
    subject_id: int | None
    subject_name: str | None
    deadline: datetime | None
    extension_until: datetime | None
    created_at: datetime
    latitude: float | None
    longitude: float | None
    address: str | None
    source_chat_id: int | None


@dataclass(frozen=True)
class ReportResult:
    problem: ProblemView
    created: bool
    duplicates: list[Duplicate] = field(default_factory=list)
    added_photos: int = 0  # photos this message brought to the problem it had already made


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


async def _view(session: AsyncSession, problem: Problem) -> ProblemView:
    reporter_tg = await session.scalar(
        select(Person.telegram_id).where(Person.id == problem.reporter_id)
    )
    subject_name = (
        await session.scalar(select(Area.name).where(Area.id == problem.subject_id))
        if problem.subject_id
        else None
    )
    return ProblemView(
        problem.id,
        problem.code,
        problem.category,
        problem.description,
        Status(problem.status),
        problem.reporter_id,
        reporter_tg or 0,
        problem.village_id,
        problem.subject_id,
        subject_name,
        problem.deadline,
        problem.extension_until,
        problem.created_at,
        problem.latitude,
        problem.longitude,
        problem.address,
        problem.source_chat_id,
    )


async def find_duplicates(
    session: AsyncSession,
    file_unique_ids: list[str],
    category: str,
    latitude: float | None,
    longitude: float | None,
    now: datetime,
    *,
    exclude_id: int | None = None,
) -> list[Duplicate]:
    """Possible duplicates to flag (never to merge): the same photo on another problem, or the
    same category within 200 m and 7 days of an open problem."""
    found: dict[str, Duplicate] = {}
    if file_unique_ids:
        rows = await session.execute(
            select(Problem.code)
            .join(ProblemPhoto, ProblemPhoto.problem_id == Problem.id)
            .where(ProblemPhoto.file_unique_id.in_(file_unique_ids))
            .where(Problem.id != (exclude_id or -1))
            .distinct()
        )
        for (code,) in rows:
            found[code] = Duplicate(code, "same_photo")
    if latitude is not None and longitude is not None:
        # A coarse box in SQL (≈ 0.01° ≥ 200 m at these latitudes), the exact distance here.
        box = 0.01 / max(math.cos(math.radians(latitude)), 0.1)
        near = await session.execute(
            select(Problem.code, Problem.latitude, Problem.longitude).where(
                Problem.category == category,
                Problem.status.in_([Status.reported.value, *[s.value for s in OPEN_STATUSES]]),
                Problem.created_at >= now - DUPLICATE_WINDOW,
                Problem.latitude.between(latitude - 0.01, latitude + 0.01),
                Problem.longitude.between(longitude - box, longitude + box),
                Problem.id != (exclude_id or -1),
            )
        )
        for code, lat, lon in near:
            if code in found or lat is None or lon is None:
                continue
            if distance_m(latitude, longitude, lat, lon) <= DUPLICATE_RADIUS_M:
                found[code] = Duplicate(code, "nearby")
    return sorted(found.values(), key=lambda d: d.code)


def code_year(now: datetime, zone: tzinfo) -> int:
    """Problems are numbered per local calendar year: from 1 January (local time) the codes
    start again at 0001 under the new year."""
    return now.astimezone(zone).year


def _add_photos(session: AsyncSession, problem_id: int, photos: list[PhotoIn], kind: str) -> None:
    for photo in photos:
        session.add(
            ProblemPhoto(
                problem_id=problem_id,
                kind=kind,
                file_id=photo.file_id,
                file_unique_id=photo.file_unique_id,
                message_id=photo.message_id,
                size=photo.size,
            )
        )


async def _next_seq(session: AsyncSession, year: int) -> int:
    current = await session.scalar(select(func.max(Problem.seq)).where(Problem.year == year))
    return (current or 0) + 1


async def report_problem(
    session: AsyncSession, report: ReportIn, *, now: datetime, code_prefix: str, zone_year: int
) -> ReportResult:
    """Create the problem, or return the one this message already made, with any of the
    report's photos it does not have yet (an album part that came late): nothing is lost."""
    if report.source_chat_id is not None and report.source_key is not None:
        existing = (
            await session.scalars(
                select(Problem).where(
                    Problem.source_chat_id == report.source_chat_id,
                    Problem.source_key == report.source_key,
                )
            )
        ).first()
        if existing is not None:
            added = await _add_late_photos(session, existing, report, now)
            return ReportResult(await _view(session, existing), created=False, added_photos=added)
    duplicates = await find_duplicates(
        session,
        [p.file_unique_id for p in report.photos],
        report.category,
        report.latitude,
        report.longitude,
        now,
    )
    for _attempt in range(5):  # two reports at once may pick the same number; retry
        seq = await _next_seq(session, zone_year)
        problem = Problem(
            code=f"{code_prefix}-{zone_year}-{seq:04d}",
            year=zone_year,
            seq=seq,
            category=report.category,
            description=report.description[:4000],
            status=Status.reported.value,
            reporter_id=report.reporter_id,
            village_id=report.village_id,
            latitude=report.latitude,
            longitude=report.longitude,
            address=report.address,
            source_chat_id=report.source_chat_id,
            source_key=report.source_key,
            created_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(problem)
                await session.flush()
        except IntegrityError:
            if report.source_key is not None:
                again = (
                    await session.scalars(
                        select(Problem).where(
                            Problem.source_chat_id == report.source_chat_id,
                            Problem.source_key == report.source_key,
                        )
                    )
                ).first()
                if again is not None:
                    return ReportResult(await _view(session, again), created=False)
            continue
        break
    else:
        raise RuntimeError("could not number the problem")
    _add_photos(session, problem.id, report.photos, "before")
    session.add(
        ProblemEvent(
            problem_id=problem.id,
            action=Action.report.value,
            from_status=None,
            to_status=Status.reported.value,
            actor_id=report.reporter_id,
            at=now,
        )
    )
    await session.flush()
    return ReportResult(await _view(session, problem), created=True, duplicates=duplicates)


async def _add_late_photos(
    session: AsyncSession, problem: Problem, report: ReportIn, now: datetime
) -> int:
    known = set(
        await session.scalars(
            select(ProblemPhoto.message_id).where(
                ProblemPhoto.problem_id == problem.id, ProblemPhoto.kind == "before"
            )
        )
    )
    late = [p for p in report.photos if p.message_id is not None and p.message_id not in known]
    if not late:
        return 0
    _add_photos(session, problem.id, late, "before")
    session.add(
        ProblemEvent(
            problem_id=problem.id,
            action=ADD_PHOTOS,
            from_status=problem.status,
            to_status=problem.status,
            actor_id=report.reporter_id,
            at=now,
            data={"photos": len(late)},
        )
    )
    await session.flush()
    return len(late)


async def actor_roles(session: AsyncSession, person_id: int) -> ActorRoles:
    rows = await session.execute(
        select(RoleGrant.role, RoleGrant.area_id).where(RoleGrant.person_id == person_id)
    )
    return ActorRoles(person_id, frozenset((Role(r), a) for r, a in rows))


def deadline_after(now: datetime, days: int, zone: tzinfo) -> datetime:
    """The end of the local day ``days`` days from now: people think of deadlines as dates."""
    local_day = now.astimezone(zone).date() + timedelta(days=days)
    return datetime.combine(local_day, time(23, 59, 59), zone).astimezone(UTC)


async def precheck(
    session: AsyncSession, code: str, action: Action, person_id: int
) -> Refusal | bool:
    """Whether ``person_id`` could make ``action`` now, before asking them for photos or a
    reason (the needs of the action are checked when it is made): True, the refusal, or False
    when there is no such problem."""
    problem = await problem_by_code(session, code)
    if problem is None:
        return False
    state = state_of(problem)
    if state.status not in TRANSITIONS[action][0]:
        return Refusal.wrong_status
    if not allowed(action, state, await actor_roles(session, person_id)):
        return Refusal.not_allowed
    return True


def state_of(problem: Problem) -> ProblemState:
    return ProblemState(
        status=Status(problem.status),
        reporter_id=problem.reporter_id,
        subject_id=problem.subject_id,
        deadline=problem.deadline,
        extension_until=problem.extension_until,
        submitted_at=problem.submitted_at,
        submitted_on_time=problem.submitted_on_time,
        closed_at=problem.closed_at,
    )


def _store(problem: Problem, state: ProblemState) -> None:
    problem.status = state.status.value
    problem.subject_id = state.subject_id
    problem.deadline = state.deadline
    problem.extension_until = state.extension_until
    problem.submitted_at = state.submitted_at
    problem.submitted_on_time = state.submitted_on_time
    problem.closed_at = state.closed_at


async def problem_by_code(
    session: AsyncSession, code: str, *, lock: bool = False
) -> Problem | None:
    """``lock``: hold the row until the transaction ends (SELECT ... FOR UPDATE; SQLite, which
    lets one writer in at a time, ignores it), so that two processes cannot both accept one
    tap on the same card."""
    query = select(Problem).where(Problem.code == code.strip().upper())
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query)).first()


async def _is_subject(session: AsyncSession, area_id: int | None) -> bool:
    kind = await session.scalar(select(Area.kind).where(Area.id == area_id))
    return kind == AreaKind.subject.value


async def transition(
    session: AsyncSession,
    code: str,
    action: Action,
    actor_person_id: int,
    *,
    now: datetime,
    subject_id: int | None = None,
    deadline: datetime | None = None,
    reason: str | None = None,
    after_photos: list[PhotoIn] | None = None,
    points: points_ledger.Policy | None = None,
    update_id: int | None = None,
) -> ProblemView | Refusal | None:
    """Make one transition; None if there is no such problem. A refusal changes nothing.
    With ``points``, the reporter's points for it go into the ledger in the same transaction
    (see ``points.on_problem_transition``).

    ``update_id``: the Telegram update asking for it. An update runs again when its first run
    failed after the change was committed (the network failed telling people); the second
    run finds the change made by this update and gets the problem as it is, changing nothing,
    so that it can go on to tell everyone."""
    problem = await problem_by_code(session, code, lock=True)
    if problem is None:
        return None
    if update_id is not None and await _made_by_update(session, problem.id, action, update_id):
        return await _view(session, problem)
    actor = await actor_roles(session, actor_person_id)
    photos = after_photos or []
    event = Event(
        action,
        actor,
        now,
        subject_id=subject_id,
        deadline=deadline,
        reason=(reason or "").strip() or None,
        photo_count=len(photos),
    )
    before = state_of(problem)
    try:
        after = apply(before, event)
    except Refused as refused:
        return refused.refusal
    if action is Action.assign and not await _is_subject(session, subject_id):
        return Refusal.needs_subject  # forged or outdated: no such town/street
    _store(problem, after)
    if action is Action.assign:
        problem.assigned_at = now
    _add_photos(session, problem.id, photos, "after")
    session.add(
        ProblemEvent(
            problem_id=problem.id,
            action=action.value,
            from_status=before.status.value,
            to_status=after.status.value,
            actor_id=actor_person_id,
            at=now,
            reason=event.reason,
            subject_id=subject_id,
            deadline=deadline,
            data=_event_data(len(photos), update_id),
        )
    )
    await session.flush()
    if points is not None:
        await points_ledger.on_problem_transition(
            session,
            points,
            problem_id=problem.id,
            reporter_id=problem.reporter_id,
            reported_at=problem.created_at,
            action=action,
            actor_id=actor_person_id,
            now=now,
            reason=event.reason,
        )
    return await _view(session, problem)


def _event_data(photos: int, update_id: int | None) -> dict[str, int] | None:
    data = {"photos": photos} if photos else {}
    if update_id is not None:
        data["update"] = update_id
    return data or None


async def _made_by_update(
    session: AsyncSession, problem_id: int, action: Action, update_id: int
) -> bool:
    """Whether the update already made this transition (a problem has a handful of events)."""
    rows = await session.scalars(
        select(ProblemEvent.data).where(
            ProblemEvent.problem_id == problem_id, ProblemEvent.action == action.value
        )
    )
    return any((data or {}).get("update") == update_id for data in rows)


async def history_state(session: AsyncSession, problem_id: int) -> ProblemState:
    """Replay the stored history. Who may act was checked when each event was accepted (roles
    can change since), so the replay checks the transitions and their needs, not the roles."""
    problem = await session.get(Problem, problem_id)
    assert problem is not None
    state = initial(problem.reporter_id)
    rows = await session.scalars(
        select(ProblemEvent).where(ProblemEvent.problem_id == problem_id).order_by(ProblemEvent.id)
    )
    for row in rows:
        if row.action not in TRANSITION_ACTIONS:  # the report itself, re-categorising
            continue
        event = Event(
            Action(row.action),
            ActorRoles(row.actor_id or 0),
            row.at,
            subject_id=row.subject_id,
            deadline=row.deadline,
            reason=row.reason,
            photo_count=(row.data or {}).get("photos", 0),
        )
        state = apply(state, event, authorised=True)
    return state


async def set_category(
    session: AsyncSession, code: str, category: str, actor_person_id: int, *, now: datetime
) -> ProblemView | Refusal | None:
    """The reporter or an admin may change the category until the problem is assigned."""
    problem = await problem_by_code(session, code)
    if problem is None:
        return None
    actor = await actor_roles(session, actor_person_id)
    if not (actor.is_admin or actor_person_id == problem.reporter_id):
        return Refusal.not_allowed
    if problem.status != Status.reported.value:
        return Refusal.wrong_status
    if problem.category != category:
        session.add(
            ProblemEvent(
                problem_id=problem.id,
                action=CATEGORISE,
                from_status=problem.status,
                to_status=problem.status,
                actor_id=actor_person_id,
                at=now,
                data={"from": problem.category, "to": category},
            )
        )
        problem.category = category
        await session.flush()
    return await _view(session, problem)


@dataclass(frozen=True)
class HistoryLine:
    action: str
    actor_name: str | None
    at: datetime
    reason: str | None
    to_status: Status
    deadline: datetime | None


@dataclass(frozen=True)
class ProblemCard:
    problem: ProblemView
    reporter_name: str
    village_name: str | None
    before: list[str]  # file ids
    after: list[str]
    history: list[HistoryLine]
    duplicates: list[Duplicate]


async def problem_card(
    session: AsyncSession,
    code: str,
    now: datetime,
    *,
    just_reported: ReportResult | None = None,
) -> ProblemCard | None:
    """``just_reported``: what `report_problem` returned for ``code`` in this transaction. For
    a new problem its view and its duplicates (asked of the same photos and place a moment
    ago, before the problem existed) are used as they are rather than read again."""
    if just_reported is not None and just_reported.created:
        view = just_reported.problem
        known_duplicates: list[Duplicate] | None = just_reported.duplicates
    else:
        problem = await problem_by_code(session, code)
        if problem is None:
            return None
        view = await _view(session, problem)
        known_duplicates = None
    reporter = await session.scalar(select(Person.full_name).where(Person.id == view.reporter_id))
    village = (
        await session.scalar(select(Area.name).where(Area.id == view.village_id))
        if view.village_id
        else None
    )
    photos = (
        await session.execute(
            select(ProblemPhoto.kind, ProblemPhoto.file_id)
            .where(ProblemPhoto.problem_id == view.id)
            .order_by(ProblemPhoto.id)
        )
    ).all()
    events = await session.execute(
        select(ProblemEvent, Person.full_name)
        .outerjoin(Person, Person.id == ProblemEvent.actor_id)
        .where(ProblemEvent.problem_id == view.id)
        .order_by(ProblemEvent.id)
    )
    history = [
        HistoryLine(e.action, name, e.at, e.reason, Status(e.to_status), e.deadline)
        for e, name in events
    ]
    before_ids = [f for k, f in photos if k == "before"]
    if known_duplicates is not None:
        duplicates = known_duplicates
    else:
        unique_ids = list(
            await session.scalars(
                select(ProblemPhoto.file_unique_id).where(
                    ProblemPhoto.problem_id == view.id, ProblemPhoto.kind == "before"
                )
            )
        )
        duplicates = await find_duplicates(
            session,
            unique_ids,
            view.category,
            view.latitude,
            view.longitude,
            view.created_at,
            exclude_id=view.id,
        )
    return ProblemCard(
        view,
        reporter or "",
        village,
        before_ids,
        [f for k, f in photos if k == "after"],
        history,
        duplicates,
    )


async def people_with_role(
    session: AsyncSession, role: Role, area_id: int | None = None
) -> list[int]:
    """Telegram ids of those holding ``role`` (in ``area_id`` if given)."""
    query = (
        select(Person.telegram_id)
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .where(RoleGrant.role == role.value)
    )
    if area_id is not None:
        query = query.where(RoleGrant.area_id == area_id)
    return sorted(set(await session.scalars(query)))


@dataclass(frozen=True)
class ProblemLine:
    code: str
    category: str
    status: Status
    subject_name: str | None
    deadline: datetime | None
    overdue: bool


async def list_problems(
    session: AsyncSession,
    *,
    now: datetime,
    subject_id: int | None = None,
    status: Status | None = None,
    overdue_only: bool = False,
    open_only: bool = True,
    page: int = 0,
    per_page: int = 10,
) -> tuple[list[ProblemLine], int]:
    """One page of problems, newest first, and how many match in all."""
    conditions = []
    if subject_id is not None:
        conditions.append(Problem.subject_id == subject_id)
    if status is not None:
        conditions.append(Problem.status == status.value)
    elif open_only:
        conditions.append(
            Problem.status.in_([Status.reported.value, *[s.value for s in OPEN_STATUSES]])
        )
    if overdue_only:
        conditions.append(Problem.status.in_([s.value for s in OPEN_STATUSES]))
        conditions.append(Problem.deadline < now)
    total = await session.scalar(select(func.count()).select_from(Problem).where(*conditions))
    rows = await session.execute(
        select(Problem.code, Problem.category, Problem.status, Area.name, Problem.deadline)
        .outerjoin(Area, Area.id == Problem.subject_id)
        .where(*conditions)
        .order_by(Problem.id.desc())
        .offset(page * per_page)
        .limit(per_page)
    )
    lines = [
        ProblemLine(
            code,
            category,
            Status(status_),
            name,
            deadline,
            Status(status_) in OPEN_STATUSES and deadline is not None and deadline < now,
        )
        for code, category, status_, name, deadline in rows
    ]
    return lines, total or 0
