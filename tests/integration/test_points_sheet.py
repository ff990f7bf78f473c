"""The ledger workbook's points sheet on each database: the window's entries in time order and
each one's balance after it (a running sum in SQL, which SQLite and PostgreSQL both compute)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from bot.db import Database
from bot.i18n import Catalogues
from bot.rules import load_rules
from bot.services import ledger, points
from bot.services.ledger import Cell, ExportRequest
from bot.services.media import MediaStore
from bot.services.points import Kind
from bot.services.roles import Role
from bot.services.windows import WindowKind, period
from tests.integration.points_world import T0, ZONE, cast_of, policy


async def _no_progress(_stage: str, _done: int, _total: int) -> None:
    return None


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Cell) else value


async def test_points_sheet_balances_and_window(db: Database, tmp_path: Any) -> None:
    volunteer, other, admin = await cast_of(
        db,
        [
            ("赵志愿", ((Role.volunteer, "NH-DQ-01"),)),
            ("钱志愿", ((Role.volunteer, "NH-XS-01"),)),
            ("王主任", ((Role.admin, "NH"),)),
        ],
    )
    rules = policy()
    day = timedelta(days=1)
    async with db.begin() as s:
        # October (before the window): +5 for the volunteer
        await points.earn(
            s, rules, volunteer.id, Kind.activity, 5, key="a", cap_day=date(2026, 10, 1),
            now=T0 - 30 * day,
        )  # fmt: skip
        # November: +3 each, then a correction of −2 for the volunteer
        await points.earn(
            s, rules, volunteer.id, Kind.activity, 3, key="b", cap_day=date(2026, 11, 2), now=T0
        )
        await points.earn(
            s, rules, other.id, Kind.activity, 3, key="c", cap_day=date(2026, 11, 2),
            now=T0 + timedelta(minutes=1),
        )  # fmt: skip
        await points.correct(s, volunteer.id, -2, admin_id=admin.id, reason="更正", now=T0 + day)
    tr = Catalogues("zh_CN").translator("zh_CN")
    request = ExportRequest(
        window=period(WindowKind.month, date(2026, 11, 2), ZONE),
        as_of=T0 + 2 * day,
        zone=ZONE,
        rules=load_rules(),
        media=MediaStore(tmp_path),
        tr=tr,
        locale="zh_CN",
    )
    async with db.begin() as s:
        sheet = await ledger.points_sheet(s, request, _no_progress)
    rows = [[_plain(v) for v in row] for row in sheet.rows]
    assert [(r[1], r[2], r[3], r[6], r[9]) for r in rows] == [
        ("赵志愿", "东桥村", "活动申报", 3, 8),  # October's 5 before it
        ("钱志愿", "西山社区", "活动申报", 3, 3),
        ("赵志愿", "东桥村", "管理员更正", -2, 6),
    ]
    assert rows[2][4] == "更正" and rows[2][8] == "王主任"
