"""People, their roles and their language."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.roles import Role
from models import Area, Person, RoleGrant


@dataclass(frozen=True)
class RoleView:
    role: Role
    area_id: int | None
    area_name: str | None


@dataclass(frozen=True)
class Actor:
    """Who is acting on this update: their person row, locale choice and roles."""

    person_id: int
    telegram_id: int
    full_name: str
    locale: str | None
    roles: tuple[RoleView, ...]

    def has(self, *roles: Role) -> bool:
        return any(r.role in roles for r in self.roles)

    @property
    def role_set(self) -> set[Role]:
        return {r.role for r in self.roles}

    def area_ids(self, role: Role) -> list[int]:
        return [r.area_id for r in self.roles if r.role is role and r.area_id is not None]


async def ensure_person(
    session: AsyncSession,
    telegram_id: int,
    full_name: str,
    username: str | None,
    *,
    private: bool = False,
) -> Person:
    """The person for this Telegram account, created on first contact, name kept current."""
    person = (
        await session.scalars(select(Person).where(Person.telegram_id == telegram_id))
    ).first()
    if person is None:
        person = Person(
            telegram_id=telegram_id,
            full_name=full_name[:200],
            username=username,
            started_private=private,
        )
        session.add(person)
        await session.flush()
        return person
    if person.full_name != full_name[:200] or person.username != username:
        person.full_name, person.username = full_name[:200], username
    if private and not person.started_private:
        # Reachable again: if they become unreachable later, the admins are told again.
        person.started_private, person.unreachable_reported_at = True, None
    return person


async def person_by_id(session: AsyncSession, person_id: int) -> Person:
    person = await session.get(Person, person_id)
    if person is None:
        raise LookupError(f"no person {person_id}")
    return person


async def load_actor(session: AsyncSession, person: Person) -> Actor:
    rows = await session.execute(
        select(RoleGrant.role, RoleGrant.area_id, Area.name)
        .outerjoin(Area, Area.id == RoleGrant.area_id)
        .where(RoleGrant.person_id == person.id)
        .order_by(RoleGrant.id)
    )
    roles = tuple(RoleView(Role(role), area_id, name) for role, area_id, name in rows)
    return Actor(person.id, person.telegram_id, person.full_name, person.locale, roles)


async def holds_role(
    session: AsyncSession, person_id: int, role: Role, area_id: int | None
) -> bool:
    existing = await session.scalars(
        select(RoleGrant.id).where(
            RoleGrant.person_id == person_id,
            RoleGrant.role == role.value,
            RoleGrant.area_id.is_(None) if area_id is None else RoleGrant.area_id == area_id,
        )
    )
    return existing.first() is not None


async def grant_role(
    session: AsyncSession,
    person_id: int,
    role: Role,
    area_id: int | None,
    *,
    granted_by_id: int | None = None,
    invite_id: int | None = None,
) -> bool:
    """Give ``role`` in ``area_id``; False if the person already had it there."""
    if await holds_role(session, person_id, role, area_id):
        return False
    session.add(
        RoleGrant(
            person_id=person_id,
            role=role.value,
            area_id=area_id,
            granted_by_id=granted_by_id,
            invite_id=invite_id,
        )
    )
    await session.flush()
    return True


async def ensure_configured_admin(
    session: AsyncSession, person: Person, admin_ids: Iterable[int], district_id: int | None
) -> None:
    """The first admins come from configuration (ADMIN_IDS)."""
    if person.telegram_id not in set(admin_ids):
        return
    grants = await session.scalars(
        select(RoleGrant).where(RoleGrant.person_id == person.id, RoleGrant.role == Role.admin)
    )
    grant = grants.first()
    if grant is None:
        await grant_role(session, person.id, Role.admin, district_id)
    elif grant.area_id is None and district_id is not None:
        grant.area_id = district_id  # the organisation was imported after the admin first wrote


async def set_locale(session: AsyncSession, person_id: int, locale: str) -> None:
    person = await session.get(Person, person_id)
    if person is not None:
        person.locale = locale


async def locales_of(session: AsyncSession, telegram_ids: Iterable[int]) -> dict[int, str | None]:
    """Each person's chosen language (None: the default), for writing to them."""
    ids = set(telegram_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(Person.telegram_id, Person.locale).where(Person.telegram_id.in_(ids))
    )
    found: dict[int, str | None] = {tid: locale for tid, locale in rows}
    return {tid: found.get(tid) for tid in ids}


async def person_id_for(session: AsyncSession, telegram_id: int) -> int | None:
    person_id: int | None = await session.scalar(
        select(Person.id).where(Person.telegram_id == telegram_id)
    )
    return person_id


@dataclass(frozen=True)
class PersonRef:
    id: int
    telegram_id: int
    full_name: str
    username: str | None
    locale: str | None


async def find_people(session: AsyncSession, text: str, *, limit: int = 5) -> list[PersonRef]:
    """People an admin means by ``text``: ``@username``, a Telegram id, or an exact name."""
    needle = text.strip()
    if needle.startswith("@"):
        condition = func.lower(Person.username) == needle[1:].lower()
    elif needle.isascii() and needle.lstrip("-").isdigit() and len(needle) <= 18:
        condition = Person.telegram_id == int(needle)  # (18 digits: within a 64-bit id)
    else:
        condition = Person.full_name == needle
    rows = await session.scalars(select(Person).where(condition).order_by(Person.id).limit(limit))
    return [PersonRef(p.id, p.telegram_id, p.full_name, p.username, p.locale) for p in rows]
