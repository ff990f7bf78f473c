"""Joining: /start, invite links made with buttons or in one line, and their refusals."""

from datetime import timedelta

from bot.harness import Harness
from tests.e2e.conftest import ADMIN, STRANGER
from tests.e2e.helpers import invite_code, roles_of, table_counts


async def _invite_with_buttons(
    bot: Harness, user: int, role_text: str, area: str, uses: str
) -> str:
    menu = await bot.reply_to(user, "/invite")
    for label in (role_text, area, uses):
        menu = await bot.press(user, menu, label)
    return menu.content


async def test_start_for_admin_and_stranger(bot: Harness) -> None:
    admin = await bot.reply_to(ADMIN, "/start")
    assert "您的身份" in admin.content and "管理员（南湖区）" in admin.content
    stranger = await bot.reply_to(STRANGER, "/start")
    assert "还没有身份" in stranger.content and "邀请链接" in stranger.content
    assert await roles_of(bot, STRANGER) == set()


async def test_invite_with_buttons_then_join_once(bot: Harness) -> None:
    text = await _invite_with_buttons(bot, ADMIN, "属地联络员", "东桥镇", "限一人使用")
    assert "身份：属地联络员" in text and "区域：东桥镇" in text and "有效期至" in text
    code = invite_code(text)

    joined = await bot.reply_to(2001, f"/start {code}")
    assert "加入成功" in joined.content and "东桥镇的属地联络员" in joined.content
    assert await roles_of(bot, 2001) == {("liaison", "NH-DQ")}

    again = await bot.reply_to(2001, f"/start {code}")
    assert "无需重复加入" in again.content
    used_up = await bot.reply_to(2002, f"/start {code}")
    assert "已被使用" in used_up.content
    assert await roles_of(bot, 2002) == set()


async def test_invite_in_one_line_multi_use_and_expiry(bot: Harness) -> None:
    reply = await bot.reply_to(ADMIN, "/invite volunteer NH-DQ-01 0 2")
    assert "多人可用" in reply.content
    code = invite_code(reply.content)
    for uid in (2001, 2002):
        assert "加入成功" in (await bot.reply_to(uid, f"/start {code}")).content
    bot.clock.advance(timedelta(days=2, seconds=1))
    late = await bot.reply_to(4001, f"/start {code}")
    assert "已过期" in late.content
    assert await roles_of(bot, 4001) == set()


async def test_forged_and_odd_codes(bot: Harness) -> None:
    await bot.reply_to(STRANGER, "/start")
    before = await table_counts(bot)
    for payload in ("forged-code-123", "x" * 64, "../../etc", "🙂", "a" * 200):
        reply = await bot.reply_to(STRANGER, f"/start {payload}")
        assert "邀请链接无效" in reply.content
    assert await table_counts(bot) == before


async def test_cadre_invites_volunteers_of_own_village_only(bot: Harness) -> None:
    code = invite_code((await bot.reply_to(ADMIN, "/invite cadre NH-DQ-01")).content)
    assert "包村干部" in (await bot.reply_to(3001, f"/start {code}")).content
    menu = await bot.reply_to(3001, "/invite")
    assert menu.buttons == [["志愿者"]]  # cadres invite volunteers, nothing else
    refused = await bot.reply_to(3001, "/invite volunteer NH-DQ-02")
    assert "不能邀请" in refused.content
    text = await _invite_with_buttons(bot, 3001, "志愿者", "东桥村", "多人可用")
    assert "区域：东桥村" in text
    assert "志愿者" in (await bot.reply_to(4001, f"/start {invite_code(text)}")).content
    assert await roles_of(bot, 4001) == {("volunteer", "NH-DQ-01")}


async def test_invite_refusals_change_nothing(bot: Harness) -> None:
    await bot.reply_to(STRANGER, "/start")
    await bot.reply_to(ADMIN, "/start")
    before = await table_counts(bot)
    assert "只有管理员或包村干部" in (await bot.reply_to(STRANGER, "/invite")).content
    assert "只有管理员或包村干部" in (await bot.reply_to(STRANGER, "/invite admin NH")).content
    for wrong in (
        "/invite boss NH",
        "/invite liaison",
        "/invite liaison NH-DQ x",
        "/invite liaison NH-DQ 1 999",
        "/invite liaison NH-DQ 1 2 3 4",
    ):
        reply = await bot.reply_to(ADMIN, wrong)
        assert "用法" in reply.content, wrong
    assert "找不到区域" in (await bot.reply_to(ADMIN, "/invite liaison 火星")).content
    assert "不能设在该级区域" in (await bot.reply_to(ADMIN, "/invite liaison NH-DQ-01")).content
    assert await table_counts(bot) == before


async def test_the_whole_joining_path_on_each_database(bot_any_db: Harness) -> None:
    """The same application on SQLite and on PostgreSQL (when reachable)."""
    bot = bot_any_db
    code = invite_code((await bot.reply_to(ADMIN, "/invite inspector NH-XS")).content)
    assert "加入成功" in (await bot.reply_to(2001, f"/start {code}")).content
    assert "已被使用" in (await bot.reply_to(2002, f"/start {code}")).content
    assert await roles_of(bot, 2001) == {("inspector", "NH-XS")}
    assert await roles_of(bot, 2002) == set()
