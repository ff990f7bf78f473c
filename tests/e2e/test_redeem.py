"""Redemption end to end: /redeem (a code and its QR image), /checkout by a shop with both
receipts, /shop for reconciliation, and every refusal: used, unknown, expired, too large, bad
input, the wrong role, the wrong chat, a guessing shop, too many codes."""

from __future__ import annotations

from datetime import timedelta

import png
import pytest
from sqlalchemy import select

import models
from bot.harness import Harness
from bot.qr import BORDER_BOXES, BOX_PIXELS, qr_modules
from bot.sandbox import SentMessage
from tests.e2e.conftest import ADMIN, GROUP, STRANGER
from tests.e2e.helpers import beyond_retries, updates_done
from tests.e2e.points_cast import (
    CADRE,
    CODE_IN,
    OTHER_SHOP,
    SHOP,
    VOLUNTEER,
    balance,
    fund,
    ledger,
    points_rows,
    seat,
)


@pytest.fixture
async def world(bot: Harness) -> Harness:
    await seat(bot)
    bot.sb.add_group(GROUP + 1, "东桥超市群", members=[SHOP, ADMIN], admins=[ADMIN])
    return bot


def _decode_modules(image: bytes, size: int) -> list[list[bool]]:
    """The QR's modules read back off the PNG: the centre pixel of each box."""
    width, height, rows, _info = png.Reader(bytes=image).read()
    pixels = [list(row) for row in rows]
    assert width == height == size * BOX_PIXELS
    half = BOX_PIXELS // 2
    return [
        [pixels[y * BOX_PIXELS + half][x * BOX_PIXELS + half] == 0 for x in range(size)]
        for y in range(size)
    ]


async def _redeem(h: Harness) -> tuple[str, SentMessage]:
    mark = h.sb.mark()
    h.sb.send_text(VOLUNTEER, "/redeem")
    message = await h.wait_for(VOLUNTEER, mark, "兑换码：")
    match = CODE_IN.search(message.content)
    assert match, message.content
    return match.group(1), message


async def test_redeem_and_checkout_with_both_receipts(world: Harness) -> None:
    h = world
    await fund(h, VOLUNTEER, 10)
    code, message = await _redeem(h)
    assert message.photo and "有效至" in message.content and "10 分钟" in message.content
    assert "当前余额：10 分" in message.content
    # The QR image holds the code: its modules are the code's modules.
    image = h.sb.file_for(message.photo[-1])
    assert image is not None
    expected = qr_modules(code)
    assert _decode_modules(image.data, len(expected)) == expected
    assert len(expected) == 21 + 2 * BORDER_BOXES  # the smallest QR version, with its border

    mark = h.sb.mark()
    receipt = await h.reply_to(SHOP, f"/checkout {code} 3")
    assert "核销成功" in receipt.content and "志愿者：赵志愿" in receipt.content
    assert "积分：3" in receipt.content and "单号：R000001" in receipt.content
    mine = await h.wait_for(VOLUNTEER, mark, "兑换了 3 积分")
    assert "东桥超市（东桥村）" in mine.content and "当前余额：7 分" in mine.content
    assert await balance(h, VOLUNTEER) == 7
    assert await ledger(h, VOLUNTEER) == [("correction", 10), ("redemption", -3)]

    before = await points_rows(h)
    used = await h.reply_to(OTHER_SHOP, f"/checkout {code} 1")  # a second shop, the same code
    assert "已于" in used.content and "使用过" in used.content
    assert "使用过" in (await h.reply_to(SHOP, f"/checkout {code} 3")).content  # sent twice
    assert await points_rows(h) == before

    today = (await h.reply_to(SHOP, "/shop today")).content
    assert "1 笔，共 3 分" in today and "R000001 赵志愿 3 分" in today
    month = (await h.reply_to(SHOP, "/shop month")).content
    assert "1 笔，共 3 分" in month
    assert "0 笔，共 0 分" in (await h.reply_to(OTHER_SHOP, "/shop")).content
    statement = (await h.reply_to(VOLUNTEER, "/points")).content
    assert "-3 兑换：东桥超市（单号 R000001）" in statement


async def test_checkout_refusals_change_nothing(world: Harness) -> None:
    h = world
    await fund(h, VOLUNTEER, 5)
    code, _message = await _redeem(h)
    before = await points_rows(h)
    wrong = "000000" if code != "000000" else "111111"
    cases = [
        (SHOP, f"/checkout {code} 6", "积分不足：志愿者余额 5 分，不够核销 6 分"),
        (SHOP, f"/checkout {wrong} 1", f"兑换码 {wrong} 不存在"),
        (SHOP, f"/checkout {code} abc", "积分必须是整数"),
        (SHOP, f"/checkout {code} 0", "积分必须大于 0"),
        (SHOP, f"/checkout {code} -2", "积分必须大于 0"),
        (SHOP, "/checkout 12ab56 3", "6 位数字"),
        (SHOP, f"/checkout {'9' * 3000} 3", "6 位数字"),
        (SHOP, "/checkout ١٢٣٤٥٦ 3", "6 位数字"),
        (SHOP, f"/checkout {code}", "用法：/checkout"),
        (SHOP, "/checkout", "用法：/checkout"),
        (SHOP, f"/checkout {code} 999999999", "太多了"),
        (VOLUNTEER, f"/checkout {code} 1", "只有定点超市"),
        (STRANGER, f"/checkout {code} 1", "只有定点超市"),
        (ADMIN, f"/checkout {code} 1", "只有定点超市"),
        (SHOP, "/shop yesterday", "用法：/shop"),
        (VOLUNTEER, "/shop today", "只有定点超市"),
    ]
    for who, text, expected in cases:
        answer = await h.reply_to(who, text)
        assert expected in answer.content, (text, answer.content)
    group = await h.reply_to(SHOP, f"/checkout {code} 1", chat_id=GROUP + 1)
    assert "请在与我的私聊中使用 /checkout" in group.content
    assert await points_rows(h) == before
    # After all that the code still works, for what the balance covers.
    assert "核销成功" in (await h.reply_to(SHOP, f"/checkout {code} 5")).content
    assert await balance(h, VOLUNTEER) == 0


async def test_an_expired_code(world: Harness) -> None:
    h = world
    await fund(h, VOLUNTEER, 5)
    code, _message = await _redeem(h)
    h.clock.advance(timedelta(minutes=10, seconds=1))
    assert "已过期" in (await h.reply_to(SHOP, f"/checkout {code} 1")).content
    assert await balance(h, VOLUNTEER) == 5


async def test_redeem_refusals(world: Harness) -> None:
    h = world
    assert "余额为 0" in (await h.reply_to(VOLUNTEER, "/redeem")).content
    assert "私聊" in (await h.reply_to(ADMIN, "/redeem", chat_id=GROUP)).content
    await fund(h, VOLUNTEER, 1)
    codes = {(await _redeem(h))[0] for _ in range(3)}
    assert len(codes) == 3  # three live codes, all different
    refused = await h.reply_to(VOLUNTEER, "/redeem")
    assert "已有 3 个未使用的兑换码" in refused.content and not refused.photo


async def test_a_shop_guessing_codes_is_locked_out(world: Harness) -> None:
    h = world
    await fund(h, VOLUNTEER, 5)
    code, _message = await _redeem(h)
    guesses = [f"{n:06d}" for n in range(100, 120) if f"{n:06d}" != code][:5]
    for guess in guesses:
        assert "不存在" in (await h.reply_to(OTHER_SHOP, f"/checkout {guess} 1")).content
    locked = await h.reply_to(OTHER_SHOP, f"/checkout {code} 1")
    assert "次数过多" in locked.content
    assert await balance(h, VOLUNTEER) == 5
    # Another shop is not affected; the locked one may try again an hour later.
    assert "核销成功" in (await h.reply_to(SHOP, f"/checkout {code} 1")).content
    h.clock.advance(timedelta(hours=1, minutes=1))
    code, _message = await _redeem(h)
    assert "核销成功" in (await h.reply_to(OTHER_SHOP, f"/checkout {code} 1")).content
    assert await balance(h, VOLUNTEER) == 3


async def test_earn_and_spend_on_each_database(bot_any_db: Harness) -> None:
    """The main path once on SQLite and once on PostgreSQL: a claim approved, a code, a
    checkout with both receipts."""
    h = await seat(bot_any_db)
    step = await h.reply_to(VOLUNTEER, "/claim")
    step = await h.press(VOLUNTEER, step, "劝导 +3")
    mark = h.sb.mark()
    h.sb.send_photo(VOLUNTEER)
    await h.wait_for(VOLUNTEER, mark, "第3步")
    mark = h.sb.mark()
    await h.reply_to(VOLUNTEER, "劝导村民不要焚烧秸秆")
    card = await h.wait_for(CADRE, mark, "活动申报 #1")
    mark = h.sb.mark()
    await h.press_answer(CADRE, card, "✅ 通过")
    await h.wait_for(VOLUNTEER, mark, "已通过")
    code, _message = await _redeem(h)
    mark = h.sb.mark()
    assert "核销成功" in (await h.reply_to(SHOP, f"/checkout {code} 2")).content
    await h.wait_for(VOLUNTEER, mark, "当前余额：1 分")
    assert await ledger(h, VOLUNTEER) == [("activity", 3), ("redemption", -2)]


async def test_a_checkout_whose_volunteer_receipt_is_lost_is_made_once_and_sent(
    world: Harness,
) -> None:
    """The checkout is made, then the volunteer's receipt fails past every retry: the update
    runs again, finds its checkout made (once, no attempt counted as a wrong code) and both get
    their receipts; the second run used to tell the shop the code was used, and nobody else."""
    h = world
    await fund(h, VOLUNTEER, 10)
    code, _message = await _redeem(h)
    beyond_retries(h, VOLUNTEER)
    mark = h.sb.mark()
    h.sb.send_text(SHOP, f"/checkout {code} 3")
    mine = await h.wait_for(VOLUNTEER, mark, "兑换了 3 积分")
    assert "当前余额：7 分" in mine.content
    assert set(await updates_done(h)) == {"done"}
    told = [m.content for m in h.sb.sent(SHOP) if m.seq > mark]
    assert told and all("核销成功" in text and "R000001" in text for text in told), told
    assert await ledger(h, VOLUNTEER) == [("correction", 10), ("redemption", -3)]
    async with h.db.begin() as session:
        outcomes = list(await session.scalars(select(models.CheckoutAttempt.outcome)))
    assert outcomes == ["ok"]
