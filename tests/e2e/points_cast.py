"""The people of the points tests, with their roles, each having opened the bot; and the
tests' own reading of the ledger."""

from __future__ import annotations

import re

from sqlalchemy import func, select

import models
from bot.harness import Harness
from bot.services import people
from bot.services.roles import Role
from tests.e2e.conftest import ADMIN, STRANGER

VOLUNTEER, OTHER_VOLUNTEER, LONELY_VOLUNTEER = 4001, 4002, 4003
CADRE, SECOND_CADRE, OTHER_CADRE = 3001, 3003, 3002
SHOP, OTHER_SHOP = 5101, 5102
LIAISON, INSPECTOR = 2001, 2101

CAST = [
    (VOLUNTEER, "赵志愿", Role.volunteer, "NH-DQ-01"),
    (OTHER_VOLUNTEER, "钱志愿", Role.volunteer, "NH-DQ-01"),
    (LONELY_VOLUNTEER, "孙志愿", Role.volunteer, "NH-BH-01"),  # a village with no cadre
    (CADRE, "陈干部", Role.cadre, "NH-DQ-01"),
    (SECOND_CADRE, "林干部", Role.cadre, "NH-DQ-01"),
    (OTHER_CADRE, "周干部", Role.cadre, "NH-XS-01"),
    (SHOP, "东桥超市", Role.shop, "NH-DQ-01"),
    (OTHER_SHOP, "西山超市", Role.shop, "NH-XS-01"),
    (LIAISON, "李联络", Role.liaison, "NH-DQ"),
    (INSPECTOR, "张网格", Role.inspector, "NH-DQ"),
]
CODE_IN = re.compile(r"\b(\d{6})\b")


async def grant(h: Harness, telegram_id: int, name: str, role: Role, area_code: str) -> None:
    async with h.db.begin() as session:
        person = await people.ensure_person(session, telegram_id, name, None)
        area_id = await session.scalar(select(models.Area.id).where(models.Area.code == area_code))
        await people.grant_role(session, person.id, role, area_id)


async def seat(h: Harness) -> Harness:
    for uid, name, role, area in CAST:
        if uid not in h.sb.users:
            h.sb.add_user(uid, name)
        await grant(h, uid, name, role, area)
    everyone = (ADMIN, STRANGER, *(c[0] for c in CAST))
    mark = h.sb.mark()
    for uid in everyone:  # all at once: the bot takes them in one batch
        h.sb.send_text(uid, "/start")
    for uid in everyone:
        await h.sb.wait_messages(uid, n=1, since=mark)
    return h


async def balance(h: Harness, telegram_id: int) -> int:
    async with h.db.begin() as session:
        value = await session.scalar(
            select(models.PointsAccount.balance)
            .join(models.Person, models.Person.id == models.PointsAccount.person_id)
            .where(models.Person.telegram_id == telegram_id)
        )
    return int(value or 0)


async def ledger(h: Harness, telegram_id: int) -> list[tuple[str, int]]:
    async with h.db.begin() as session:
        rows = await session.execute(
            select(models.PointsEntry.kind, models.PointsEntry.amount)
            .join(models.Person, models.Person.id == models.PointsEntry.person_id)
            .where(models.Person.telegram_id == telegram_id)
            .order_by(models.PointsEntry.id)
        )
        return [(kind, amount) for kind, amount in rows]


async def points_rows(h: Harness) -> dict[str, int]:
    """How many rows each points table holds (a refusal changes none but the attempts)."""
    counts = {}
    async with h.db.begin() as session:
        for model in (
            models.PointsEntry,
            models.PointsAccount,
            models.ActivityClaim,
            models.RedemptionCode,
        ):
            counts[model.__tablename__] = (
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
        counts["balance_sum"] = (
            await session.scalar(select(func.coalesce(func.sum(models.PointsAccount.balance), 0)))
            or 0
        )
    return counts


async def fund(h: Harness, telegram_id: int, amount: int) -> None:
    """An admin's correction in chat: the way points appear without earning them."""
    mark = h.sb.mark()
    done = await h.reply_to(ADMIN, f"/adjust {telegram_id} +{amount} 开户测试")
    assert "已为" in done.content, done.content
    await h.wait_for(telegram_id, mark, "更正了你的积分")
