"""/export end to end: the workbook the bot sends, opened back with openpyxl and checked cell
by cell against the database; progress shown by editing one message; who may not export."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
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
from bot.services import media, people
from bot.services.roles import Role
from tests.e2e.conftest import ADMIN, GROUP, STRANGER, start_world
from tests.e2e.helpers import table_counts
from tests.stories import SHANGHAI, local, make_world, story

MONDAY = local(2026, 11, 23, 9, 0)
NOW = MONDAY.astimezone(UTC)
LEADER, VOLUNTEER = 7001, 4001
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
            )
            await story(
                s,
                w,
                "NH-XS",
                local(2026, 11, 1, 9),
                ("assign", local(2026, 11, 1), local(2026, 11, 10)),
            )
            await story(
                s,
                w,
                "NH-XS",
                local(2026, 11, 2, 9),
                ("assign", local(2026, 11, 2), local(2026, 11, 12)),
                ("submit", local(2026, 11, 5)),
            )
            await story(
                s,
                w,
                "NH-BH",
                local(2026, 6, 1, 9),
                ("assign", local(2026, 6, 1), local(2026, 6, 8)),
                ("reject", local(2026, 6, 2)),
            )
            await story(s, w, None, local(2026, 11, 22, 20))  # reported, not yet assigned
            await story(
                s,
                w,
                "NH-DQ",
                local(2025, 12, 30, 9),  # last year: not in 2026's problems, overdue in its ranking
                ("assign", local(2025, 12, 30), local(2026, 1, 5)),
            )
            # the first problem's photos are in the media store; the others' not yet
            photos = await s.scalars(select(models.ProblemPhoto).order_by(models.ProblemPhoto.id))
            first_two = list(photos)[:2]
            for i, photo in enumerate(first_two):
                sha = h.services.media.put(f"photo {i}".encode())
                await media.mark_stored(s, photo.id, sha, 7)
            leader = await people.ensure_person(s, LEADER, "刘领导", None)
            await people.grant_role(s, leader.id, Role.leader, w.areas["NH"])
        yield h


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


def _values(ws: Worksheet) -> list[list[Any]]:
    return [[cell.value for cell in row] for row in ws.iter_rows()]


async def test_the_ledger_cell_by_cell(ledger_bot: Harness) -> None:
    h = ledger_bot
    await h.reply_to(ADMIN, "/start")
    before = await table_counts(h)
    progress, document = await _export(h, ADMIN)
    assert progress.text == "✅ 台账已生成（2026年）：6 个问题，2 张表。"
    assert progress.edits and "⏳ 正在生成台账（2026年）" in (progress.edits[0][1] or "")
    assert document.document is not None
    assert document.document["file_name"] == "greengrid-台账-2026-01-01_2026-12-31.xlsx"
    assert document.content == "台账 · 2026年（截至 2026-11-23 09:00）"
    book = _book(h, document)
    assert book.sheetnames == ["问题台账", "晾晒排名"]

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
         "第 1/2 名，居中、有问题超期 321 天（超过 7 天即红码）"],
        [2, "西山街道", "NH-XS", "红码", 0.0, 2, 0, 0, 2, 2, 0, 0, None,
         "第 2/2 名，居中、有问题超期 12 天（超过 7 天即红码）"],
        [None, "北湖镇", "NH-BH", "未排名", None, 0, 0, 0, 0, 0, None, None, None,
         "交办 0 件，少于 1 件"],
    ]  # fmt: skip
    assert ranking["D2"].fill.fgColor.rgb.endswith("D64541")
    assert ranking["D3"].fill.fgColor.rgb.endswith("D64541")
    assert ranking["K2"].number_format == "0%"
    notes = [r[0] for r in rows[5:] if r[0]]
    assert notes[0].startswith("统计区间：2026年（2026-01-01 至 2026-12-31，按交办时间）")
    assert notes[1].startswith("算法：得分 = 100 ×")
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
    assert progress.text == "✅ 台账已生成（2026年）：1206 个问题，2 张表。"
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
