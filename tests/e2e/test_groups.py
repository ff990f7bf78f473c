"""Work groups: the bot joining, /bindgroup by an admin and refused for anyone else."""

from bot.harness import Harness
from tests.e2e.conftest import ADMIN, GROUP, STRANGER
from tests.e2e.helpers import binding, table_counts


async def test_bot_added_says_hello(bot: Harness) -> None:
    mark = bot.sb.mark()
    bot.sb.bot_added_to_group(GROUP, ADMIN)
    hello = await bot.sb.wait_messages(GROUP, n=1, since=mark)
    assert "/bindgroup" in hello[0].content


async def test_admin_binds_with_buttons_and_is_told_about_privacy(bot: Harness) -> None:
    menu = await bot.reply_to(ADMIN, "/bindgroup", chat_id=GROUP)
    labels = [row[0] for row in menu.buttons]
    assert labels[0] == "南湖区（区）"
    assert sorted(labels[1:]) == sorted(
        ["东桥镇（镇/街道）", "西山街道（镇/街道）", "北湖镇（镇/街道）"]
    )
    done = await bot.press(ADMIN, menu, "东桥镇（镇/街道）")
    # The stand-in's bot has privacy mode on and is no group admin: it would miss photos, and
    # says exactly how to fix it.
    assert done.content == (
        "本群已绑定到东桥镇（镇/街道）。\n\n"
        "⚠️ 我现在看不到群里的普通消息，会漏掉带照片的问题上报。\n"
        "请任选其一：\n"
        "1. 把 @greengrid_bot 设为本群管理员；或\n"
        "2. 在 @BotFather 中发送 /setprivacy，选择 @greengrid_bot，选 Disable，"
        "然后把我移出本群再重新拉进来。"
    )
    assert await binding(bot, GROUP) == "NH-DQ"


async def test_no_privacy_warning_once_privacy_mode_is_off(bot: Harness) -> None:
    """Privacy mode turned off in @BotFather while the bot runs (getMe now says it reads all
    group messages): the bot is no group admin, and still no warning."""
    bot.sb.can_read_all_group_messages = True
    done = await bot.reply_to(ADMIN, "/bindgroup NH-DQ", chat_id=GROUP)
    assert done.content == "本群已绑定到东桥镇（镇/街道）。"
    assert not bot.sb.chats[GROUP].bot_is_admin


async def test_no_privacy_warning_when_bot_is_group_admin(bot: Harness) -> None:
    bot.sb.add_group(-100777, "东桥镇工作群", members=[ADMIN], admins=[ADMIN], bot_is_admin=True)
    done = await bot.reply_to(ADMIN, "/bindgroup NH-DQ", chat_id=-100777)
    assert "本群已绑定到东桥镇" in done.content and "/setprivacy" not in done.content
    assert await binding(bot, -100777) == "NH-DQ"


async def test_stranger_cannot_bind_by_command_or_button(bot: Harness) -> None:
    menu = await bot.reply_to(ADMIN, "/bindgroup", chat_id=GROUP)
    await bot.reply_to(STRANGER, "/start")  # known from here on: what follows must add nothing
    before = await table_counts(bot)
    refused = await bot.reply_to(STRANGER, "/bindgroup NH", chat_id=GROUP)
    assert "只有管理员" in refused.content
    answer = await bot.press_answer(STRANGER, menu, "南湖区（区）")
    assert "只有管理员" in answer
    assert await binding(bot, GROUP) is None
    assert await table_counts(bot) == before


async def test_bind_in_wrong_place_or_to_wrong_area(bot: Harness) -> None:
    assert "工作群里" in ((await bot.reply_to(ADMIN, "/bindgroup")).content)
    reply = await bot.reply_to(ADMIN, "/bindgroup NH-DQ-01", chat_id=GROUP)  # a village
    assert "找不到可绑定" in reply.content
    assert await binding(bot, GROUP) is None
