"""晾晒 end to end: the Monday post through the outbox (once, however often the job fires),
and /rank with its windows and its errors, against the real application and the stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

import models
from bot.harness import Clock, Harness, running_bot
from bot.sandbox import SentMessage
from bot.services import outbox, people
from bot.services.org import AreaSpec, import_org
from bot.services.roles import AreaKind, Role
from jobs.weekly_ranking import weekly_ranking
from tests.e2e.conftest import ADMIN, GROUP, STRANGER, start_world
from tests.e2e.helpers import table_counts
from tests.stories import local, make_world, story

MONDAY = local(2026, 11, 23, 9, 0)
TOWN_GROUP = -100_901
UNBOUND_GROUP = -100_902
ENGLISH = 5001
LIAISON = 2001


@pytest.fixture
async def ranked(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """Monday 09:00 in Shanghai; 东桥镇 with two problems closed on time, 西山街道 with one
    overdue since 11-10, 北湖镇 with none; the district group and 西山's group bound."""
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", clock=Clock(fixed=MONDAY)
    ) as h:
        await start_world(h)
        async with h.db.begin() as s:
            w = await make_world(s, admin_telegram_id=91_001)
            for days in (10, 20):
                await story(
                    s,
                    w,
                    "NH-DQ",
                    local(2026, 10, days, 9),
                    ("assign", local(2026, 10, days), local(2026, 10, days + 5)),
                    ("submit", local(2026, 10, days + 1)),
                    ("pass", local(2026, 10, days + 2)),
                )
            await story(
                s,
                w,
                "NH-XS",
                local(2026, 11, 1, 9),
                ("assign", local(2026, 11, 1), local(2026, 11, 10)),
            )
            # one in the third quarter too, closed late
            await story(
                s,
                w,
                "NH-BH",
                local(2026, 8, 3, 9),
                ("assign", local(2026, 8, 3), local(2026, 8, 6)),
                ("submit", local(2026, 8, 9)),
                ("pass", local(2026, 8, 10)),
            )
        h.sb.add_group(TOWN_GROUP, "西山街道工作群", members=[ADMIN, STRANGER], admins=[ADMIN])
        h.sb.add_group(UNBOUND_GROUP, "闲聊群", members=[ADMIN, STRANGER], admins=[ADMIN])
        h.sb.add_user(ENGLISH, "Emma", language_code="en")
        for chat_id, code in ((GROUP, "NH"), (TOWN_GROUP, "NH-XS")):
            done = await h.reply_to(ADMIN, f"/bindgroup {code}", chat_id=chat_id)
            assert "本群已绑定" in done.content
        yield h


async def _outbox_drained(h: Harness) -> None:
    async def pending() -> int:
        async with h.db.begin() as s:
            return (
                await s.scalar(
                    select(func.count())
                    .select_from(models.OutboxMessage)
                    .where(models.OutboxMessage.status != "sent")
                )
                or 0
            )

    for _ in range(200):
        if await pending() == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox was not drained")


def _photos(h: Harness, chat_id: int, since: int) -> list[SentMessage]:
    return [m for m in h.sb.sent(chat_id) if m.seq > since and m.photo]


async def test_the_monday_post_goes_once_even_if_the_job_fires_twice(ranked: Harness) -> None:
    h = ranked
    mark = h.sb.mark()
    assert h.app.job_queue is not None
    # The real job, fired twice by the real job queue (as after a restart, or in two processes)
    for _ in range(2):
        h.app.job_queue.run_once(weekly_ranking, 0)
    post = await h.wait_for(GROUP, mark, "晾晒排名")
    await h.wait_for(TOWN_GROUP, mark, "晾晒排名")
    await asyncio.sleep(0.3)  # both firings have run by now
    await _outbox_drained(h)
    h.app.job_queue.run_once(weekly_ranking, 0)  # and a third time, later
    await asyncio.sleep(0.5)
    await _outbox_drained(h)
    for chat_id in (GROUP, TOWN_GROUP):
        assert len(_photos(h, chat_id, mark)) == 1
        assert len([m for m in h.sb.sent(chat_id) if m.seq > mark]) == 1  # all in the caption
    async with h.db.begin() as s:
        keys = sorted(await s.scalars(select(models.OutboxMessage.key)))
    assert keys == [f"ranking:{GROUP}:2026-W48", f"ranking:{TOWN_GROUP}:2026-W48"]
    # The photo is the chart from the media store; the caption carries the table and formula.
    sent_png = h.sb.file_for(post.photo[-1])
    assert sent_png is not None and sent_png.data.startswith(b"\x89PNG")
    lines = post.content.splitlines()
    assert lines[0] == "📊 晾晒排名 · 2026年（截至 2026-11-23 09:00）"
    assert "1. 🟢 东桥镇  100.0分  整改100%  按期100%  超期0" in lines
    assert "3. 🔴 西山街道  0.0分  整改0%  按期0%  超期1  ⚠️超期13天" in lines
    assert lines[-1].startswith("算法：得分 = 100 ×（0.5 × 整改率 + 0.5 × 按期率）− 5 × 超期件数")
    town = _photos(h, TOWN_GROUP, mark)[0].content
    assert "👉 本群单位 西山街道：第 3/3 名，红码，0.0分" in town.splitlines()


async def test_a_long_table_follows_the_chart_in_order(ranked: Harness) -> None:
    """Forty towns do not fit in a caption: the chart, then the table, in that order."""
    h = ranked
    async with h.db.begin() as s:
        await import_org(
            s,
            [AreaSpec(AreaKind.subject, f"NH-T{i:02d}", f"新建第{i}镇", "NH") for i in range(40)],
        )
        w = await make_world(s, admin_telegram_id=91_001)
        for i in range(40):
            await story(
                s,
                w,
                f"NH-T{i:02d}",
                local(2026, 9, 1, 9),
                ("assign", local(2026, 9, 1), local(2026, 9, 1 + i % 20 + 1)),
                ("submit", local(2026, 9, 10)),
                ("pass", local(2026, 9, 11)),
            )
    mark = h.sb.mark()
    h.app.job_queue.run_once(weekly_ranking, 0)  # type: ignore[union-attr]
    await h.wait_for(GROUP, mark, "新建第39镇")
    await _outbox_drained(h)
    sent = [m for m in h.sb.sent(GROUP) if m.seq > mark]
    assert [bool(m.photo) for m in sent] == [True, False]
    assert "排名明细见下条消息" in sent[0].content and len(sent[0].content) <= 1024
    assert sent[1].content.count("镇  ") >= 40 and len(sent[1].content) <= 4096


async def test_rank_now_and_in_windows(ranked: Harness) -> None:
    h = ranked
    now = await h.say(ADMIN, "/rank")
    assert now[0].photo and now[0].content.startswith(
        "📊 晾晒排名 · 2026年（截至 2026-11-23 09:00）"
    )
    month = (await h.say(ADMIN, "/rank month"))[0].content
    assert month.startswith("📊 晾晒排名 · 2026年11月")
    assert "1. 🔴 西山街道" in month and "未排名（交办少于 1 件）：东桥镇、北湖镇" in month
    q3 = (await h.say(ADMIN, "/rank 2026-Q3"))[0].content
    assert q3.startswith("📊 晾晒排名 · 2026年第3季度")
    # 北湖: 100 × (0.5 × 1/1 + 0.5 × 0/1): closed, but late
    assert "1. 🟡 北湖镇  50.0分  整改100%  按期0%  超期0" in q3.splitlines()
    october = (await h.say(ADMIN, "/rank 2026-10-01..2026-10-31"))[0].content
    assert october.startswith("📊 晾晒排名 · 2026-10-01 至 2026-10-31")
    assert "1. 🟡 东桥镇  100.0分" in october
    # in a group bound to one subject, that subject's standing comes first
    town = (await h.say(ADMIN, "/rank", chat_id=TOWN_GROUP))[0]
    assert town.photo and "👉 本群单位 西山街道：第 3/3 名，红码，0.0分" in town.content
    await h.say(STRANGER, "/start")  # a person without a role: the ranking is for members
    refused = await h.say(STRANGER, "/rank")
    assert "排名只对工作群成员开放" in refused[0].content and not refused[0].photo


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("2026-13", "“2026-13”不是有效的月份"),
        ("2026-10-31..2026-10-01", "开始日期晚于结束日期"),
        ("2026-Q7", "季度为 Q1–Q4"),
        ("2027", "还没有开始"),
        ("next tuesday", "看不懂“next tuesday”"),
        ("2026-02-30", "有不存在的日期"),
    ],
)
async def test_rank_errors_are_answered_clearly(ranked: Harness, words: str, expected: str) -> None:
    h = ranked
    before = await table_counts(h)
    answer = await h.say(ADMIN, f"/rank {words}")
    assert expected in answer[0].content and not answer[0].photo
    assert await table_counts(h) == before


async def test_rank_errors_in_english_and_in_odd_places(ranked: Harness) -> None:
    h = ranked
    await h.reply_to(ENGLISH, "/start")
    async with h.db.begin() as s:
        # Emma becomes a volunteer and chose English
        person = await people.ensure_person(s, ENGLISH, "Emma", None)
        area = await s.scalar(select(models.Area.id).where(models.Area.code == "NH-DQ-01"))
        await people.grant_role(s, person.id, Role.volunteer, area)
        await people.set_locale(s, person.id, "en")
    assert "is not a month" in (await h.reply_to(ENGLISH, "/rank 2026-13")).content
    assert (
        "starts after it ends"
        in (await h.reply_to(ENGLISH, "/rank 2026-10-31..2026-10-01")).content
    )
    shown = await h.say(ENGLISH, "/rank month")
    assert shown[0].content.startswith("📊 Ranking · 2026-11 (as of 2026-11-23 09:00)")
    huge = await h.reply_to(ENGLISH, "/rank " + "x" * 3000)
    assert "I can't read" in huge.content and len(huge.content) < 600
    unbound = await h.reply_to(ADMIN, "/rank", chat_id=UNBOUND_GROUP)
    assert "/bindgroup" in unbound.content and not unbound.photo


async def test_the_weekly_job_is_scheduled_from_the_rules_file(
    sqlite_url: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "schedules: {weekly_ranking_day: 2, weekly_ranking_time: '18:30'}\n", encoding="utf-8"
    )
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", rules_file=rules
    ) as h:
        assert h.app.job_queue is not None
        (job,) = h.app.job_queue.get_jobs_by_name("weekly-ranking")
        assert job.next_t is not None
        local = job.next_t.astimezone(h.services.settings.zone)
        assert (local.weekday(), local.hour, local.minute) == (2, 18, 30)  # Wednesday 18:30


async def test_the_default_schedule_is_monday_nine(bot: Harness) -> None:
    assert bot.app.job_queue is not None
    (job,) = bot.app.job_queue.get_jobs_by_name("weekly-ranking")
    assert job.next_t is not None
    local = job.next_t.astimezone(bot.services.settings.zone)
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)


async def test_a_liaison_sees_their_own_town_first(ranked: Harness) -> None:
    h = ranked
    await h.reply_to(LIAISON, "/start")
    async with h.db.begin() as s:
        person = await people.ensure_person(s, LIAISON, "李联络", None)
        area = await s.scalar(select(models.Area.id).where(models.Area.code == "NH-BH"))
        await people.grant_role(s, person.id, Role.liaison, area)
    shown = (await h.say(LIAISON, "/rank"))[0]
    assert shown.photo and "👉 本群单位 北湖镇：第 2/3 名，黄码，50.0分" in shown.content


async def test_a_chart_missing_from_the_media_store_is_given_up(ranked: Harness) -> None:
    """An outbox row naming a picture the store does not have can never be sent: it is given
    up with the reason, and nothing reaches the group."""
    h = ranked
    mark = h.sb.mark()
    async with h.db.begin() as s:
        await outbox.enqueue(
            s,
            f"ranking:{GROUP}:test",
            "ranking",
            GROUP,
            {"text": "x", "photo_sha256": "0" * 64},
            now=h.services.now(),
        )
    h.services.wake_outbox()

    async def status() -> tuple[str, str | None]:
        async with h.db.begin() as s:
            row = (
                await s.execute(
                    select(models.OutboxMessage.status, models.OutboxMessage.last_error)
                )
            ).one()
            return row[0], row[1]

    for _ in range(100):
        if (await status())[0] != "pending":
            break
        await asyncio.sleep(0.05)
    state, error = await status()
    assert state == "gave_up" and error is not None and "media store" in error
    assert [m for m in h.sb.sent(GROUP) if m.seq > mark] == []
