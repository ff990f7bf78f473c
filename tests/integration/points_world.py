"""A small district for the points tests: people with roles, and the tests' own reading of the
ledger (independent of the code under test)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.db import Database
from bot.rules import load_rules
from bot.services import people
from bot.services.org import import_org, parse_org_file
from bot.services.points import Policy
from bot.services.roles import Role
from models import Area, PointsAccount, PointsEntry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai, a Monday

_telegram_ids = itertools.count(500_000)


def policy(**changes: object) -> Policy:
    rules = load_rules().points
    return Policy(rules.model_copy(update=changes), ZONE)


_areas: dict[str, dict[str, int]] = {}


async def import_areas(db: Database) -> dict[str, int]:
    """The example organisation's areas (imported once per database)."""
    key = str(db.engine.url)
    if key not in _areas or not await _still_there(db):
        async with db.begin() as s:
            if await s.scalar(select(func.count()).select_from(Area)) == 0:
                await import_org(s, parse_org_file(EXAMPLES / "org.yaml"))
            _areas[key] = {a.code: a.id for a in (await s.scalars(select(Area))).all()}
    return _areas[key]


async def _still_there(db: Database) -> bool:
    # PostgreSQL's tables are emptied between tests while the URL stays the same.
    async with db.begin() as s:
        return bool(await s.scalar(select(func.count()).select_from(Area)))


@dataclass
class Person:
    id: int
    telegram_id: int
    name: str


async def person(db: Database, name: str, *grants: tuple[Role, str]) -> Person:
    return (await cast_of(db, [(name, grants)]))[0]


async def cast_of(
    db: Database, specs: list[tuple[str, tuple[tuple[Role, str], ...]]]
) -> list[Person]:
    """People with their roles, all in one transaction."""
    areas = await import_areas(db)
    found = []
    async with db.begin() as s:
        for name, grants in specs:
            telegram_id = next(_telegram_ids)
            row = await people.ensure_person(s, telegram_id, name, None)
            for role, code in grants:
                await people.grant_role(s, row.id, role, areas[code])
            found.append(Person(row.id, telegram_id, name))
    return found


async def books(db: Database) -> dict[int, tuple[int, int]]:
    """person id → (sum of their ledger, their kept balance), for everyone in either."""
    async with db.begin() as s:
        sums = dict(
            (
                await s.execute(
                    select(PointsEntry.person_id, func.sum(PointsEntry.amount)).group_by(
                        PointsEntry.person_id
                    )
                )
            ).all()
        )
        balances = dict(
            (await s.execute(select(PointsAccount.person_id, PointsAccount.balance))).all()
        )
    return {
        pid: (int(sums.get(pid) or 0), int(balances.get(pid) or 0))
        for pid in set(sums) | set(balances)
    }


async def assert_books_balance(db: Database) -> None:
    for pid, (total, balance) in (await books(db)).items():
        assert total == balance, f"person {pid}: ledger sums to {total}, balance is {balance}"
        assert balance >= 0, f"person {pid}: balance {balance}"
