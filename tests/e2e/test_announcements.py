"""Announcements end to end: queued through the /announce conversation (target → content →
when → preview → confirm), listed and cancelled with /announcements, delivered through the
outbox to the right groups at their time (quiet hours respected unless "now"); a group unbound
before the time gets nothing; a restart in the middle of the conversation resumes it; bad input
answered clearly with nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

import models
from bot.harness import TOKEN, Clock, Harness, running_bot
from bot.limits import TelegramLimits
from bot.sandbox import Sandbox, SentMessage, tiny_png
from bot.services.roles import Role
from jobs import schedule
from tests.e2e.conftest import ADMIN, GROUP, STRANGER, start_world
from tests.e2e.helpers import beyond_retries, table_counts, updates_done
from tests.e2e.reminder_world import drained, local, person, rows, sender_looked

TOWN_GROUP, IDLE_GROUP = -100700, -100800
VOLUNTEER = 4001
MONDAY = local(2026, 11, 23, 10, 0)


async def tick(h: Harness) -> None:
    assert h.app.job_queue is not None
    (job,) = h.app.job_queue.get_jobs_by_name(schedule.TICK_JOB)
    await job.run(h.app)


async def setup(h: Harness) -> None:
    await start_world(h)
    h.sb.add_group(TOWN_GROUP, "东桥镇工作群", members=[ADMIN, 2001], admins=[ADMIN])
    h.sb.add_group(IDLE_GROUP, "闲聊群", members=[ADMIN], admins=[ADMIN])
    await h.reply_to(ADMIN, "/start")
    for chat_id, code in ((GROUP, "NH"), (TOWN_GROUP, "NH-DQ")):
        assert (
            "本群已绑定" in (await h.reply_to(ADMIN, f"/bindgroup {code}", chat_id=chat_id)).content
        )
    await h.reply_to(ADMIN, "/help", chat_id=IDLE_GROUP)  # known to the bot, never bound


@pytest.fixture
async def district(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", clock=Clock(fixed=MONDAY)
    ) as h:
        await setup(h)
        yield h


async def announce(
    h: Harness, target: str, content: str | bytes, when: str, *, caption: str = ""
) -> list[SentMessage]:
    """The whole conversation; the bot's last messages (the preview and the question)."""
    menu = await h.reply_to(ADMIN, "/announce")
    assert "第1步" in menu.content
    ask = await h.press(ADMIN, menu, target)
    assert "第2步" in ask.content
    if isinstance(content, bytes):
        mark = h.sb.mark()
        h.sb.send_photo(ADMIN, image=content, caption=caption)
        ask_when = await h.wait_for(ADMIN, mark, "第3步")
    else:
        ask_when = await h.reply_to(ADMIN, content)
    assert "第3步" in ask_when.content
    if when == "now":
        mark = h.sb.mark()
        h.sb.press(ADMIN, ask_when, text="⚡ 立即发送")
        await h.wait_for(ADMIN, mark, "第4步")
        return [m for m in h.sb.sent(ADMIN) if m.seq > mark]
    return await h.say(ADMIN, when, n=2)


async def confirm(h: Harness, question: SentMessage) -> str:
    mark = h.sb.mark()
    h.sb.press(ADMIN, question, text="✅ 确认发布")
    return (await h.wait_for(ADMIN, mark, "📢 公告 #")).content


async def statuses(h: Harness) -> dict[int, tuple[str, int | None]]:
    async with h.db.begin() as s:
        found = await s.scalars(select(models.Announcement).order_by(models.Announcement.id))
        return {a.id: (a.status, a.recipients) for a in found}


def got(h: Harness, chat_id: int, since: int = 0) -> list[SentMessage]:
    return [m for m in h.sb.sent(chat_id) if m.seq > since]


async def test_queued_previewed_cancelled_and_delivered(district: Harness) -> None:
    h = district
    start = h.sb.mark()
    # 1: a text to every bound group at 18:00 today
    preview, question = await announce(
        h, "全部已绑定的群（2 个）", "《大气污染防治法》第一百一十九条…", "18:00"
    )
    assert (
        preview.content == "《大气污染防治法》第一百一十九条…"
    )  # exactly as the groups will see it
    assert "发送给：全部已绑定的群（2 个）；时间：2026-11-23 18:00。" in question.content
    assert "#1 已排队：2026-11-23 18:00 发送给 全部已绑定的群（2 个）" in await confirm(h, question)
    # 2: a photo with a caption to the town's group only, at 22:00: quiet hours
    photo = tiny_png(77)
    preview, question = await announce(
        h, "东桥镇工作群", photo, "22:00", caption="典型案例：秸秆焚烧"
    )
    assert preview.photo and preview.content == "典型案例：秸秆焚烧"
    assert "（在免打扰时段内，将于 08:00 后发送）" in question.content
    assert "#2 已排队" in await confirm(h, question)
    # 3: tomorrow 09:00 to all, then cancelled; 4: tomorrow 10:00 to the town, whose group
    # is unbound before then
    _p, question = await announce(h, "全部已绑定的群（2 个）", "环保知识：垃圾分类", "明天 09:00")
    assert "#3 已排队：2026-11-24 09:00" in await confirm(h, question)
    _p, question = await announce(h, "东桥镇工作群", "通知：周五检查", "11-24 10:00")
    assert "#4 已排队" in await confirm(h, question)
    assert await statuses(h) == {i: ("queued", None) for i in (1, 2, 3, 4)}
    assert [r for r in await rows(h) if r.kind == "announce"] == []  # nothing before its time

    listing = await h.reply_to(ADMIN, "/announcements")
    lines = listing.content.splitlines()
    assert lines[0] == "📢 排队中的公告（4 条）："
    assert lines[1] == (
        "#1 · 2026-11-23 18:00 · 全部已绑定的群 · 文字 · "
        "“《大气污染防治法》第一百一十九条…” · 王主任"
    )
    assert lines[2].startswith("#2 · 2026-11-23 22:00 · 东桥镇工作群 · 图片 · “典型案例：秸秆焚烧”")
    assert listing.buttons == [["撤销 #1"], ["撤销 #2"], ["撤销 #3"], ["撤销 #4"]]
    mark = h.sb.mark()
    assert "已撤销" in await h.press_answer(ADMIN, listing, "撤销 #3")
    await h.wait_for(ADMIN, mark, "公告 #3 已撤销")
    assert "已经撤销过了" in await h.press_answer(ADMIN, listing, "撤销 #3")  # a stale button
    async with h.db.begin() as s:
        third = await s.get(models.Announcement, 3)
        assert third is not None and third.status == "cancelled"
        assert third.cancelled_by_id is not None and third.cancelled_at is not None
    history = (await h.reply_to(ADMIN, "/announcements")).content
    assert "#3 已撤销（王主任，2026-11-23 10:00）" in history  # kept, with who and when

    # 17:59: nothing yet. 18:00: #1 to both bound groups, not to the group never bound.
    h.clock.fixed = local(2026, 11, 23, 17, 59)
    await tick(h)
    assert [r for r in await rows(h) if r.kind == "announce"] == []
    h.clock.fixed = local(2026, 11, 23, 18, 0)
    await tick(h)
    await tick(h)  # released once however often the tick runs
    await drained(h)
    for chat_id in (GROUP, TOWN_GROUP):
        assert [m.content for m in got(h, chat_id, start) if "大气污染" in m.content] == [
            "《大气污染防治法》第一百一十九条…"
        ]
    assert got(h, IDLE_GROUP, start) == []  # known to the bot, never bound
    assert "已经发送，无法撤销" in await h.press_answer(ADMIN, listing, "撤销 #1")

    # 22:00: #2 is released but waits out the quiet hours; at 08:00 it goes, as the photo.
    h.clock.fixed = local(2026, 11, 23, 22, 0)
    await tick(h)
    await sender_looked(h)
    assert [m for m in got(h, TOWN_GROUP, start) if m.photo] == []
    # Meanwhile, at 23:00 an admin sends a notice "now": it goes at once, quiet hours or not.
    h.clock.fixed = local(2026, 11, 23, 23, 0)
    _p, question = await announce(h, "全部已绑定的群（2 个）", "紧急通知：今晚禁止露天焚烧", "now")
    assert "时间：立即发送" in question.content
    assert "#5 正在发送给 2 个群" in await confirm(h, question)
    await h.wait_for(GROUP, start, "紧急通知")
    await h.wait_for(TOWN_GROUP, start, "紧急通知")
    assert [m for m in got(h, TOWN_GROUP, start) if m.photo] == []
    h.clock.fixed = local(2026, 11, 24, 8, 0)
    await drained(h)
    (sent_photo,) = [m for m in got(h, TOWN_GROUP, start) if m.photo]
    assert sent_photo.content == "典型案例：秸秆焚烧"
    assert [m for m in got(h, GROUP, start) if m.photo] == []  # the town's group only

    # The bot is removed from the town's group before #4's time: #4 goes nowhere, the admin
    # is told; #3 (cancelled) never goes.
    h.sb.remove_bot_from_group(TOWN_GROUP, ADMIN)
    await h.sb.wait_fetched()
    await h.reply_to(ADMIN, "/help")  # handled in order: the removal is done
    h.clock.fixed = local(2026, 11, 24, 10, 0)
    mark = h.sb.mark()
    await tick(h)
    await h.wait_for(ADMIN, mark, "公告 #4 没有发送")
    await drained(h)
    assert await statuses(h) == {
        1: ("released", 2),
        2: ("released", 1),
        3: ("cancelled", None),
        4: ("dropped", 0),
        5: ("released", 2),
    }
    assert not [
        m for m in h.sb.sent() if m.seq > start and "垃圾分类" in m.content and m.chat_id < 0
    ]
    assert not [m for m in got(h, TOWN_GROUP, mark)]
    keys = sorted(r.key for r in await rows(h) if r.kind.startswith("announce"))
    assert keys == sorted(
        [
            f"announce:1:{GROUP}",
            f"announce:1:{TOWN_GROUP}",
            f"announce:2:{TOWN_GROUP}",
            "announce-dropped:4",
            f"announce:5:{GROUP}",
            f"announce:5:{TOWN_GROUP}",
        ]
    )


async def test_bad_input_is_answered_and_changes_nothing(district: Harness) -> None:
    h = district
    await person(h, VOLUNTEER, "赵志愿", Role.volunteer, "NH-DQ-01")
    await h.reply_to(STRANGER, "/help")
    before = await table_counts(h)
    for who in (STRANGER, VOLUNTEER):
        assert "只有管理员" in (await h.reply_to(who, "/announce")).content
        assert "只有管理员" in (await h.reply_to(who, "/announcements")).content
    assert "私聊" in (await h.reply_to(ADMIN, "/announce", chat_id=GROUP)).content
    assert await table_counts(h) == before

    menu = await h.reply_to(ADMIN, "/announce")
    ask = await h.press(ADMIN, menu, "全部已绑定的群（2 个）")
    in_conversation = await table_counts(h)  # the draft
    assert "太长" in (await h.reply_to(ADMIN, "法" * 5000)).content
    mark = h.sb.mark()
    h.sb.send_document(ADMIN, b"%PDF-1.4 ...", "通知.pdf", "application/pdf")
    assert "不要以文件发送" in (await h.wait_for(ADMIN, mark, "文件")).content
    mark = h.sb.mark()
    h.sb.send_document(ADMIN, tiny_png(3), "图.png", "image/png")
    assert "不要以文件发送" in (await h.wait_for(ADMIN, mark, "文件")).content
    mark = h.sb.mark()
    h.sb.send_photo(ADMIN, caption="说" * 1100)
    assert "说明文字太长" in (await h.wait_for(ADMIN, mark, "太长")).content
    ask_when = await h.reply_to(ADMIN, "禁止焚烧秸秆")
    assert "第3步" in ask_when.content
    assert "已经过去了" in (await h.reply_to(ADMIN, "08:00")).content  # it is 10:00
    assert "已经过去了" in (await h.reply_to(ADMIN, "2026-11-01 09:00")).content
    assert "不是有效的日期" in (await h.reply_to(ADMIN, "2026-02-30 09:00")).content
    assert "不是有效的日期" in (await h.reply_to(ADMIN, "25:00")).content
    assert "看不懂" in (await h.reply_to(ADMIN, "下周二")).content
    assert "太远了" in (await h.reply_to(ADMIN, "2028-01-01 09:00")).content
    assert await table_counts(h) == in_conversation
    # /cancel ends it; its buttons are stale afterwards
    assert "已取消" in (await h.reply_to(ADMIN, "/cancel")).content
    assert "已失效" in await h.press_answer(ADMIN, ask_when, "⚡ 立即发送")
    assert "已失效" in await h.press_answer(ADMIN, ask, data="an:ok")
    assert "没有公告 #99" in await h.press_answer(ADMIN, ask, data="an:c:99")
    assert "已失效" in await h.press_answer(ADMIN, ask, data="an:c:x")
    assert await table_counts(h) == before


async def test_a_restart_in_the_middle_resumes_the_conversation(
    sqlite_url: str, tmp_path: Path
) -> None:
    sb = Sandbox(TOKEN, limits=TelegramLimits().scaled(0.05))
    await sb.start()
    clock = Clock(fixed=MONDAY)
    try:
        async with running_bot(
            sqlite_url, admin_ids=[ADMIN], sandbox=sb, media_dir=tmp_path / "m", clock=clock
        ) as h:
            await setup(h)
            menu = await h.reply_to(ADMIN, "/announce")
            await h.press(ADMIN, menu, "东桥镇工作群")
            assert "第3步" in (await h.reply_to(ADMIN, "环保知识：噪声扰民怎么办")).content
        async with running_bot(
            sqlite_url, admin_ids=[ADMIN], sandbox=sb, media_dir=tmp_path / "m", clock=clock
        ) as h:
            preview, question = await h.say(ADMIN, "明天 09:00", n=2)
            assert preview.content == "环保知识：噪声扰民怎么办"
            assert "发送给：东桥镇工作群；时间：2026-11-24 09:00" in question.content
            assert "#1 已排队" in await confirm(h, question)
        # Down at 09:00; back at 09:10, the announcement goes out as the bot starts.
        clock.fixed = local(2026, 11, 24, 9, 10)
        async with running_bot(
            sqlite_url, admin_ids=[ADMIN], sandbox=sb, media_dir=tmp_path / "m", clock=clock
        ) as h:
            await h.wait_for(TOWN_GROUP, 0, "噪声扰民")
            assert not [m for m in h.sb.sent(GROUP) if "噪声" in m.content]
    finally:
        await sb.stop()


async def test_questions_and_answers_lost_to_the_network_are_asked_and_told_again(
    district: Harness,
) -> None:
    """A step is taken, then the next question fails past every retry: the update runs again
    and asks it (it used to find its own tap stale, and ask nothing). The confirmation of an
    announcement sent "now" fails the same way: one announcement, each group gets it once, the
    admin is told."""
    h = district
    start = h.sb.mark()
    menu = await h.reply_to(ADMIN, "/announce")
    beyond_retries(h, ADMIN)
    mark = h.sb.mark()
    h.sb.press(ADMIN, menu, text="全部已绑定的群（2 个）")
    ask = await h.wait_for(ADMIN, mark, "第2步")
    beyond_retries(h, ADMIN)
    mark = h.sb.mark()
    h.sb.send_text(ADMIN, "紧急通知：今晚禁止露天焚烧")
    ask_when = await h.wait_for(ADMIN, mark, "第3步")
    assert ask.message_id != ask_when.message_id
    mark = h.sb.mark()
    h.sb.press(ADMIN, ask_when, text="⚡ 立即发送")
    question = await h.wait_for(ADMIN, mark, "第4步")
    beyond_retries(h, ADMIN)
    assert "#1 正在发送给 2 个群" in await confirm(h, question)
    assert set(await updates_done(h)) == {"done"}
    await drained(h)
    assert await statuses(h) == {1: ("released", 2)}
    for chat_id in (GROUP, TOWN_GROUP):
        assert [m.content for m in got(h, chat_id, start)] == ["紧急通知：今晚禁止露天焚烧"]
    assert (await table_counts(h))["drafts"] == 0
