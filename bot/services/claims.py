"""Activity claims (宣传 publicity, 劝导 persuasion, 巡查 patrol, 清理 clean-up): a volunteer
sends a photo and a line of text; a cadre of the volunteer's village approves (points, capped
on the day of the claim) or refuses with a reason. A decision is one guarded update of a
pending claim, so two cadres tapping at once make one decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.services import points, points_reports
from bot.services.points import Change, Policy
from bot.services.problems import PhotoIn
from bot.services.roles import Role
from models import ActivityClaim, Area, Person, RoleGrant

PENDING, APPROVED, REFUSED = "pending", "approved", "refused"
MAX_TEXT = 500


class ClaimRefusal(StrEnum):
    not_volunteer = "not_volunteer"
    no_cadre = "no_cadre"
    unknown_activity = "unknown_activity"
    needs_text = "needs_text"
    not_found = "not_found"
    not_cadre = "not_cadre"  # not a cadre of the claim's village
    own_claim = "own_claim"
    already_decided = "already_decided"
    needs_reason = "needs_reason"


@dataclass(frozen=True)
class ClaimView:
    id: int
    person_id: int
    person_telegram_id: int
    person_name: str
    person_locale: str | None
    village_id: int
    village_name: str
    activity: str
    photo_file_id: str
    text: str
    status: str
    created_at: datetime
    decided_by_name: str | None
    decided_at: datetime | None
    refusal_reason: str | None


@dataclass(frozen=True)
class Decided:
    """A refusal because someone decided first: who, and what they decided."""

    claim: ClaimView


@dataclass(frozen=True)
class Cadre:
    person_id: int
    telegram_id: int
    locale: str | None


async def volunteer_village(session: AsyncSession, person_id: int) -> tuple[int, str] | None:
    return await points_reports.volunteer_village(session, person_id)


async def cadres_of(
    session: AsyncSession, village_id: int, *, besides: int | None = None
) -> list[Cadre]:
    """The village's cadres (leaving out ``besides``: nobody approves their own claim)."""
    rows = await session.execute(
        select(Person.id, Person.telegram_id, Person.locale)
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .where(RoleGrant.role == Role.cadre.value, RoleGrant.area_id == village_id)
        .order_by(Person.id)
    )
    return [Cadre(pid, tid, locale) for pid, tid, locale in rows if pid != besides]


async def claim_view(session: AsyncSession, claim_id: int) -> ClaimView | None:
    decider = aliased(Person)
    row = (
        await session.execute(
            select(ActivityClaim, Person, Area.name, decider.full_name)
            .join(Person, Person.id == ActivityClaim.person_id)
            .join(Area, Area.id == ActivityClaim.village_id)
            .outerjoin(decider, decider.id == ActivityClaim.decided_by_id)
            .where(ActivityClaim.id == claim_id)
        )
    ).first()
    if row is None:
        return None
    claim, person, village_name, decider_name = row
    return ClaimView(
        claim.id,
        person.id,
        person.telegram_id,
        person.full_name,
        person.locale,
        claim.village_id,
        village_name,
        claim.activity,
        claim.photo_file_id,
        claim.text,
        claim.status,
        claim.created_at,
        decider_name,
        claim.decided_at,
        claim.refusal_reason,
    )


async def can_claim(session: AsyncSession, person_id: int) -> tuple[int, str] | ClaimRefusal:
    """The volunteer's village if they may claim now (a volunteer whose village has a cadre
    other than themselves), or why not."""
    village = await volunteer_village(session, person_id)
    if village is None:
        return ClaimRefusal.not_volunteer
    if not await cadres_of(session, village[0], besides=person_id):
        return ClaimRefusal.no_cadre
    return village


async def submit_claim(
    session: AsyncSession,
    policy: Policy,
    person_id: int,
    activity: str,
    photo: PhotoIn,
    text: str,
    *,
    now: datetime,
) -> ClaimView | ClaimRefusal:
    village = await can_claim(session, person_id)
    if isinstance(village, ClaimRefusal):
        return village
    if activity not in policy.rules.activities:
        return ClaimRefusal.unknown_activity
    text = " ".join(text.split())[:MAX_TEXT]
    if not text:
        return ClaimRefusal.needs_text
    claim = ActivityClaim(
        person_id=person_id,
        village_id=village[0],
        activity=activity,
        photo_file_id=photo.file_id,
        photo_unique_id=photo.file_unique_id,
        text=text,
        status=PENDING,
        created_at=now,
    )
    session.add(claim)
    await session.flush()
    view = await claim_view(session, claim.id)
    assert view is not None
    return view


async def precheck(
    session: AsyncSession, claim_id: int, actor_person_id: int
) -> ClaimView | ClaimRefusal | Decided:
    """Whether ``actor_person_id`` may decide the claim now (before asking for a reason)."""
    claim = await claim_view(session, claim_id)
    if claim is None:
        return ClaimRefusal.not_found
    if claim.person_id == actor_person_id:
        return ClaimRefusal.own_claim
    cadres = await cadres_of(session, claim.village_id)
    if actor_person_id not in {c.person_id for c in cadres}:
        return ClaimRefusal.not_cadre
    if claim.status != PENDING:
        return Decided(claim)
    return claim


async def _decide(
    session: AsyncSession,
    claim_id: int,
    actor_person_id: int,
    status: str,
    now: datetime,
    reason: str | None = None,
    update_id: int | None = None,
) -> ClaimView | ClaimRefusal | Decided:
    if update_id is not None:
        mine = await session.scalar(
            select(ActivityClaim.id).where(
                ActivityClaim.id == claim_id,
                ActivityClaim.decided_update_id == update_id,
                ActivityClaim.status == status,
            )
        )
        if mine is not None:  # this update decided it, and runs again: the decision it made
            return await claim_view(session, claim_id) or ClaimRefusal.not_found
    checked = await precheck(session, claim_id, actor_person_id)
    if not isinstance(checked, ClaimView):
        return checked
    result = await session.execute(
        update(ActivityClaim)
        .where(ActivityClaim.id == claim_id, ActivityClaim.status == PENDING)
        .values(
            status=status,
            decided_by_id=actor_person_id,
            decided_at=now,
            refusal_reason=reason,
            decided_update_id=update_id,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        decided = await claim_view(session, claim_id)
        assert decided is not None
        return Decided(decided)
    decided = await claim_view(session, claim_id)
    assert decided is not None
    return decided


async def approve_claim(
    session: AsyncSession,
    policy: Policy,
    claim_id: int,
    cadre_person_id: int,
    *,
    now: datetime,
    update_id: int | None = None,
) -> tuple[ClaimView, Change] | ClaimRefusal | Decided:
    """Approve, with the points (once per claim). ``update_id``: the Telegram update asking;
    run again (its first run failed telling the volunteer), it gets the approval it made,
    not a refusal, so that it can go on to tell them."""
    decided = await _decide(session, claim_id, cadre_person_id, APPROVED, now, update_id=update_id)
    if not isinstance(decided, ClaimView):
        return decided
    change = await points.earn(
        session,
        policy,
        decided.person_id,
        points.Kind.activity,
        policy.rules.activities.get(decided.activity, 0),
        key=f"claim:{claim_id}",
        cap_day=policy.cap_day(decided.created_at),
        now=now,
        approver_id=cadre_person_id,
        claim_id=claim_id,
    )
    return decided, change


async def refuse_claim(
    session: AsyncSession,
    claim_id: int,
    cadre_person_id: int,
    reason: str,
    *,
    now: datetime,
    update_id: int | None = None,
) -> ClaimView | ClaimRefusal | Decided:
    """Refuse with a reason; ``update_id`` as for ``approve_claim``."""
    reason = " ".join(reason.split())[:MAX_TEXT]
    if not reason:
        return ClaimRefusal.needs_reason
    return await _decide(session, claim_id, cadre_person_id, REFUSED, now, reason, update_id)


async def pending_for(session: AsyncSession, cadre_person_id: int) -> list[ClaimView]:
    """Claims waiting in the villages this person is a cadre of (not their own), oldest first."""
    villages = select(RoleGrant.area_id).where(
        RoleGrant.person_id == cadre_person_id, RoleGrant.role == Role.cadre.value
    )
    ids = await session.scalars(
        select(ActivityClaim.id)
        .where(
            ActivityClaim.status == PENDING,
            ActivityClaim.village_id.in_(villages),
            ActivityClaim.person_id != cadre_person_id,
        )
        .order_by(ActivityClaim.id)
        .limit(20)
    )
    views = [await claim_view(session, claim_id) for claim_id in ids]
    return [v for v in views if v is not None]
