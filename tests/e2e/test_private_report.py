"""The guided private /report: every step, back and cancel, bad input, and a restart in the
middle that continues where the person stopped."""

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

import models
from bot.harness import TOKEN, Harness, running_bot
from bot.limits import TelegramLimits
from bot.sandbox import Sandbox, SentMessage
from bot.services.roles import Role
from tests.e2e.conftest import ADMIN, EXAMPLE_RULES, GROUP, start_world
from tests.e2e.helpers import beyond_retries, grant, problem_code, table_counts, updates_done

VOLUNTEER = 4001
INSIDE = (30.7512, 120.7588)  # in 南湖区
FAR_AWAY = (39.9042, 116.4074)


async def _next(h: Harness, mark: int) -> SentMessage:
    return (await h.sb.wait_messages(VOLUNTEER, n=1, since=mark))[0]


async def _tap(h: Harness, message: SentMessage, button: str) -> SentMessage:
    mark = h.sb.mark()
    h.sb.press(VOLUNTEER, message, text=button)
    return await _next(h, mark)


async def test_report_in_private_across_a_restart(sqlite_url: str, tmp_path: Path) -> None:
    sb = Sandbox(TOKEN, limits=TelegramLimits().scaled(0.05))
    await sb.start()
    try:
        async with running_bot(
            sqlite_url,
            admin_ids=[ADMIN],
            sandbox=sb,
            media_dir=tmp_path / "media",
            rules_file=EXAMPLE_RULES,
        ) as h:
            await start_world(h)
            await grant(h, VOLUNTEER, Role.volunteer, "NH-DQ-01")
            await h.reply_to(ADMIN, "/start")
            step = await h.reply_to(VOLUNTEER, "/report")
            assert "第1步" in step.content and step.buttons[-1] == ["取消"]
            step = await _tap(h, step, "露天焚烧")
            assert "第2步" in step.content
            assert "至少一张照片" in await h.press_answer(VOLUNTEER, step, "完成")  # none yet
            mark = h.sb.mark()
            h.sb.send_photo(VOLUNTEER)
            received = await _next(h, mark)
            assert "已收到照片" in received.content
            step = await _tap(h, received, "完成")
            assert "第3步" in step.content
            back = await _tap(h, step, "« 上一步")
            assert "第2步" in back.content
            step = await _tap(h, back, "完成")
            assert "第3步" in step.content
        # The bot stops here, mid-conversation, and starts again on the same database.
        async with running_bot(
            sqlite_url,
            admin_ids=[ADMIN],
            sandbox=sb,
            media_dir=tmp_path / "media",
            rules_file=EXAMPLE_RULES,
        ) as h:
            step = await h.reply_to(VOLUNTEER, "河边有人焚烧秸秆，烟很大")
            assert "第4步" in step.content
            mark = h.sb.mark()
            h.sb.send_location(VOLUNTEER, *FAR_AWAY)
            assert "不在本区范围内" in (await _next(h, mark)).content
            mark = h.sb.mark()
            h.sb.send_location(VOLUNTEER, *INSIDE)
            step = await _next(h, mark)
            assert "第5步" in step.content
            confirm = await _tap(h, step, "东桥村")
            assert "请确认" in confirm.content and "照片：1 张" in confirm.content
            assert "河边有人焚烧秸秆" in confirm.content
            mark = h.sb.mark()
            done = await _tap(h, confirm, "✅ 提交")
            code = problem_code(h, 1)
            assert f"上报成功，编号 {code}" in done.content
            photo, card = await h.sb.wait_messages(ADMIN, n=2, since=mark)
            assert photo.photo  # the photo goes first, then the card with buttons
            assert code in card.content and card.buttons[-1] == ["交办", "不予受理"]
            # A second tap on the old confirm button: the conversation is over.
            before = await table_counts(h)
            answer = h.sb.press(VOLUNTEER, confirm, text="✅ 提交")
            assert "失效" in ((await h.sb.wait_answer(answer)).text or "")
            assert await table_counts(h) == before
            async with h.db.begin() as session:
                problem = (await session.scalars(select(models.Problem))).one()
            assert problem.category == "open_burning" and problem.village_id is not None
            assert (problem.latitude, problem.longitude) == INSIDE
    finally:
        await sb.stop()


async def test_cancel_and_bad_input_in_the_conversation(bot: Harness) -> None:
    await grant(bot, VOLUNTEER, Role.volunteer, "NH-DQ-01")
    step = await bot.reply_to(VOLUNTEER, "/report")
    step = await _tap(bot, step, "噪声")
    assert "请先发送至少一张照片" in await bot.press_answer(VOLUNTEER, step, "完成")
    mark = bot.sb.mark()
    bot.sb.send_document(VOLUNTEER, b"not a picture", "notes.txt", "text/plain")
    assert "不是图片" in (await _next(bot, mark)).content
    mark = bot.sb.mark()
    bot.sb.send_photo(VOLUNTEER, declared_size=21 * 1024 * 1024)
    assert "超过 20MB" in (await _next(bot, mark)).content
    mark = bot.sb.mark()
    bot.sb.send_photo(VOLUNTEER)
    step = await _tap(bot, await _next(bot, mark), "完成")
    assert "太长了" in (await bot.reply_to(VOLUNTEER, "长" * 1001)).content
    assert "第4步" in (await bot.reply_to(VOLUNTEER, "工地夜间施工噪声")).content
    assert "已取消" in (await bot.reply_to(VOLUNTEER, "/cancel")).content
    assert "没看懂" in (await bot.reply_to(VOLUNTEER, "还在吗")).content
    assert "没有进行中的操作" in (await bot.reply_to(VOLUNTEER, "/cancel")).content
    async with bot.db.begin() as session:
        assert (await session.scalars(select(models.Problem))).all() == []
        assert (await session.scalars(select(models.Draft))).all() == []


METRES_PER_DEGREE_LAT = 111_195.0


async def _private_report(
    h: Harness, lat: float, lon: float, village: str = "东桥村", category: str = "露天焚烧"
) -> SentMessage:
    """The volunteer reports privately, step by step; returns the card the admin gets."""
    step = await h.reply_to(VOLUNTEER, "/report")
    step = await _tap(h, step, category)
    mark = h.sb.mark()
    h.sb.send_photo(VOLUNTEER)
    await _tap(h, await _next(h, mark), "完成")
    await h.reply_to(VOLUNTEER, "路边焚烧垃圾")
    mark = h.sb.mark()
    h.sb.send_location(VOLUNTEER, lat, lon)
    confirm = await _tap(h, await _next(h, mark), village)
    mark = h.sb.mark()
    done = await _tap(h, confirm, "✅ 提交")
    assert "上报成功" in done.content
    return await h.wait_for(ADMIN, mark, "有新的问题上报")


async def test_nearby_reports_are_flagged_on_the_admins_card(bot: Harness) -> None:
    """Same category 150 m apart: flagged; 300 m apart, or 8 days later: not."""
    await grant(bot, VOLUNTEER, Role.volunteer, "NH-DQ-01")
    await bot.reply_to(ADMIN, "/start")
    lat, lon = INSIDE
    first = await _private_report(bot, lat, lon)
    code = first.content.split("【", 1)[1].split("】", 1)[0]
    assert "可能重复" not in first.content
    near = await _private_report(bot, lat + 150 / METRES_PER_DEGREE_LAT, lon)
    assert f"⚠️ 可能重复：{code} 同类问题，相距 200 米内、7 天内" in near.content
    far = await _private_report(bot, lat - 300 / METRES_PER_DEGREE_LAT, lon)  # 450 m from `near`
    assert "可能重复" not in far.content
    bot.clock.advance(timedelta(days=8))
    later = await _private_report(bot, lat, lon)
    assert "可能重复" not in later.content
    # One person's reports one after another are four problems (the draft's reused id once
    # made every later report return the first).
    assert (await table_counts(bot))["problems"] == 4


async def test_assigned_to_the_villages_town_and_posted_in_its_group(bot: Harness) -> None:
    """The admin's assign menu puts the village's town first, ticked; the group bound to that
    town sees the assignment with the card and the photo, its liaison gets the task."""
    liaison = 2002
    await grant(bot, VOLUNTEER, Role.volunteer, "NH-XS-01")
    await grant(bot, liaison, Role.liaison, "NH-XS")
    for uid in (ADMIN, liaison):
        await bot.reply_to(uid, "/start")
    await bot.reply_to(ADMIN, "/bindgroup NH-XS", chat_id=GROUP)
    card = await _private_report(bot, *INSIDE, village="西山社区")
    code = card.content.split("【", 1)[1].split("】", 1)[0]
    menu = await bot.press(ADMIN, card, "交办")
    assert menu.buttons[0] == ["✓ 西山街道"]
    assert [row[0] for row in menu.buttons[1:]] == ["北湖镇", "东桥镇"]  # no other tick
    menu = await bot.press(ADMIN, menu, "✓ 西山街道")
    mark = bot.sb.mark()
    assert "已交办" in await bot.press_answer(ADMIN, menu, menu.buttons[0][0])
    posted = await bot.wait_for(GROUP, mark, "已交办给西山街道")
    assert code in posted.content and "类别：露天焚烧" in posted.content
    assert "牵头部门：农业农村局" in posted.content
    assert any(m.photo for m in bot.sb.sent(GROUP) if m.seq > mark)
    assert code in (await bot.wait_for(liaison, mark, "交办给您单位")).content
    told = await bot.wait_for(VOLUNTEER, mark, "您上报的问题")
    assert "已交办给西山街道" in told.content


async def test_back_at_every_step_and_the_cancel_button(bot: Harness) -> None:
    await grant(bot, VOLUNTEER, Role.volunteer, "NH-DQ-01")
    step = await bot.reply_to(VOLUNTEER, "/report")
    step = await _tap(bot, step, "噪声")
    mark = bot.sb.mark()
    bot.sb.send_photo(VOLUNTEER)
    await _tap(bot, await _next(bot, mark), "完成")
    await bot.reply_to(VOLUNTEER, "夜间施工")
    mark = bot.sb.mark()
    bot.sb.send_location(VOLUNTEER, *INSIDE)
    confirm = await _tap(bot, await _next(bot, mark), "东桥村")
    assert "请确认" in confirm.content
    step = confirm
    for expected in ("第5步", "第4步", "第3步", "第2步", "第1步"):
        step = await _tap(bot, step, "« 上一步")
        assert expected in step.content, expected
    assert all("« 上一步" not in row for row in step.buttons)  # none before the first step
    step = await _tap(bot, step, "露天焚烧")  # a different choice; the photo is kept
    step = await _tap(bot, step, "完成")
    assert "第3步" in step.content
    before = await table_counts(bot)
    assert "已取消" in (await _tap(bot, step, "取消")).content
    after = await table_counts(bot)
    assert after["drafts"] == before["drafts"] - 1 and after["problems"] == 0


async def test_a_report_whose_admin_card_is_lost_is_one_problem_and_reaches_the_admin(
    bot: Harness,
) -> None:
    """Submitting makes the problem, then the admin's card fails past every retry: the update
    runs again, finds the problem made by this draft and tells the admin (the draft used to be
    finished with the problem, so the second run found a stale button and told nobody)."""
    await grant(bot, VOLUNTEER, Role.volunteer, "NH-DQ-01")
    await bot.reply_to(ADMIN, "/start")
    step = await bot.reply_to(VOLUNTEER, "/report")
    step = await _tap(bot, step, "露天焚烧")
    mark = bot.sb.mark()
    bot.sb.send_photo(VOLUNTEER)
    await _tap(bot, await _next(bot, mark), "完成")
    await bot.reply_to(VOLUNTEER, "路边焚烧垃圾")
    mark = bot.sb.mark()
    bot.sb.send_location(VOLUNTEER, *INSIDE)
    confirm = await _tap(bot, await _next(bot, mark), "东桥村")
    beyond_retries(bot, ADMIN)
    mark = bot.sb.mark()
    bot.sb.press(VOLUNTEER, confirm, text="✅ 提交")
    card = await bot.wait_for(ADMIN, mark, "有新的问题上报")
    code = problem_code(bot, 1)
    assert code in card.content and card.buttons[-1] == ["交办", "不予受理"]
    assert f"上报成功，编号 {code}" in (await bot.wait_for(VOLUNTEER, mark, "上报成功")).content
    assert set(await updates_done(bot)) == {"done"}  # none parked
    counts = await table_counts(bot)
    assert (counts["problems"], counts["drafts"]) == (1, 0)
