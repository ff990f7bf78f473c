"""/export end to end: the workbook the bot sends, opened back with openpyxl and checked cell
by cell against the database; progress shown by editing one message; who may not export."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import insert, select
from sqlalchemy.orm import aliased

import handlers.export
import models
from bot.harness import Clock, Harness, running_bot
from bot.sandbox import SentMessage
from bot.services import claims, media, people, points, redemptions
from bot.services.points import Policy
from bot.services.problems import PhotoIn
from bot.services.roles import Role
from tests.e2e.conftest import ADMIN, GROUP, STRANGER, start_world
from tests.e2e.helpers import table_counts
from tests.stories import SHANGHAI, local, make_world, story

MONDAY = local(2026, 11, 23, 9, 0)
NOW = MONDAY.astimezone(UTC)
LEADER, VOLUNTEER, CADRE, SHOP = 7001, 4001, 7002, 7003
STATUS = {
    "reported": "待交办",
    "rectifying": "整改中",
    "pending_check": "待核查",
    "closed": "已销号",
    "rejected": "不予受理",
}
PROBLEM_HEADERS = [
    "编号", "类别", "状态", "属地单位", "村/社区", "上报人", "问题描述", "位置", "上报时间",
    "交办时间", "整改期限", "申请延期至", "提交整改时间", "销号时间", "是否超期", "按期整改",
    "整改天数", "整改前照片", "整改后照片",
]  # fmt: skip
RANKING_HEADERS = [
    "名次", "属地单位", "单位代码", "颜色", "得分", "交办", "已销号", "按期销号", "应办结",
    "超期", "整改率", "按期率", "平均整改天数", "说明",
]  # fmt: skip


@pytest.fixture
async def ledger_bot(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", clock=Clock(fixed=MONDAY)
    ) as h:
        await start_world(h)
        h.sb.add_user(LEADER, "刘领导")
        policy = Policy(h.services.rules.points, SHANGHAI)
        async with h.db.begin() as s:
            w = await make_world(s)
            await story(
                s,
                w,
                "NH-DQ",
                local(2026, 10, 10, 9),
                ("assign", local(2026, 10, 10), local(2026, 10, 15)),
                ("submit", local(2026, 10, 11)),
                ("pass", local(2026, 10, 12)),
                points=policy,
            )
            await story(
                s,
                w,
                "NH-DQ",
                local(2026, 9, 1, 9),
                ("assign", local(2026, 9, 1), local(2026, 9, 4)),
                ("extend", local(2026, 9, 2), local(2026, 9, 20)),
                ("submit", local(2026, 9, 25)),
                ("pass", local(2026, 9, 26)),
                points=policy,
            )
            await story(
                s,
                w,
                "NH-XS",
                local(2026, 11, 1, 9),
                ("assign", local(2026, 11, 1), local(2026, 11, 10)),
                points=policy,
            )
            await story(
                s,
                w,
                "NH-XS",
                local(2026, 11, 2, 9),
                ("assign", local(2026, 11, 2), local(2026, 11, 12)),
                ("submit", local(2026, 11, 5)),
                points=policy,
            )
            await story(
                s,
                w,
                "NH-BH",
                local(2026, 6, 1, 9),
                ("assign", local(2026, 6, 1), local(2026, 6, 8)),
                ("reject", local(2026, 6, 2)),
                points=policy,
            )
            await story(s, w, None, local(2026, 11, 22, 20), points=policy)  # not yet assigned
            await story(
                s,
                w,
                "NH-DQ",
                local(2025, 12, 30, 9),  # last year: not in 2026's problems, overdue in its ranking
                ("assign", local(2025, 12, 30), local(2026, 1, 5)),
                points=policy,
            )
            # the first problem's photos are in the media store; the others' not yet
            photos = await s.scalars(select(models.ProblemPhoto).order_by(models.ProblemPhoto.id))
            first_two = list(photos)[:2]
            for i, photo in enumerate(first_two):
                sha = h.services.media.put(f"photo {i}".encode())
                await media.mark_stored(s, photo.id, sha, 7)
            leader = await people.ensure_person(s, LEADER, "刘领导", None)
            await people.grant_role(s, leader.id, Role.leader, w.areas["NH"])
            await _points_history(s, h, w)
        yield h


async def _points_history(s: Any, h: Harness, w: Any) -> None:
    """Beside the reporter's problem points (assigned +2, closed +3, taken back when 北湖's
    problem was rejected): a claim approved by the village's cadre, a checkout at the shop,
    an admin's correction, and an earning the daily cap cut."""
    policy = Policy(h.services.rules.points, SHANGHAI)
    cadre = await people.ensure_person(s, CADRE, "陈干部", None)
    await people.grant_role(s, cadre.id, Role.cadre, w.areas["NH-DQ-01"])
    shop = await people.ensure_person(s, SHOP, "东桥超市", None)
    await people.grant_role(s, shop.id, Role.shop, w.areas["NH-DQ-01"])
    claim = await claims.submit_claim(
        s, policy, w.reporter_id, "cleanup", PhotoIn("claim-photo", "claim-unique"),
        "清理河道", now=local(2026, 10, 20, 9),
    )  # fmt: skip
    assert isinstance(claim, claims.ClaimView)
    assert not isinstance(
        await claims.approve_claim(s, policy, claim.id, cadre.id, now=local(2026, 10, 20, 12)),
        (claims.ClaimRefusal, claims.Decided),
    )
    issued = await redemptions.issue_code(s, policy, w.reporter_id, now=local(2026, 10, 21, 9))
    assert isinstance(issued, redemptions.IssuedCode)
    receipt = await redemptions.checkout(
        s, policy, shop.id, w.areas["NH-DQ-01"], issued.code, 4, now=local(2026, 10, 21, 9, 5)
    )
    assert not isinstance(receipt, redemptions.CheckoutRefused)
    await points.correct(
        s, w.reporter_id, -1, admin_id=w.admin_id, reason="重复计分更正", now=local(2026, 10, 22)
    )
    # 18 earned on 11-03 already: a +5 claim that day is cut to 2 (nominal 5)
    await points.earn(
        s, policy, w.reporter_id, points.Kind.activity, 18, key="test:big",
        cap_day=date(2026, 11, 3), now=local(2026, 11, 3, 9), approver_id=cadre.id,
    )  # fmt: skip
    await points.earn(
        s, policy, w.reporter_id, points.Kind.activity, 5, key="test:capped",
        cap_day=date(2026, 11, 3), now=local(2026, 11, 3, 10), approver_id=cadre.id,
    )  # fmt: skip


async def _export(h: Harness, user: int, words: str = "") -> tuple[SentMessage, SentMessage]:
    """The progress message (as finally edited) and the document."""
    mark = h.sb.mark()
    h.sb.send_text(user, f"/export {words}".strip())
    document = await h.wait_for(user, mark, "台账 ·", timeout=20)
    progress = next(m for m in h.sb.sent(user) if m.seq > mark and not m.document)
    await h.sb.wait_until(lambda: "✅" in (progress.text or ""), what="the progress to finish")
    return progress, document


def _book(h: Harness, document: SentMessage) -> Any:
    assert document.document is not None
    stored = h.sb.file_for(document.document["file_id"])
    assert stored is not None
    return load_workbook(io.BytesIO(stored.data))


def _local(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(SHANGHAI).replace(tzinfo=None, microsecond=0)


async def _expected_problem_rows(h: Harness, first: datetime, end: datetime) -> list[list[Any]]:
    """What each row must hold, read from the database with the test's own rules."""
    subject, village = aliased(models.Area), aliased(models.Area)
    async with h.db.begin() as s:
        rows = (
            await s.execute(
                select(models.Problem, subject.name, village.name, models.Person.full_name)
                .outerjoin(subject, subject.id == models.Problem.subject_id)
                .outerjoin(village, village.id == models.Problem.village_id)
                .join(models.Person, models.Person.id == models.Problem.reporter_id)
                .order_by(models.Problem.id)
            )
        ).all()
        photos = (
            await s.execute(
                select(
                    models.ProblemPhoto.problem_id,
                    models.ProblemPhoto.kind,
                    models.ProblemPhoto.sha256,
                ).order_by(models.ProblemPhoto.id)
            )
        ).all()
    expected = []
    for p, subject_name, village_name, reporter in rows:
        in_window = first <= p.created_at < end or (
            p.assigned_at is not None and first <= p.assigned_at < end
        )
        if not in_window:
            continue
        open_ = p.status in ("rectifying", "pending_check")
        overdue = open_ and p.deadline is not None and p.deadline < NOW
        assigned = p.status in ("rectifying", "pending_check", "closed")
        on_time = (
            ("是" if p.submitted_on_time else "否")
            if p.status == "closed"
            else "否"
            if overdue
            else None
        )
        days = (
            round((p.submitted_at - p.assigned_at).total_seconds() / 86400, 1)
            if p.status == "closed"
            else None
        )

        def shots(kind: str, problem_id: int = p.id) -> str | None:
            found = [sha for pid, k, sha in photos if pid == problem_id and k == kind]
            if not found:
                return None
            return "\n".join(
                str(h.services.media.path_for(sha)) if sha else "（照片尚未下载）" for sha in found
            )

        category = h.services.rules.category(p.category)
        assert category is not None
        location = p.address or (
            f"{p.latitude:.5f}, {p.longitude:.5f}" if p.latitude is not None else None
        )
        expected.append([
            p.code, category.name.zh_CN, STATUS[p.status], subject_name, village_name, reporter,
            p.description or None, location, _local(p.created_at),
            _local(p.assigned_at), _local(p.deadline), _local(p.extension_until),
            _local(p.submitted_at), _local(p.closed_at),
            ("是" if overdue else "否") if assigned else None, on_time, days,
            shots("before"), shots("after"),
        ])  # fmt: skip
    return expected


POINTS_HEADERS = [
    "时间", "志愿者", "村/社区", "类型", "说明", "来源", "积分", "应得积分", "审核/经办人",
    "变动后余额",
]  # fmt: skip
POINTS_KIND = {
    "problem_assigned": "上报问题交办",
    "problem_closed": "上报问题销号",
    "problem_reversed": "不予受理扣回",
    "activity": "活动申报",
    "redemption": "积分兑换",
    "correction": "管理员更正",
}


async def _expected_points_rows(h: Harness, first: datetime, end: datetime) -> list[list[Any]]:
    """Every entry of the window, its balance after recounted from the whole ledger in the
    order it was written, and each name looked up on its own."""
    async with h.db.begin() as s:
        entries = list(await s.scalars(select(models.PointsEntry).order_by(models.PointsEntry.id)))
        names = dict((await s.execute(select(models.Person.id, models.Person.full_name))).all())
        codes = dict((await s.execute(select(models.Problem.id, models.Problem.code))).all())
        activities = dict(
            (await s.execute(select(models.ActivityClaim.id, models.ActivityClaim.activity))).all()
        )
        grants = (
            await s.execute(
                select(models.RoleGrant.person_id, models.Area.name)
                .join(models.Area, models.Area.id == models.RoleGrant.area_id)
                .where(models.RoleGrant.role == "volunteer")
                .order_by(models.RoleGrant.id)
            )
        ).all()
    village: dict[int, str] = {}
    for person_id, name in grants:
        village.setdefault(person_id, name)
    balances: dict[int, int] = {}
    after: dict[int, int] = {}
    for e in entries:
        balances[e.person_id] = balances.get(e.person_id, 0) + e.amount
        after[e.id] = balances[e.person_id]
    activity_names = {"cleanup": "清理"}
    rows = []
    for e in sorted(entries, key=lambda e: (e.at, e.id)):
        if not first <= e.at < end:
            continue
        if e.problem_id is not None:
            source: str | None = codes[e.problem_id]
        elif e.claim_id is not None:
            source = f"活动申报 #{e.claim_id}"
        elif e.redemption_id is not None:
            source = f"兑换单 R{e.redemption_id:06d}"
        else:
            source = None
        reason = e.note or (activity_names[activities[e.claim_id]] if e.claim_id else None)
        rows.append([
            _local(e.at), names[e.person_id], village.get(e.person_id), POINTS_KIND[e.kind],
            reason, source, e.amount, e.nominal,
            names[e.approver_id] if e.approver_id else None, after[e.id],
        ])  # fmt: skip
    return rows


def _values(ws: Worksheet) -> list[list[Any]]:
    return [[cell.value for cell in row] for row in ws.iter_rows()]


async def test_the_ledger_cell_by_cell(ledger_bot: Harness) -> None:
    h = ledger_bot
    await h.reply_to(ADMIN, "/start")
    before = await table_counts(h)
    progress, document = await _export(h, ADMIN)
    assert progress.text == "✅ 台账已生成（2026年）：6 个问题，3 张表。"
    assert progress.edits and "⏳ 正在生成台账（2026年）" in (progress.edits[0][1] or "")
    assert document.document is not None
    assert document.document["file_name"] == "greengrid-台账-2026-01-01_2026-12-31.xlsx"
    assert document.content == "台账 · 2026年（截至 2026-11-23 09:00）"
    book = _book(h, document)
    assert book.sheetnames == ["问题台账", "晾晒排名", "积分台账"]

    problems = book["问题台账"]
    values = _values(problems)
    assert values[0] == PROBLEM_HEADERS
    expected = await _expected_problem_rows(
        h, local(2026, 1, 1, 0).astimezone(UTC), local(2027, 1, 1, 0).astimezone(UTC)
    )
    assert len(expected) == 6  # 2025's problem is not in 2026's ledger
    assert values[1:] == expected
    assert problems.freeze_panes == "A2"
    for column in ("I", "J", "K", "M", "N"):  # L, an extension asked and not yet decided: none
        cells = [c for c in problems[column][1:] if c.value is not None]
        assert cells and all(isinstance(c.value, datetime) for c in cells)
        assert all(c.number_format == "yyyy-mm-dd hh:mm" for c in cells)
    assert problems.column_dimensions["I"].width >= 16
    photo_cell = problems["R2"]
    assert photo_cell.hyperlink is not None
    assert photo_cell.hyperlink.target.startswith("file://")
    overdue_cells = [row[14] for row in problems.iter_rows(min_row=2) if row[14].value == "是"]
    assert overdue_cells and all(c.fill.fgColor.rgb.endswith("F2C2C2") for c in overdue_cells)

    ranking = book["晾晒排名"]
    rows = _values(ranking)
    assert rows[0] == RANKING_HEADERS
    # 东桥: both closed, one on time (the other was submitted on 09-25, after its extended
    # deadline of 09-20), in 1 and 24 days; and 2025's problem, still open, overdue since
    # 2026-01-05: 100 × (0.5 × 2/2 + 0.5 × 1/2) − 5 × 1 = 70, red by its 321 days.
    # 西山: none closed, both overdue (one submitted, not yet checked): 0 − 10 → 0, red by the
    # 12 days since 11-10. 北湖: its one problem was rejected: not ranked.
    assert rows[1:4] == [
        [1, "东桥镇", "NH-DQ", "红码", 70.0, 2, 2, 1, 2, 1, 1, 0.5, 12.5,
         "第 1/2 名，居中、有问题超期 322 天（超过 7 天即红码）"],
        [2, "西山街道", "NH-XS", "红码", 0.0, 2, 0, 0, 2, 2, 0, 0, None,
         "第 2/2 名，居中、有问题超期 13 天（超过 7 天即红码）"],
        [None, "北湖镇", "NH-BH", "未排名", None, 0, 0, 0, 0, 0, None, None, None,
         "交办 0 件，少于 1 件"],
    ]  # fmt: skip
    assert ranking["D2"].fill.fgColor.rgb.endswith("D64541")
    assert ranking["D3"].fill.fgColor.rgb.endswith("D64541")
    assert ranking["K2"].number_format == "0%"
    notes = [r[0] for r in rows[5:] if r[0]]
    assert notes[0].startswith("统计区间：2026年（2026-01-01 至 2026-12-31，按交办时间）")
    assert notes[1].startswith("算法：得分 = 100 ×")

    ledger = book["积分台账"]
    rows = _values(ledger)
    assert rows[0] == POINTS_HEADERS
    expected_points = await _expected_points_rows(
        h, local(2026, 1, 1, 0).astimezone(UTC), local(2027, 1, 1, 0).astimezone(UTC)
    )
    assert rows[1:] == expected_points
    # What the test put there, by hand: 2025's assignment (+2, in 2025) is not in 2026's sheet
    # By hand. The balance after is the person's entries summed in the order they were
    # written, and this fixture wrote its history out of order (10-10's problem first, then
    # 09-01's, 11-01's, 11-02's, 06-01's, 2025's, then the rest): in the bot, time and writing
    # go together. 2025's assignment (+2) is not in 2026's sheet but is in the balances.
    assert [(r[3], r[6], r[7], r[9]) for r in rows[1:]] == [
        ("上报问题交办", 2, 2, 16),  # 北湖's problem, 06-01: written after 2+3+2+3+2+2
        ("不予受理扣回", -2, -2, 14),  # rejected the next day: the 2 taken back
        ("上报问题交办", 2, 2, 7),  # the extended one, 09-01, written after 10-10's 2+3
        ("上报问题销号", 3, 3, 10),
        ("上报问题交办", 2, 2, 2),  # 10-10's, written first
        ("上报问题销号", 3, 3, 5),
        ("活动申报", 5, 5, 21),  # the claim, approved 10-20: after the reversal (14) and 2025's +2
        ("积分兑换", -4, -4, 17),
        ("管理员更正", -1, -1, 16),
        ("上报问题交办", 2, 2, 12),  # 西山's, 11-01 and 11-02
        ("上报问题交办", 2, 2, 14),
        ("活动申报", 18, 18, 34),
        ("活动申报", 2, 5, 36),  # 18 earned on 11-03 already: cut to 2 by the cap of 20
    ]
    assert rows[7][4] == "清理" and rows[7][5].startswith("活动申报 #")
    assert rows[8][5].startswith("兑换单 R") and rows[8][8] == "东桥超市"
    assert rows[9][4] == "重复计分更正" and rows[9][8] == "王主任"
    assert {r[1] for r in rows[1:]} == {"赵志愿"} and {r[2] for r in rows[1:]} == {"东桥村"}
    assert ledger["H14"].fill.fgColor.rgb.endswith("F2B600")  # the nominal differs: marked
    assert ledger["G9"].fill.fgColor.rgb.endswith("F2C2C2")  # a debit
    assert all(
        isinstance(c.value, datetime) and c.number_format == "yyyy-mm-dd hh:mm"
        for c in ledger["A"][1:]
    )
    assert await table_counts(h) == before  # an export changes nothing


async def test_a_long_export_shows_its_progress(
    ledger_bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,200 more problems (three pages): the one progress message counts them as it goes."""
    h = ledger_bot
    monkeypatch.setattr(handlers.export, "EDIT_EVERY_S", 0.0)  # show every page
    async with h.db.begin() as s:
        reporter = await s.scalar(
            select(models.Person.id).where(models.Person.telegram_id == 91_002)
        )
        created = local(2026, 3, 1).astimezone(UTC)
        await s.execute(
            insert(models.Problem),
            [
                {"code": f"NH-2026-{9000 + i}", "year": 2026, "seq": 9000 + i,
                 "category": "noise", "description": "", "status": "reported",
                 "reporter_id": reporter, "created_at": created + timedelta(minutes=i)}
                for i in range(1200)
            ],
        )  # fmt: skip
    await h.reply_to(LEADER, "/start")
    progress, document = await _export(h, LEADER, "2026")  # a leader may export too
    shown = [text or "" for _seq, text in progress.edits]
    counted = [t for t in shown if "问题" in t and "/1206" in t]
    assert [t.split("问题 ")[1] for t in counted][:4] == [
        "0/1206",
        "500/1206",
        "1000/1206",
        "1206/1206",
    ]
    assert progress.text == "✅ 台账已生成（2026年）：1206 个问题，3 张表。"
    assert _book(h, document)["问题台账"].max_row == 1207


async def test_who_may_not_export_and_where(ledger_bot: Harness) -> None:
    h = ledger_bot
    for uid in (ADMIN, STRANGER, VOLUNTEER):
        await h.reply_to(uid, "/start")
    assert "只有管理员和分管领导" in (await h.reply_to(STRANGER, "/export")).content
    async with h.db.begin() as s:
        person = await people.ensure_person(s, VOLUNTEER, "赵志愿", None)
        area = await s.scalar(select(models.Area.id).where(models.Area.code == "NH-DQ-01"))
        await people.grant_role(s, person.id, Role.volunteer, area)
    in_group = await h.reply_to(ADMIN, "/export", chat_id=GROUP)  # the group is noted here
    assert "私聊" in in_group.content and not in_group.document
    before = await table_counts(h)
    assert "只有管理员和分管领导" in (await h.reply_to(VOLUNTEER, "/export")).content
    assert "私聊" in (await h.reply_to(ADMIN, "/export", chat_id=GROUP)).content
    bad = await h.reply_to(ADMIN, "/export 2026-13")
    assert "不是有效的月份" in bad.content
    assert not [m for m in h.sb.sent() if m.document]
    assert await table_counts(h) == before
