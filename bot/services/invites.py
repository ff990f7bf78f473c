"""Invite deep links: an admin or cadre makes one for a role and an area; people join with it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.people import Actor, grant_role, holds_role
from bot.services.roles import ROLE_AREA_KIND, AreaKind, Role, may_invite
from models import Area, Invite, InviteUse

# Deep-link payloads allow A-Z, a-z, 0-9, _ and - up to 64 characters.
CODE_BYTES = 9  # 12 url-safe characters, 72 bits: not guessable


class InviteRefusal(StrEnum):
    not_allowed = "not_allowed"
    wrong_area_kind = "wrong_area_kind"
    unknown_area = "unknown_area"


class JoinOutcome(StrEnum):
    joined = "joined"
    already_member = "already_member"
    unknown = "unknown"
    expired = "expired"
    used_up = "used_up"


@dataclass(frozen=True)
class InviteView:
    code: str
    role: Role
    area_name: str
    max_uses: int | None
    expires_at: datetime


@dataclass(frozen=True)
class JoinResult:
    outcome: JoinOutcome
    role: Role | None = None
    area_name: str | None = None


async def create_invite(
    session: AsyncSession,
    inviter: Actor,
    role: Role,
    area_id: int,
    *,
    max_uses: int | None,
    valid_for: timedelta,
    now: datetime,
) -> InviteView | InviteRefusal:
    area = await session.get(Area, area_id)
    if area is None:
        return InviteRefusal.unknown_area
    if AreaKind(area.kind) is not ROLE_AREA_KIND[role]:
        return InviteRefusal.wrong_area_kind
    if not may_invite(inviter.role_set, inviter.area_ids(Role.cadre), role, area_id):
        return InviteRefusal.not_allowed
    invite = Invite(
        code=secrets.token_urlsafe(CODE_BYTES),
        role=role.value,
        area_id=area_id,
        created_by_id=inviter.person_id,
        max_uses=max_uses,
        expires_at=now + valid_for,
    )
    session.add(invite)
    await session.flush()
    return InviteView(invite.code, role, area.name, max_uses, invite.expires_at)


async def join_with_invite(
    session: AsyncSession, code: str, person_id: int, now: datetime
) -> JoinResult:
    """Spend one use of the invite and grant its role. A second click by the same person is not
    a second use; the use count is raised in one conditional UPDATE, so two people racing for the
    last use of a single-use link cannot both get it."""
    row = (
        await session.execute(
            select(Invite, Area.name)
            .join(Area, Area.id == Invite.area_id)
            .where(Invite.code == code)
        )
    ).first()
    if row is None:
        return JoinResult(JoinOutcome.unknown)
    invite, area_name = row
    role = Role(invite.role)
    used_before = await session.scalars(
        select(InviteUse.id).where(
            InviteUse.invite_id == invite.id, InviteUse.person_id == person_id
        )
    )
    if used_before.first() is not None:
        return JoinResult(JoinOutcome.already_member, role, area_name)
    if await holds_role(session, person_id, role, invite.area_id):
        # Someone who already has the role spends no use: a single-use link stays for the
        # person it was meant for.
        return JoinResult(JoinOutcome.already_member, role, area_name)
    if invite.expires_at <= now:
        return JoinResult(JoinOutcome.expired, role, area_name)
    spent = await session.execute(
        update(Invite)
        .where(
            Invite.id == invite.id,
            (Invite.max_uses.is_(None)) | (Invite.use_count < Invite.max_uses),
        )
        .values(use_count=Invite.use_count + 1)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount == 0:  # type: ignore[attr-defined]
        return JoinResult(JoinOutcome.used_up, role, area_name)
    try:
        async with session.begin_nested():
            session.add(InviteUse(invite_id=invite.id, person_id=person_id, used_at=now))
    except IntegrityError:  # the same person clicked twice at once
        return JoinResult(JoinOutcome.already_member, role, area_name)
    granted = await grant_role(
        session,
        person_id,
        role,
        invite.area_id,
        granted_by_id=invite.created_by_id,
        invite_id=invite.id,
    )
    return JoinResult(
        JoinOutcome.joined if granted else JoinOutcome.already_member, role, area_name
    )
