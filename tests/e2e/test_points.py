"""Points end to end: a volunteer's report earns when assigned and when closed, and gives the
points back when rejected later (as far as they are not spent); /points; the admins' /adjust
and /ledger; the monthly leaderboard on command and through the outbox; help and menus."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

import models
from bot.harness import Harness
from bot.sandbox import SentMessage
from jobs.leaderboard import write_leaderboards
from tests.e2e.conftest import ADMIN, STRANGER
from tests.e2e.points_cast import (
    CADRE,
    CODE_IN,
    INSPECTOR,
    LIAISON,
    OTHER_CADRE,
    OTHER_VOLUNTEER,
    SHOP,
    VOLUNTEER,
    balance,
    fund,
    ledger,
    points_rows,
    seat,
)

TOWN_GROUP = -100901


@pytest.fixture
async def town(bot: Harness) -> Harness:
    """The cast, and the town's work group bound to 东桥镇 with the bot as its admin."""
    # 10:00 in Shanghai on a weekday: outside quiet hours, far from a month's end.
    bot.clock.fixed = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
    await seat(bot)
    bot.sb.add_group(
        TOWN_GROUP,
        "东桥镇生态环境工作群",
        admins=[ADMIN],
        bot_is_admin=True,
        members=[ADMIN, LIAISON, INSPECTOR, VOLUNTEER, CADRE, STRANGER],
    )
    bound = await bot.reply_to(ADMIN, "/bindgroup NH-DQ", chat_id=TOWN_GROUP)
    assert "本群已绑定到东桥镇" in bound.content
    return bot


def _code(card: SentMessage) -> str:
    return card.content.split("【", 1)[1].split("】", 1)[0]


async def _report(h: Harness, who: int = VOLUNTEER) -> SentMessage:
    mark = h.sb.mark()
    h.sb.send_photo(who, chat_id=TOWN_GROUP, caption="#问题 河边有人露天焚烧垃圾")
    return await h.wait_for(TOWN_GROUP, mark, "已登记为问题")


async def _assign(h: Harness, card: SentMessage) -> None:
    menu = await h.press(ADMIN, card, "交办")
    menu = await h.press(ADMIN, menu, "✓ 东桥镇")
    assert "已交办" in await h.press_answer(ADMIN, menu, menu.buttons[0][0])


async def _rectify_and_pass(h: Harness, code: str) -> None:
    m = h.sb.mark()
    h.sb.send_text(LIAISON, f"/rectified {code}")
    await h.wait_for(LIAISON, m, "整改后的照片")
    m = h.sb.mark()
    h.sb.send_photo(LIAISON)
    received = await h.wait_for(LIAISON, m, "已收到照片")
    await h.press(LIAISON, received, "完成")
    m = h.sb.mark()
    await h.reply_to(LIAISON, "已清理")
    check = await h.wait_for(INSPECTOR, m, "请核查")
    assert "已销号" in await h.press_answer(INSPECTOR, check, "通过（销号）")


async def test_a_volunteers_report_earns_on_assign_and_close(town: Harness) -> None:
    h = town
    card = await _report(h)
    code = _code(card)
    mark = h.sb.mark()
    await _assign(h, card)
    told = await h.wait_for(VOLUNTEER, mark, "已交办")
    assert "积分变动，当前余额 2 分" in told.content
    assert f"+2 上报的问题 {code} 已交办（王主任）" in told.content
    mark = h.sb.mark()
    await _rectify_and_pass(h, code)
    told = await h.wait_for(VOLUNTEER, mark, "销号")
    assert f"+3 上报的问题 {code} 已销号（张网格）" in told.content and "余额 5 分" in told.content
    assert await ledger(h, VOLUNTEER) == [("problem_assigned", 2), ("problem_closed", 3)]
    # An inspector's own report earns nothing.
    card = await _report(h, INSPECTOR)
    mark = h.sb.mark()
    await _assign(h, card)
    told = await h.wait_for(INSPECTOR, mark, "已交办")
    assert "积分" not in told.content and await ledger(h, INSPECTOR) == []


async def test_rejected_after_assignment_takes_back_what_is_left(town: Harness) -> None:
    h = town
    card = await _report(h)
    code = _code(card)
    await _assign(h, card)
    # The volunteer spends one of the two points at the shop.
    mark = h.sb.mark()
    h.sb.send_text(VOLUNTEER, "/redeem")
    redeem = await h.wait_for(VOLUNTEER, mark, "兑换码：")
    match = CODE_IN.search(redeem.content)
    assert match
    assert "核销成功" in (await h.reply_to(SHOP, f"/checkout {match.group(1)} 1")).content
    # An admin rejects it after all, with the reject button of an older copy of the card.
    mark = h.sb.mark()
    assert "已不予受理" in await h.press_answer(ADMIN, card, data=f"p:rej:{code}:1")
    told = await h.wait_for(VOLUNTEER, mark, "不予受理")
    assert f"-1 问题 {code} 不予受理，扣回积分（王主任）：重复上报" in told.content
    assert "原应 -2，其余积分已兑换使用" in told.content and "余额 0 分" in told.content
    assert await ledger(h, VOLUNTEER) == [
        ("problem_assigned", 2),
        ("redemption", -1),
        ("problem_reversed", -1),
    ]
    assert await balance(h, VOLUNTEER) == 0
    statement = (await h.reply_to(VOLUNTEER, "/points")).content
    assert "余额：0 分" in statement and "本月获得：1 分" in statement


async def test_points_statement_and_where_it_works(town: Harness) -> None:
    h = town
    empty = (await h.reply_to(VOLUNTEER, "/points")).content
    assert "余额：0 分" in empty and "暂无记录" in empty and "排名第 1（共 2 名志愿者）" in empty
    stranger = (await h.reply_to(STRANGER, "/points")).content
    assert "你还不是志愿者" in stranger and "排名" not in stranger
    assert "私聊" in (await h.reply_to(VOLUNTEER, "/points", chat_id=TOWN_GROUP)).content
    # Ten entries at most, newest first.
    for n in range(12):
        await fund(h, VOLUNTEER, n + 1)
    statement = (await h.reply_to(VOLUNTEER, "/points")).content
    assert "余额：78 分" in statement and "本月获得：0 分" in statement
    lines = [line for line in statement.splitlines() if "更正" in line]
    assert len(lines) == 10 and "+12 更正：开户测试（王主任）" in lines[0]


async def test_admins_correct_and_read_ledgers(town: Harness) -> None:
    h = town
    before = await points_rows(h)
    refusals = [
        (VOLUNTEER, f"/adjust {VOLUNTEER} +5 奖励", "只有管理员"),
        (STRANGER, f"/ledger {VOLUNTEER}", "只有管理员"),
        (ADMIN, "/adjust", "用法：/adjust"),
        (ADMIN, f"/adjust {VOLUNTEER} 5", "用法：/adjust"),
        (ADMIN, f"/adjust {VOLUNTEER} abc 奖励", "用法：/adjust"),
        (ADMIN, f"/adjust {VOLUNTEER} 0 奖励", "用法：/adjust"),
        (ADMIN, "/adjust @nobody +5 奖励", "找不到“@nobody”"),
        (ADMIN, "/adjust 无名氏 +5 奖励", "找不到“无名氏”"),
        (ADMIN, f"/adjust {'9' * 30} +5 奖励", "找不到"),
        (ADMIN, f"/adjust {VOLUNTEER} +{'9' * 30} 奖励", "用法：/adjust"),
        (ADMIN, f"/adjust {VOLUNTEER} -1 多记", "余额只有 0 分"),
        (ADMIN, "/ledger", "用法：/ledger"),
    ]
    for who, text, expected in refusals:
        answer = await h.reply_to(who, text)
        assert expected in answer.content, (text, answer.content)
    assert (
        "私聊" in (await h.reply_to(ADMIN, f"/adjust {VOLUNTEER} +1 x", chat_id=TOWN_GROUP)).content
    )
    assert await points_rows(h) == before

    mark = h.sb.mark()
    done = await h.reply_to(ADMIN, "/adjust 赵志愿 +8 参加清洁日活动")
    assert "已为 赵志愿 更正 +8 分（参加清洁日活动），余额 8 分" in done.content
    told = await h.wait_for(VOLUNTEER, mark, "更正了你的积分")
    assert "+8：参加清洁日活动" in told.content
    await h.reply_to(ADMIN, f"/adjust {VOLUNTEER} -3 重复登记")
    ledger_text = (await h.reply_to(ADMIN, "/ledger 赵志愿")).content
    assert "赵志愿 的积分明细：余额 5 分，最近 2 条" in ledger_text
    assert "-3 更正：重复登记（王主任）" in ledger_text
    assert "+8 更正：参加清洁日活动（王主任）" in ledger_text
    # Two people of one name: the admin is asked for the id.
    h.sb.add_user(4999, "赵志愿")
    await h.reply_to(4999, "/start")
    ambiguous = await h.reply_to(ADMIN, "/ledger 赵志愿")
    assert "对应多个人" in ambiguous.content and str(VOLUNTEER) in ambiguous.content
    assert await ledger(h, VOLUNTEER) == [("correction", 8), ("correction", -3)]


async def _approve_claim(h: Harness, volunteer: int, activity: str) -> None:
    step = await h.reply_to(volunteer, "/claim")
    step = await h.press(volunteer, step, activity)
    mark = h.sb.mark()
    h.sb.send_photo(volunteer)
    await h.wait_for(volunteer, mark, "第3步")
    mark = h.sb.mark()
    await h.reply_to(volunteer, "做了志愿活动")
    card = await h.wait_for(CADRE, mark, "活动申报 #")
    mark = h.sb.mark()
    await h.press_answer(CADRE, card, "✅ 通过")
    await h.wait_for(volunteer, mark, "已通过")


async def test_the_monthly_leaderboard(town: Harness) -> None:
    h = town
    await _approve_claim(h, VOLUNTEER, "清理 +5")
    await _approve_claim(h, OTHER_VOLUNTEER, "劝导 +3")
    await _approve_claim(h, OTHER_VOLUNTEER, "巡查 +1")
    posted = (await h.reply_to(ADMIN, "/leaderboard", chat_id=TOWN_GROUP)).content
    assert "志愿者积分榜 · 2026年11月" in posted
    assert "【东桥村】\n1. 赵志愿 5 分\n2. 钱志愿 4 分\n【河口村】\n本月暂无积分" in posted
    assert "西山社区" not in posted  # another town's village
    private = (await h.reply_to(CADRE, "/leaderboard")).content
    assert "【东桥村】" in private and "河口村" not in private
    everywhere = (await h.reply_to(ADMIN, "/leaderboard")).content
    assert "西山社区" in everywhere
    last_month = (await h.reply_to(ADMIN, "/leaderboard 2026-10")).content
    assert "2026年10月" in last_month and "赵志愿" not in last_month
    refusals = [
        (STRANGER, "/leaderboard", None, "只有管理员和包村干部"),
        (VOLUNTEER, "/leaderboard", None, "只有管理员和包村干部"),
        (CADRE, "/leaderboard", TOWN_GROUP, "只有管理员和包村干部"),
        (ADMIN, "/leaderboard 十一月", None, "用法：/leaderboard"),
        (ADMIN, "/leaderboard 2027-01", None, "用法：/leaderboard"),
    ]
    for who, text, chat, expected in refusals:
        assert expected in (await h.reply_to(who, text, chat_id=chat)).content, text
    assert "西山社区" in (await h.reply_to(OTHER_CADRE, "/leaderboard")).content

    # On the first of the month the job posts last month's board to the group, once.
    h.clock.fixed = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    mark = h.sb.mark()
    assert await write_leaderboards(h.services) == 1
    board = await h.wait_for(TOWN_GROUP, mark, "志愿者积分榜 · 2026年11月", timeout=15)
    assert "1. 赵志愿 5 分" in board.content
    assert await write_leaderboards(h.services) == 0  # the job again: nothing new
    async with h.db.begin() as session:
        keys = list(
            await session.scalars(
                select(models.OutboxMessage.key).where(models.OutboxMessage.kind == "leaderboard")
            )
        )
    assert keys == [f"leaderboard:{TOWN_GROUP}:2026-11:0"]
    await h.reply_to(ADMIN, "/help")  # everything sent by now
    assert len([m for m in h.sb.sent(TOWN_GROUP) if m.seq > mark and "积分榜" in m.content]) == 1


async def test_help_and_menus_show_the_points_commands(town: Harness) -> None:
    h = town
    volunteer = (await h.reply_to(VOLUNTEER, "/help")).content
    for command in ("/claim", "/points", "/redeem"):
        assert command in volunteer
    assert "/checkout" not in volunteer
    shop = (await h.reply_to(SHOP, "/help")).content
    assert "/checkout" in shop and "/shop" in shop
    admin = (await h.reply_to(ADMIN, "/help")).content
    for command in ("/adjust", "/ledger", "/leaderboard"):
        assert command in admin
    cadre = (await h.reply_to(CADRE, "/help")).content
    assert "/claims" in cadre and "/leaderboard" in cadre
    admin_menu = [c["command"] for c in h.sb.commands({"type": "chat", "chat_id": ADMIN})]
    assert {"adjust", "ledger", "leaderboard"} <= set(admin_menu)
