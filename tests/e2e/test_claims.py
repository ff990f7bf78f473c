"""Activity claims end to end: /claim in private step by step, the cadres' buttons, approval
with points, refusal with a typed reason, double and stale taps, the wrong people, bad input,
cancel, and a restart in the middle of a claim."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import models
from bot.harness import TOKEN, Harness, running_bot
from bot.limits import TelegramLimits
from bot.sandbox import Sandbox, SentMessage
from tests.e2e.conftest import ADMIN, GROUP, STRANGER, start_world
from tests.e2e.helpers import beyond_retries, table_counts, updates_done
from tests.e2e.points_cast import (
    CADRE,
    LONELY_VOLUNTEER,
    OTHER_CADRE,
    SECOND_CADRE,
    VOLUNTEER,
    balance,
    ledger,
    points_rows,
    seat,
)


@pytest.fixture
async def world(bot: Harness) -> Harness:
    return await seat(bot)


async def _claim_up_to_text(h: Harness, activity: str = "清理 +5") -> None:
    """The volunteer starts a claim and gets to the last step."""
    step = await h.reply_to(VOLUNTEER, "/claim")
    assert "第1步" in step.content and "东桥村" in step.content
    assert ["取消"] in step.buttons and any("清理 +5" in row for row in step.buttons)
    step = await h.press(VOLUNTEER, step, activity)
    assert "第2步" in step.content
    mark = h.sb.mark()
    h.sb.send_photo(VOLUNTEER)
    asked = (await h.sb.wait_messages(VOLUNTEER, n=1, since=mark))[0]
    assert "第3步" in asked.content


async def _claim(h: Harness, text: str = "清理河道垃圾三袋") -> SentMessage:
    """A whole claim; returns the card the first cadre got."""
    await _claim_up_to_text(h)
    mark = h.sb.mark()
    done = await h.reply_to(VOLUNTEER, text)
    assert "已提交活动申报 #" in done.content
    return await h.wait_for(CADRE, mark, "活动申报 #")


async def test_a_claim_approved_by_the_cadre(world: Harness) -> None:
    h = world
    mark = h.sb.mark()
    card = await _claim(h)
    assert "赵志愿（东桥村）" in card.content and "清理（+5 分）" in card.content
    assert "清理河道垃圾三袋" in card.content and card.buttons == [["✅ 通过", "❌ 不通过"]]
    assert any(m.photo for m in h.sb.sent(CADRE) if m.seq > mark)  # the photo came first
    second_copy = await h.wait_for(SECOND_CADRE, mark, "活动申报 #")
    # Cadres of other villages are not asked.
    assert not [m for m in h.sb.sent(OTHER_CADRE) if m.seq > mark]

    mark = h.sb.mark()
    assert "已通过申报" in await h.press_answer(CADRE, card, "✅ 通过")
    edited = await h.sb.wait_change(card, since=mark)
    assert "✅ 已通过（陈干部）" in edited.content and edited.buttons == []
    notice = await h.wait_for(VOLUNTEER, mark, "已通过")
    assert "余额 5 分" in notice.content and "+5 活动：清理（陈干部 审核）" in notice.content
    assert await ledger(h, VOLUNTEER) == [("activity", 5)]
    assert await balance(h, VOLUNTEER) == 5

    # The second cadre taps their own copy: told who decided; nothing moves twice.
    before = await points_rows(h)
    mark = h.sb.mark()
    assert "已由 陈干部 审核通过" in await h.press_answer(SECOND_CADRE, second_copy, "✅ 通过")
    edited = await h.sb.wait_change(second_copy, since=mark)
    assert "已通过（陈干部）" in edited.content and edited.buttons == []
    # The first cadre again, with the old button's data; and the wrong people.
    data = f"cl:ok:{card.content.split('#', 1)[1].split()[0]}"
    assert "已由 陈干部" in await h.press_answer(CADRE, card, data=data)
    assert "只有该村" in await h.press_answer(OTHER_CADRE, card, data=data)
    assert "只有该村" in await h.press_answer(STRANGER, card, data=data)
    assert "不能审核自己" in await h.press_answer(VOLUNTEER, card, data=data)
    assert "失效" in await h.press_answer(CADRE, card, data="cl:ok:x")
    assert "失效" in await h.press_answer(CADRE, card, data="cl:zz:1")
    assert "找不到" in await h.press_answer(CADRE, card, data="cl:ok:999")
    assert await points_rows(h) == before

    m = h.sb.mark()
    h.sb.send_text(VOLUNTEER, "/points")
    statement = (await h.wait_for(VOLUNTEER, m, "我的积分")).content
    assert "余额：5 分" in statement and "本月获得：5 分" in statement
    assert "本月在东桥村排名第 1（共 2 名志愿者）" in statement
    assert "+5 活动：清理（陈干部 审核）" in statement


async def test_a_claim_refused_with_a_reason(world: Harness) -> None:
    h = world
    card = await _claim(h, "在村口劝导焚烧秸秆")
    second_copy = await h.wait_for(SECOND_CADRE, h.sb.mark() - 8, "活动申报 #")
    mark = h.sb.mark()
    assert "私聊中输入原因" in await h.press_answer(CADRE, card, "❌ 不通过")
    asked = await h.wait_for(CADRE, mark, "不通过的原因")
    assert "申报 #1" in asked.content
    mark = h.sb.mark()
    assert "已退回申报 #1" in (await h.reply_to(CADRE, "照片看不出是清理现场")).content
    notice = await h.wait_for(VOLUNTEER, mark, "未通过")
    assert "陈干部" in notice.content and "照片看不出是清理现场" in notice.content
    assert await ledger(h, VOLUNTEER) == []
    assert "已由 陈干部 退回" in await h.press_answer(SECOND_CADRE, second_copy, "✅ 通过")
    assert "已由 陈干部 退回" in await h.press_answer(SECOND_CADRE, second_copy, data="cl:no:1")
    async with h.db.begin() as session:
        claim = (await session.scalars(select(models.ActivityClaim))).one()
    assert claim.status == "refused" and claim.refusal_reason == "照片看不出是清理现场"


async def test_who_may_claim_and_where(world: Harness) -> None:
    h = world
    before = await points_rows(h)
    assert (
        "请在与我的私聊中使用 /claim" in (await h.reply_to(ADMIN, "/claim", chat_id=GROUP)).content
    )
    assert "只有志愿者" in (await h.reply_to(STRANGER, "/claim")).content
    assert "还没有包村干部" in (await h.reply_to(LONELY_VOLUNTEER, "/claim")).content
    assert "只有包村干部" in (await h.reply_to(VOLUNTEER, "/claims")).content
    assert "没有待审核" in (await h.reply_to(CADRE, "/claims")).content
    assert await points_rows(h) == before
    async with h.db.begin() as session:
        assert (await session.scalars(select(models.Draft))).all() == []


async def test_bad_input_and_cancel_in_a_claim(world: Harness) -> None:
    h = world
    step = await h.reply_to(VOLUNTEER, "/claim")
    assert "请点上面的按钮" in (await h.reply_to(VOLUNTEER, "我想申报")).content
    step = await h.press(VOLUNTEER, step, "巡查 +1")
    assert "失效" in await h.press_answer(VOLUNTEER, step, data="cl:t:patrol")  # a step behind
    assert "请发送一张照片" in (await h.reply_to(VOLUNTEER, "巡查了一圈")).content
    mark = h.sb.mark()
    h.sb.send_document(VOLUNTEER, b"not a picture", "notes.txt", "text/plain")
    assert "不是图片" in (await h.sb.wait_messages(VOLUNTEER, n=1, since=mark))[0].content
    mark = h.sb.mark()
    h.sb.send_photo(VOLUNTEER)
    asked = (await h.sb.wait_messages(VOLUNTEER, n=1, since=mark))[0]
    assert "第3步" in asked.content
    assert "太长了" in (await h.reply_to(VOLUNTEER, "长" * 201)).content
    mark = h.sb.mark()
    h.sb.send_photo(VOLUNTEER)
    assert "一句话" in (await h.sb.wait_messages(VOLUNTEER, n=1, since=mark))[0].content
    cancelled = await h.press(VOLUNTEER, asked, "取消")
    assert "已取消" in cancelled.content
    assert "失效" in await h.press_answer(VOLUNTEER, asked, "取消")
    assert "没看懂" in (await h.reply_to(VOLUNTEER, "还在吗")).content
    # /cancel works for claims too.
    await h.reply_to(VOLUNTEER, "/claim")
    assert "已取消" in (await h.reply_to(VOLUNTEER, "/cancel")).content
    async with h.db.begin() as session:
        assert (await session.scalars(select(models.ActivityClaim))).all() == []
        assert (await session.scalars(select(models.Draft))).all() == []


async def test_a_claim_across_a_restart(sqlite_url: str, tmp_path: Path) -> None:
    sb = Sandbox(TOKEN, limits=TelegramLimits().scaled(0.05))
    await sb.start()
    try:
        async with running_bot(
            sqlite_url, admin_ids=[ADMIN], sandbox=sb, media_dir=tmp_path / "media"
        ) as h:
            await start_world(h)
            await seat(h)
            await _claim_up_to_text(h, "宣传 +2")
        # Stopped between the photo and the text; started again on the same database.
        async with running_bot(
            sqlite_url, admin_ids=[ADMIN], sandbox=sb, media_dir=tmp_path / "media"
        ) as h:
            mark = h.sb.mark()
            done = await h.reply_to(VOLUNTEER, "在村委会门口发放环保宣传单")
            assert "已提交活动申报 #1（宣传）" in done.content
            card = await h.wait_for(CADRE, mark, "活动申报 #1")
            assert "宣传（+2 分）" in card.content
            await h.press_answer(CADRE, card, "✅ 通过")
            await h.wait_for(VOLUNTEER, mark, "已通过")
            assert await balance(h, VOLUNTEER) == 2
    finally:
        await sb.stop()


async def test_a_cadre_lists_waiting_claims(world: Harness) -> None:
    h = world
    await _claim(h)
    mark = h.sb.mark()
    h.sb.send_text(SECOND_CADRE, "/claims")
    await h.wait_for(SECOND_CADRE, mark, "待审核的活动申报 1 条")
    card = await h.wait_for(SECOND_CADRE, mark, "活动申报 #1")
    assert card.buttons == [["✅ 通过", "❌ 不通过"]]
    await h.press_answer(SECOND_CADRE, card, "✅ 通过")
    assert await balance(h, VOLUNTEER) == 5
    assert "没有待审核" in (await h.reply_to(CADRE, "/claims")).content


# ---------------------------------------------------------------- a notice lost to the network
# Each change is made, then the notice that follows fails past every retry: the update runs
# again from the inbox, finds the change made by itself (not a second one) and sends the notice.


async def _claims(h: Harness) -> list[tuple[str, str]]:
    async with h.db.begin() as session:
        rows = await session.scalars(select(models.ActivityClaim).order_by(models.ActivityClaim.id))
        return [(c.status, c.text) for c in rows]


async def test_a_claim_whose_cadre_card_is_lost_is_one_claim_and_reaches_the_cadre(
    world: Harness,
) -> None:
    h = world
    await _claim_up_to_text(h)
    beyond_retries(h, CADRE)
    mark = h.sb.mark()
    h.sb.send_text(VOLUNTEER, "清理河道垃圾三袋")
    card = await h.wait_for(CADRE, mark, "活动申报 #")
    assert card.buttons == [["✅ 通过", "❌ 不通过"]]
    await h.wait_for(VOLUNTEER, mark, "已提交活动申报 #")
    assert set(await updates_done(h)) == {"done"}
    assert await _claims(h) == [("pending", "清理河道垃圾三袋")]
    assert (await table_counts(h))["drafts"] == 0
    # The cadre's card works: the claim is approved once.
    assert "已通过申报" in await h.press_answer(CADRE, card, "✅ 通过")
    await h.wait_for(VOLUNTEER, mark, "已通过")


async def test_an_approval_whose_notice_is_lost_is_made_once_and_reaches_the_volunteer(
    world: Harness,
) -> None:
    h = world
    card = await _claim(h)
    beyond_retries(h, VOLUNTEER)
    mark = h.sb.mark()
    h.sb.press(CADRE, card, text="✅ 通过")
    notice = await h.wait_for(VOLUNTEER, mark, "已通过")
    assert "余额 5 分" in notice.content
    assert set(await updates_done(h)) == {"done"}
    assert await ledger(h, VOLUNTEER) == [("activity", 5)]
    assert [status for status, _ in await _claims(h)] == ["approved"]


async def test_a_refusal_whose_notice_is_lost_is_made_once_and_reaches_the_volunteer(
    world: Harness,
) -> None:
    h = world
    card = await _claim(h)
    mark = h.sb.mark()
    assert "私聊中输入原因" in await h.press_answer(CADRE, card, "❌ 不通过")
    await h.wait_for(CADRE, mark, "不通过的原因")
    beyond_retries(h, VOLUNTEER)
    mark = h.sb.mark()
    h.sb.send_text(CADRE, "照片看不出是清理现场")
    notice = await h.wait_for(VOLUNTEER, mark, "未通过")
    assert "照片看不出是清理现场" in notice.content
    await h.wait_for(CADRE, mark, "已退回申报")
    assert set(await updates_done(h)) == {"done"}
    assert [status for status, _ in await _claims(h)] == ["refused"]
    assert (await table_counts(h))["drafts"] == 0
