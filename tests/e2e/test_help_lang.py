"""/help per role, /lang, and the command menus per language and scope."""

from bot.harness import Harness
from tests.e2e.conftest import ADMIN, GROUP, STRANGER
from tests.e2e.helpers import invite_code


async def test_help_per_role(bot: Harness) -> None:
    admin = (await bot.reply_to(ADMIN, "/help")).content or ""
    assert "/invite" in admin and "/bindgroup" in admin and "管理员" in admin
    stranger = (await bot.reply_to(STRANGER, "/help")).content or ""
    assert "/invite" not in stranger and "/bindgroup" not in stranger and "还没有身份" in stranger
    code = invite_code((await bot.reply_to(ADMIN, "/invite cadre NH-DQ-01")).content)
    await bot.reply_to(3001, f"/start {code}")
    cadre = (await bot.reply_to(3001, "/help")).content or ""
    assert "/invite" in cadre and "/bindgroup" not in cadre and "包村干部（东桥村）" in cadre
    in_group = (await bot.reply_to(ADMIN, "/help", chat_id=GROUP)).content or ""
    assert "/bindgroup" in in_group and "/invite" not in in_group


async def test_lang_switches_per_person(bot: Harness) -> None:
    chooser = await bot.reply_to(STRANGER, "/lang")
    assert chooser.buttons == [["中文", "English"]]
    done = await bot.press(STRANGER, chooser, "English")
    assert done.content == "Language set to English."
    english = (await bot.reply_to(STRANGER, "/help")).content or ""
    assert "What you can do" in english and "/lang — Change language" in english
    # Someone else still gets Chinese.
    assert "可用功能" in ((await bot.reply_to(ADMIN, "/help")).content)
    assert "已切换为中文" in ((await bot.reply_to(STRANGER, "/lang zh")).content)
    assert "Unknown language" not in ((await bot.reply_to(STRANGER, "/lang fr")).content)
    assert "不支持该语言" in ((await bot.reply_to(STRANGER, "/lang fr")).content)


async def test_command_menus_per_language_and_scope(bot: Harness) -> None:
    private_zh = bot.sb.commands({"type": "all_private_chats"}, "zh")
    private_en = bot.sb.commands({"type": "all_private_chats"}, "en")
    admins = bot.sb.commands({"type": "all_chat_administrators"}, "zh")
    admin_chat = bot.sb.commands({"type": "chat", "chat_id": ADMIN}, "zh")
    assert [c["command"] for c in private_zh] == [
        "start",
        "help",
        "lang",
        "report",
        "issue",
        "cancel",
    ]
    assert private_zh[1]["description"] == "查看可用功能"
    assert private_en[1]["description"] == "What I can do for you"
    assert "bindgroup" in [c["command"] for c in admins]
    assert "invite" in [c["command"] for c in admin_chat]
